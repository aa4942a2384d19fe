"""service/web/build.mjs: content hashes, rewritten references, minifiers, budget and safety checks."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from web_servers import WEB, build_dist

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

HASHED = re.compile(r"^(?P<stem>[\w-]+)\.(?P<hash>[0-9a-f]{10})\.(?P<ext>js|css|svg)$")


def run_node_module(code: str) -> str:
    """Run an ES module snippet with build.mjs's exports in scope; return its stdout."""
    prelude = f"import * as b from {json.dumps((WEB / 'build.mjs').as_uri())};\n"
    result = subprocess.run(
        ["node", "--input-type=module", "-e", prelude + code],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def minify_js(source: str) -> str:
    """build.mjs's minifyJs on `source`."""
    return run_node_module(f"process.stdout.write(b.minifyJs({json.dumps(source)}));")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build") / "dist"
    result = build_dist(out)
    assert result.returncode == 0, result.stderr
    assert "total" in result.stdout
    return out


def assets_of(out: Path) -> dict[str, Path]:
    """Hashed asset files by their source stem (app, api, stories, styles, favicon)."""
    found = {}
    for path in (out / "assets").iterdir():
        m = HASHED.match(path.name)
        if m:
            found[m["stem"]] = path
    return found


def test_every_asset_is_named_by_the_hash_of_its_bytes(built: Path) -> None:
    assets = assets_of(built)
    assert set(assets) == {"app", "api", "stories", "styles", "favicon"}
    for path in assets.values():
        m = HASHED.match(path.name)
        assert m is not None
        assert hashlib.sha256(path.read_bytes()).hexdigest()[:10] == m["hash"]


def test_index_html_references_the_hashed_assets(built: Path) -> None:
    html = (built / "index.html").read_text()
    assets = assets_of(built)
    assert f'<link rel="stylesheet" href="/assets/{assets["styles"].name}"' in html
    assert f'<script type="module" src="/assets/{assets["app"].name}"' in html
    assert f'href="/assets/{assets["favicon"].name}"' in html
    for module in ("api", "stories"):
        assert f'<link rel="modulepreload" href="/assets/{assets[module].name}"' in html
    # Nothing still points at an unhashed source file.
    assert not re.search(r'(src|href)="/(app|api|stories)\.js"', html)
    assert 'href="/styles.css"' not in html
    referenced = re.findall(r'(?:src|href)="/assets/([^"]+)"', html)
    for name in referenced:
        assert (built / "assets" / name).is_file(), name


def test_module_imports_are_rewritten_to_hashed_siblings(built: Path) -> None:
    assets = assets_of(built)
    app = assets["app"].read_text()
    assert f'from"./{assets["api"].name}"' in app
    assert f'from"./{assets["stories"].name}"' in app
    assert './api.js"' not in app and './stories.js"' not in app


def test_subresource_integrity_matches_the_files(built: Path) -> None:
    html = (built / "index.html").read_text()
    pairs = re.findall(r'(?:src|href)="/assets/([^"]+)" integrity="sha384-([^"]+)"', html)
    assert len(pairs) == 4  # stylesheet, entry script, two preloads
    for name, digest in pairs:
        expected = base64.b64encode(hashlib.sha384((built / "assets" / name).read_bytes()).digest())
        assert digest == expected.decode()


def test_minified_and_gzipped_twins(built: Path) -> None:
    sources = {"app": "app.js", "api": "api.js", "stories": "stories.js", "styles": "styles.css"}
    for stem, path in assets_of(built).items():
        if stem in sources:
            assert path.stat().st_size < (WEB / "src" / sources[stem]).stat().st_size * 0.85, path
        twin = path.with_name(path.name + ".gz")
        assert gzip.decompress(twin.read_bytes()) == path.read_bytes()
    for path in (built / "assets").glob("*.js"):
        check = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    assert "\n  " not in (built / "index.html").read_text()


def test_manifest_lists_files_and_stays_in_budget(built: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["total_gzip_bytes"] < 50 * 1024
    assert {f["file"] for f in manifest["files"]} == {
        "index.html",
        *(f"assets/{p.name}" for p in assets_of(built).values()),
    }
    assert manifest["assets"]["app.js"] == f"assets/{assets_of(built)['app'].name}"


def test_builds_are_reproducible(built: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert build_dist(again).returncode == 0
    for path in built.rglob("*"):
        if path.is_file():
            assert (again / path.relative_to(built)).read_bytes() == path.read_bytes(), path


def test_a_changed_module_renames_it_and_its_importers_only(built: Path, tmp_path: Path) -> None:
    src = shutil.copytree(WEB / "src", tmp_path / "src")
    stories = src / "stories.js"
    stories.write_text(stories.read_text() + "\nexport const VERSION = 2;\n")
    out = tmp_path / "dist"
    result = build_dist(out, "--src", str(src))
    assert result.returncode == 0, result.stderr
    before, after = assets_of(built), assets_of(out)
    assert after["stories"].name != before["stories"].name
    assert after["app"].name != before["app"].name  # it imports stories.js
    assert after["api"].name == before["api"].name
    assert after["styles"].name == before["styles"].name
    assert f'from"./{after["stories"].name}"' in after["app"].read_text()


def test_a_reference_to_a_missing_file_fails_the_build(tmp_path: Path) -> None:
    src = shutil.copytree(WEB / "src", tmp_path / "src")
    (src / "api.js").unlink()
    result = build_dist(tmp_path / "dist", "--src", str(src))
    assert result.returncode == 2
    assert "app.js references ./api.js, which does not exist" in result.stderr


def test_over_budget_fails_the_build(tmp_path: Path) -> None:
    result = build_dist(tmp_path / "dist", "--budget-kb", "1")
    assert result.returncode == 2
    assert "over the 1 KB budget" in result.stderr


def test_refuses_to_empty_a_directory_that_is_not_a_build(tmp_path: Path) -> None:
    keep = tmp_path / "precious.txt"
    keep.write_text("do not delete")
    result = build_dist(tmp_path)
    assert result.returncode == 2
    assert "refusing to empty it" in result.stderr
    assert keep.read_text() == "do not delete"


def test_unknown_argument_is_rejected() -> None:
    result = subprocess.run(
        ["node", str(WEB / "build.mjs"), "--nope"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown argument --nope" in result.stderr


def test_build_uses_node_builtins_only() -> None:
    source = (WEB / "build.mjs").read_text()
    imports = re.findall(r'^import .* from "([^"]+)";$', source, flags=re.M)
    assert imports and all(spec.startswith("node:") for spec in imports), imports


TRICKY_JS = r"""
const re = /[/`'"]\/\/x/g; // a regex holding quotes, a backtick and //
const half = 10 / 2 / 5;
const inc = (a) => { let b = a; b++
  return b };
const s = "/* not a comment */ // nor this";
const t = `outer ${`inner ${1 + 1}`} /* kept */ ${{ a: 1 }.a}`;
const neg = 5 - -3, pos = 1 + +"2";
const n = 1.5e-3, big = 0x1F;
function f() {
  return /ab+c/.test("xabbcx")
}
const asi = 1
const arr = [1, 2]
const div = arr.length / 2 / 1;
const words = typeof re === "object" && !!/x/.exec("x");
export const result = [re.source, half, inc(1), s, t, neg, pos, n, big, f(), asi, div, words];
"""


def test_minified_javascript_behaves_the_same() -> None:
    minified = minify_js(TRICKY_JS)
    assert "a regex holding" not in minified  # comments went
    assert "/* not a comment */ // nor this" in minified  # strings did not
    assert "/* kept */" in minified  # nor template text
    assert len(minified) < len(TRICKY_JS)

    def evaluate(code: str) -> str:
        runner = (
            "const m = await import('data:text/javascript;base64,' + "
            f"{json.dumps(base64.b64encode(code.encode()).decode())});"
            "process.stdout.write(JSON.stringify(m.result));"
        )
        result = subprocess.run(
            ["node", "--input-type=module", "-e", runner], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert evaluate(minified) == evaluate(TRICKY_JS)


def test_css_minifier_keeps_strings_and_combinators() -> None:
    css = '/* c */\na > b  +  c ,\n d { content: "  a  /* b */  " ;  width: calc(1px + 2px) ; }\n'
    out = run_node_module(f"process.stdout.write(b.minifyCss({json.dumps(css)}));")
    assert out == 'a>b + c,d{content: "  a  /* b */  ";width: calc(1px + 2px)}\n'


def test_html_minifier_keeps_textarea_and_pre_content() -> None:
    html = "<!-- note -->\n<div>\n  <pre>  a\n   b</pre>\n  <textarea>\n x </textarea>\n</div>\n"
    out = run_node_module(f"process.stdout.write(b.minifyHtml({json.dumps(html)}));")
    assert out == "<div><pre>  a\n   b</pre><textarea>\n x </textarea></div>\n"
