"""What the API promises at its edges: any input is a 4xx, never a 5xx; the OpenAPI document
says exactly what is validated; 405 lists every method; integers are strict; docs pages load
no third-party script and are off outside dev."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from service.main import create_app
from tests.service.conftest import SettingsFactory

KEY = "k3y-for-tests-0123456789abcdef"
JSON = {"content-type": "application/json"}


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """The API's edges do not depend on the database: SQLite only here."""
    return sqlite_url


# -- 1. lone surrogates and other undecodable input: 4xx, never 5xx -------------------------


@pytest.mark.parametrize(
    "body",
    [
        rb'{"feature": "abc \ud800 def"}',
        rb'{"feature": "abc \udfff def"}',
        rb'{"fe\ud800ature": "abc def"}',
        rb'{"feature": "abc def", "x\udc00": 1}',
        rb'{"feature": "abc def", "context": "\ud83d"}',
        rb'{"feature": "abc def", "persona": ["\ud800"]}',
        rb'"\ud800"',
        rb'["\ud800"]',
        b"\xff\xfe",
    ],
)
def test_undecodable_text_is_422_not_500(client: TestClient, body: bytes) -> None:
    response = client.post("/api/stories", content=body, headers=JSON)
    assert response.status_code == 422, response.text
    # The echoed input is valid UTF-8 JSON: a lone surrogate comes back as U+FFFD.
    detail = json.loads(response.content.decode("utf-8"))["detail"]
    assert detail and all("\ud800" not in json.dumps(e, ensure_ascii=False) for e in detail)


def test_invalid_utf8_in_a_body_is_400(client: TestClient) -> None:
    response = client.post("/api/stories", content=b'{"feature": "abc \xff def"}', headers=JSON)
    assert response.status_code == 400
    assert response.json() == {"detail": "There was an error parsing the body"}


def test_a_lone_surrogate_is_echoed_as_the_replacement_character(client: TestClient) -> None:
    response = client.post("/api/stories", content=rb'{"feature": "abc \ud800 def"}', headers=JSON)
    assert response.json()["detail"][0]["input"] == "abc \ufffd def"
    assert response.json()["detail"][0]["loc"] == ["body", "feature"]


