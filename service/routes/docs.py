"""`/openapi.json` and `/docs`, where DOCS_ENABLED allows (dev by default).

The docs page is rendered here from the OpenAPI document: plain HTML and an inline style, no
script at all (FastAPI's Swagger UI and ReDoc pages load theirs from a CDN), and a
Content-Security-Policy that would block one anyway.
"""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from service.deps import limit_operations, runtime_of

router = APIRouter(include_in_schema=False)

DOCS_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #1f2328; }
code, pre { font: 13px ui-monospace, monospace; }
h2 { margin-top: 2.5rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { text-align: left; vertical-align: top; padding: .25rem .75rem .25rem 0; }
.method { font-weight: bold; text-transform: uppercase; }
"""


def _require_docs(request: Request) -> None:
    """404, as for any unknown path, unless this deployment serves its docs; then the
    operations rate limit (the document is rendered anew for each request)."""
    runtime = runtime_of(request)
    if not runtime.settings.serves_docs:
        raise HTTPException(404, "Not Found")
    limit_operations(request, runtime)


@router.get("/openapi.json")
async def openapi_document(request: Request) -> Response:
    """The OpenAPI document of the app."""
    _require_docs(request)
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def docs_page(request: Request) -> Response:
    """The API reference as one self-contained HTML page."""
    _require_docs(request)
    root = request.scope.get("root_path", "")
    page = render_docs(request.app.openapi(), openapi_url=f"{root}/openapi.json")
    return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CSP})


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _type_text(schema: dict[str, Any]) -> str:
    """A schema in one line of HTML: type, reference or union, with its constraints."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    if "anyOf" in schema:
        return " | ".join(_type_text(option) for option in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(f"<code>{_e(json.dumps(v))}</code>" for v in schema["enum"])
    if "const" in schema:
        return f"<code>{_e(json.dumps(schema['const']))}</code>"
    text = _e(schema.get("type", "any"))
    if schema.get("type") == "array" and "items" in schema:
        text = f"array of {_type_text(schema['items'])}"
    constraints = [
        f"{label} <code>{_e(json.dumps(schema[key]))}</code>"
        for key, label in (
            ("minLength", "min length"),
            ("maxLength", "max length"),
            ("minItems", "min items"),
            ("maxItems", "max items"),
            ("minimum", "min"),
            ("maximum", "max"),
            ("pattern", "pattern"),
            ("format", "format"),
            ("default", "default"),
        )
        if key in schema
    ]
    return text + (f" ({', '.join(constraints)})" if constraints else "")


def _operation(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    parts = [
        f'<h3><span class="method">{_e(method)}</span> <code>{_e(path)}</code> '
        f"{_e(operation.get('summary', ''))}</h3>"
    ]
    if operation.get("description"):
        parts.append(f"<p>{_e(operation['description'])}</p>")
    if operation.get("security"):
        parts.append("<p>Needs <code>Authorization: Bearer &lt;API key&gt;</code>.</p>")
    parameters = operation.get("parameters", [])
    if parameters:
        parts.append("<table><tr><th>Parameter</th><th>In</th><th>Schema</th></tr>")
        for parameter in parameters:
            required = " (required)" if parameter.get("required") else ""
            parts.append(
                f"<tr><td><code>{_e(parameter['name'])}</code>{required}</td>"
                f"<td>{_e(parameter.get('in', ''))}</td>"
                f"<td>{_type_text(parameter.get('schema', {}))}</td></tr>"
            )
        parts.append("</table>")
    for media_type, body in operation.get("requestBody", {}).get("content", {}).items():
        parts.append(f"<p>Body (<code>{_e(media_type)}</code>): {_type_text(body['schema'])}</p>")
    parts.append("<table><tr><th>Status</th><th>Meaning</th><th>Body</th></tr>")
    for status, response in operation.get("responses", {}).items():
        bodies = [
            _type_text(content["schema"])
            for content in response.get("content", {}).values()
            if "schema" in content
        ]
        parts.append(
            f"<tr><td>{_e(status)}</td><td>{_e(response.get('description', ''))}</td>"
            f"<td>{', '.join(bodies)}</td></tr>"
        )
    parts.append("</table>")
    return parts


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    parts = [f'<h3 id="schema-{_e(name)}">{_e(name)}</h3>']
    if schema.get("description"):
        parts.append(f"<p>{_e(schema['description'])}</p>")
    properties = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        parts.append("<table><tr><th>Field</th><th>Schema</th><th>About</th></tr>")
        for field, spec in properties.items():
            marker = " (required)" if field in required else ""
            parts.append(
                f"<tr><td><code>{_e(field)}</code>{marker}</td><td>{_type_text(spec)}</td>"
                f"<td>{_e(spec.get('description', ''))}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append(f"<p>{_type_text(schema)}</p>")
    return parts


def render_docs(document: dict[str, Any], *, openapi_url: str) -> str:
    """The whole page for an OpenAPI document; every value from it is HTML-escaped."""
    info = document.get("info", {})
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(info.get('title', 'API'))}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(info.get('title', 'API'))} <small>{_e(info.get('version', ''))}</small></h1>",
        f"<p>{_e(info.get('description', ''))}</p>",
        f'<p>Machine-readable: <a href="{_e(openapi_url)}">{_e(openapi_url)}</a> '
        f"(OpenAPI {_e(document.get('openapi', ''))}).</p>",
        "<h2>Operations</h2>",
    ]
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            parts.extend(_operation(path, method, operation))
    schemas = document.get("components", {}).get("schemas", {})
    if schemas:
        parts.append("<h2>Schemas</h2>")
        for name, schema in schemas.items():
            parts.extend(_schema(name, schema))
    parts.append("</body></html>")
    return "\n".join(parts)