@pytest.mark.parametrize(
    ("url", "status"),
    [
        # Query and path are decoded with U+FFFD for what is not UTF-8 (a surrogate sent as
        # UTF-8 bytes, say): a search for that text finds nothing.
        ("/api/stories?q=%ED%A0%80", 200),
        ("/api/stories?q=%ff%fe", 200),
        ("/api/stories?q=%00", 422),
        ("/api/stories?limit=%ED%A0%80", 422),
        ("/api/stories?offset=%ff", 422),
        ("/api/stories/%ED%A0%80", 404),
        ("/api/stories/%00", 404),
    ],
)
def test_undecodable_query_and_path_are_not_5xx(client: TestClient, url: str, status: int) -> None:
    response = client.get(url)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["total"] == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        # Python's JSON parser takes these, JSON cannot encode them back.
        (b'{"feature": NaN}', "application/json"),
        (b'{"feature": Infinity}', "application/json"),
        (b'{"feature": -Infinity}', "application/json"),
        (b'{"feature": 1e999}', "application/json"),
        (b'{"feature": "abc def", "context": [NaN, 1e999]}', "application/json"),
        (b'{"feature": "abc def", "x": Infinity}', "application/json"),
        (b"[NaN]", "application/json"),
        # Bytes that are not UTF-8, as other content types or none at all.
        (b"\xff\xfe abc", "text/plain"),
        (b"feature=\xff\xfe", "application/x-www-form-urlencoded"),
        (b"\xff\xfe", None),
        (b'{"feature": "abc \xff def"}', None),
        (b"\x80" * 1000, "application/octet-stream"),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, bytes) else str(value),
)
def test_unencodable_input_is_422_not_500(
    client: TestClient, body: bytes, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/api/stories", content=body, headers=headers)
    assert response.status_code == 422, response.text
    # Strict JSON: no NaN or Infinity tokens, valid UTF-8.
    detail = json.loads(
        response.content.decode("utf-8"), parse_constant=lambda token: pytest.fail(token)
    )["detail"]
    assert detail and all("input" in error for error in detail)


@pytest.mark.parametrize(
    "body",
    [
        # One error per unknown key: 60 KB of keys once made a 593 KB answer.
        {"feature": "abc def", **{f"k{n}": n for n in range(4500)}},
        {"feature": "f" * 60_000},
        {"feature": "abc def", "k" * 60_000: 1},
        {"feature": ["x" * 100] * 550},
        {"feature": "abc def", "context": [[["deep" * 10] * 10] * 10] * 10},
    ],
)
def test_a_422_echoes_only_a_bounded_excerpt_of_the_input(
    client: TestClient, body: dict[str, Any]
) -> None:
    sent = json.dumps(body).encode()
    assert 40_000 < len(sent) <= 65_536
    response = client.post("/api/stories", content=sent, headers=JSON)
    assert response.status_code == 422
    assert len(response.content) < 4096, len(response.content)
    detail = response.json()["detail"]
    assert 1 <= len(detail) <= 11
    assert detail[0]["loc"][0] == "body"


def test_a_422_says_how_many_errors_it_leaves_out(client: TestClient) -> None:
    body = {"feature": "abc def", **{f"k{n}": n for n in range(25)}}
    detail = client.post("/api/stories", json=body).json()["detail"]
    assert len(detail) == 11
    assert detail[-1]["type"] == "too_many_errors"
    assert detail[-1]["msg"] == "15 more errors not shown"


def test_a_short_input_is_echoed_whole(client: TestClient) -> None:
    detail = client.post("/api/stories", json={"feature": 42}).json()["detail"]
    assert detail[0]["input"] == 42
    detail = client.post("/api/stories", json={"feature": "ab"}).json()["detail"]
    assert detail[0]["input"] == "ab"


# Any character, lone surrogates often (they are 2048 of 1.1 million code points).
_ANY_CHARACTER = st.integers(0xD800, 0xDFFF).map(chr) | st.characters(exclude_categories=())
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(_ANY_CHARACTER, max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(_ANY_CHARACTER, max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
_BODIES = st.one_of(
    _JSON_VALUES,
    st.fixed_dictionaries(
        {"feature": st.text(_ANY_CHARACTER, max_size=50)},
        optional={
            "context": st.text(_ANY_CHARACTER, max_size=20) | st.none(),
            "persona": st.text(_ANY_CHARACTER, max_size=20) | st.none(),
        },
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_BODIES)
def test_any_json_body_is_answered_below_500(client: TestClient, body: Any) -> None:
    # json.dumps escapes lone surrogates as \udXXXX, exactly as a hostile client would send them.
    response = client.post("/api/stories", content=json.dumps(body).encode(), headers=JSON)
    assert response.status_code < 500, response.text


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
def test_any_bytes_are_answered_below_500(client: TestClient, raw: bytes) -> None:
    response = client.post("/api/stories", content=raw, headers=JSON)
    assert response.status_code < 500, response.text


# -- 4. 405 lists every method of the path ---------------------------------------------------


def _documented_methods(client: TestClient) -> dict[str, set[str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return {path: {method.upper() for method in ops} for path, ops in paths.items()}


@pytest.mark.parametrize("method", ["OPTIONS", "PUT", "PATCH", "TRACE"])
def test_405_allow_lists_every_method_of_the_path(client: TestClient, method: str) -> None:
    concrete = {"/api/stories/{story_set_id}": "/api/stories/0123456789abcdef0123456789abcdef"}
    for path, methods in _documented_methods(client).items():
        response = client.request(method, concrete.get(path, path))
        if method in methods:
            continue
        assert response.status_code == 405, (method, path)
        allowed = {m.strip() for m in response.headers["allow"].split(",")} - {"HEAD"}
        assert allowed == methods, (method, path, response.headers["allow"])


def test_405_on_the_list_path_names_get_and_post(client: TestClient) -> None:
    response = client.options("/api/stories")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.json() == {"detail": "Method Not Allowed"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/stories",
        "/api/stories?limit=5&q=x",
        "/api/stories/0123456789abcdef0123456789abcdef",
        "/healthz",
        "/readyz",
        "/docs",
        "/openapi.json",
        "/nowhere",
    ],
)
def test_head_answers_like_get_without_a_body(client: TestClient, path: str) -> None:
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == got.status_code, head.text
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))
    assert head.headers["content-security-policy"] == got.headers["content-security-policy"]


def test_head_of_an_existing_story_set_and_its_metrics_label(client: TestClient) -> None:
    created = client.post("/api/stories", json={"feature": "Seen by HEAD"}).json()
    assert client.head(f"/api/stories/{created['id']}").status_code == 200
    metrics = client.get("/metrics").text
    assert 'method="HEAD",route="/api/stories/{story_set_id}",status="200"' in metrics


def test_head_is_listed_with_get_in_allow(client: TestClient) -> None:
    response = client.put("/healthz")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert client.options("/api/stories").headers["allow"] == "GET, HEAD, POST"


# -- 5. the OpenAPI document says exactly what is validated ---------------------------------


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A JSON Schema validator for `schema`, its `$ref`s resolved in the OpenAPI document."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi",
        Resource.from_contents({**document, "$schema": Draft202012Validator.META_SCHEMA["$id"]}),
    )
    resolved = json.loads(json.dumps(schema).replace('"#/', '"urn:openapi#/'))
    return Draft202012Validator(resolved, registry=registry)


FEATURES = [
    "abc",
    "ab",
    "ab ",  # three characters as sent, two after trimming
    "   abc   ",
    "\tabc\n",
    " \x0b\x0cab\r",
    "a\x00bc",
    "abc\x00",
    "\u3000ab",  # an ideographic space is text here, not trimmed whitespace
    "ab\u00a0",
    "x" * 4000,
    "x" * 4001,
    "x" * 3999 + "  ",  # 4001 as sent
    " " * 10,
    "a b",
    "a  ",
]
TEXTS = ["", "   ", "plain", "a\x00b", "\x00", "c" * 4000, "c" * 4001, " c ", "\u3000"]


def test_story_request_schema_matches_validation(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    body_schema = document["paths"]["/api/stories"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    validator = _validator(document, body_schema)
    bodies: list[dict[str, Any]] = [{"feature": f} for f in FEATURES]
    bodies += [{"feature": "valid feature", "context": t} for t in TEXTS]
    bodies += [{"feature": "valid feature", "persona": t[:300]} for t in TEXTS]
    bodies += [{"feature": "valid feature", "persona": "p" * n} for n in (200, 201)]
    mismatches = []
    for body in bodies:
        documented = validator.is_valid(body)
        status = client.post("/api/stories", json=body).status_code
        if documented != (status == 202):
            mismatches.append((body, documented, status))
    assert not mismatches, mismatches


def test_stored_text_is_trimmed_of_ascii_whitespace_only(client: TestClient) -> None:
    created = client.post(
        "/api/stories", json={"feature": "\t Export \n", "context": "  ", "persona": " \u3000x "}
    ).json()
    assert created["feature"] == "Export"
    assert created["context"] is None
    assert created["persona"] == "\u3000x"


def test_list_query_schema_matches_validation(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    parameters = document["paths"]["/api/stories"]["get"]["parameters"]
    q_schema = next(p for p in parameters if p["name"] == "q")["schema"]
    validator = _validator(document, q_schema)
    mismatches = []
    for q in ["", "abc", "a\x00b", "\x00", "x" * 200, "x" * 201, " ", "\u3000", "\\"]:
        documented = validator.is_valid(q)
        status = client.get("/api/stories", params={"q": q}).status_code
        if documented != (status == 200):
            mismatches.append((q, documented, status))
    assert not mismatches, mismatches


@pytest.mark.parametrize("name", ["limit", "offset"])
def test_integer_bounds_are_in_the_document(client: TestClient, name: str) -> None:
    document = client.get("/openapi.json").json()
    parameters = document["paths"]["/api/stories"]["get"]["parameters"]
    validator = _validator(document, next(p for p in parameters if p["name"] == name)["schema"])
    mismatches = []
    for value in [-1, 0, 1, 2, 99, 100, 101, 999_999, 1_000_000, 1_000_001]:
        documented = validator.is_valid(value)
        status = client.get("/api/stories", params={name: str(value)}).status_code
        if documented != (status == 200):
            mismatches.append((value, documented, status))
    assert not mismatches, mismatches


def test_the_nul_rule_is_in_the_document(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]["StoryRequest"]
    properties = schemas["properties"]
    assert "\\x00" in properties["feature"]["pattern"]
    for name in ("context", "persona"):
        (text,) = [s for s in properties[name]["anyOf"] if s.get("type") == "string"]
        assert text["pattern"] == "^[^\\x00]*$"


def test_links_lead_from_an_id_to_the_operations_on_it(client: TestClient) -> None:
    """Each OpenAPI link names an operation of the document and fills only parameters it
    declares, and every answer naming a story set links to reading and deleting it."""
    paths = client.get("/openapi.json").json()["paths"]
    operations = {
        operation["operationId"]: operation
        for methods in paths.values()
        for operation in methods.values()
    }
    links = {
        (operation["operationId"], status): response.get("links", {})
        for operation in operations.values()
        for status, response in operation["responses"].items()
    }
    for (source, status), named in links.items():
        for name, link in named.items():
            target = operations[link["operationId"]]
            declared = {parameter["name"] for parameter in target.get("parameters", [])}
            assert set(link["parameters"]) <= declared, (source, status, name)
    for source, status in [
        ("create_story_set", "202"),
        ("list_story_sets", "200"),
        ("get_story_set", "200"),
        ("delete_story_set", "204"),
    ]:
        targets = {link["operationId"] for link in links[source, status].values()}
        assert targets == {"get_story_set", "delete_story_set"}, (source, status)


# -- 6. strict integers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["0.0", "5.0", "1e1", " 5", "5 ", "+5", "-0", "1_0", "0x5", "\u0665", "", "five"]
)
@pytest.mark.parametrize("name", ["limit", "offset"])
def test_integer_query_parameters_are_strict(client: TestClient, name: str, value: str) -> None:
    response = client.get("/api/stories", params={name: value})
    assert response.status_code == 422, (name, value, response.text)
    assert response.json()["detail"][0]["loc"] == ["query", name]


@pytest.mark.parametrize(("name", "value"), [("limit", "5"), ("limit", "05"), ("offset", "0")])
def test_decimal_integers_are_accepted(client: TestClient, name: str, value: str) -> None:
    response = client.get("/api/stories", params={name: value})
    assert response.status_code == 200
    assert response.json()[name] == int(value)


def test_huge_integers_are_422(client: TestClient) -> None:
    assert client.get("/api/stories", params={"offset": "9" * 5000}).status_code == 422


# -- 7. docs: off outside dev, and never a third-party script -------------------------------

EXTERNAL = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//""", re.IGNORECASE)


def _no_third_party_script(response: Any) -> None:
    page = response.text
    assert "<script" not in page.lower()
    assert not EXTERNAL.search(page), EXTERNAL.search(page)
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy


def test_dev_serves_self_contained_docs(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    _no_third_party_script(docs)
    assert "/api/stories" in docs.text and "StoryRequest" in docs.text
    assert 'href="/openapi.json"' in docs.text
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/redoc").status_code == 404
    assert client.get("/docs/oauth2-redirect").status_code == 404


def test_docs_escape_what_the_document_says(client: TestClient) -> None:
    from service.routes.docs import render_docs

    page = render_docs(
        {"info": {"title": "<script>alert(1)</script>"}, "paths": {}}, openapi_url="/o"
    )
    assert "<script>" not in page and "&lt;script&gt;" in page


def _safe_prod(migrated: SettingsFactory, **overrides: Any) -> Any:
    return migrated(app_env="prod", api_keys=KEY, generator="offline", **overrides)


def test_docs_are_off_outside_dev(migrated: SettingsFactory) -> None:
    with TestClient(create_app(_safe_prod(migrated))) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json() == {"detail": "Not Found"}
        assert client.get("/healthz").status_code == 200


def test_docs_enabled_turns_them_on_outside_dev(migrated: SettingsFactory) -> None:
    with TestClient(create_app(_safe_prod(migrated, docs_enabled=True))) as client:
        docs = client.get("/docs")
        assert docs.status_code == 200
        _no_third_party_script(docs)
        assert client.get("/openapi.json").json()["info"]["title"]
        assert client.get("/redoc").status_code == 404


def test_docs_can_be_turned_off_in_dev(migrated: SettingsFactory) -> None:
    with TestClient(create_app(migrated(docs_enabled=False))) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").status_code == 404


@pytest.mark.parametrize("path", ["/api/stories", "/healthz", "/metrics", "/nowhere"])
def test_every_answer_forbids_loading_scripts(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_500_carries_the_security_headers(client: TestClient) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]

    def broken(story_set_id: str) -> None:
        raise RuntimeError("a bug")

    runtime.repository.get = broken
    response = client.get("/api/stories/0123456789abcdef0123456789abcdef")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.headers["x-request-id"]) == 32
