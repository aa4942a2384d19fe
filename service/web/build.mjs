#!/usr/bin/env node
// Production build of the web front end, with Node built-ins only (no npm packages: the image build
// reaches no package registry). Runs on Node 18+.
//
//   node service/web/build.mjs [--src DIR] [--out DIR] [--budget-kb N]
//
// From src/index.html it follows the local assets it references (stylesheets, scripts, icons, and
// the ES modules those scripts import), minifies each, names it assets/<name>.<hash>.<ext> after the
// SHA-256 of its final bytes (dependencies first, so a changed module changes every importer's name),
// rewrites every reference, and writes index.html, a .gz twin of each compressible file (for nginx's
// gzip_static) and manifest.json. It fails if the gzipped total exceeds the budget.

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import zlib from "node:zlib";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MARKER = "manifest.json";
const COMPRESSIBLE = new Set([".html", ".js", ".mjs", ".css", ".svg", ".json", ".txt"]);

export class BuildError extends Error {
  constructor(message) {
    super(message);
    this.name = "BuildError";
  }
}

// ---- JavaScript: drop comments and needless whitespace, never touching strings, templates, regexes --

const IDENT = /[A-Za-z0-9_$\u0080-\uffff]/;
// After these keywords a "/" starts a regular expression, not a division.
const REGEX_AFTER_WORD = new Set([
  "return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case", "do", "else",
  "yield", "await",
]);
// A newline after one of these characters can never end a statement, so it can go.
const NEWLINE_DROPPABLE_AFTER = new Set("{([,;:=?&|*<>!~^%.".split(""));

function needsSpace(before, after) {
  if (IDENT.test(before) && IDENT.test(after)) return true;
  if ((before === "+" || before === "-") && before === after) return true; // a + +b, a - -b
  if (before === "/" && (after === "/" || after === "*")) return true; // would open a comment
  if (/[0-9]/.test(before) && after === ".") return true; // 1 .toString()
  return false;
}

/** Minifies ES module source: removes comments, indentation and spaces, keeps statement-ending newlines. */
export function minifyJs(src) {
  let out = "";
  let i = 0;
  const n = src.length;
  let gapSpace = false;
  let gapNewline = false;
  let lastWord = ""; // last identifier/keyword token, "" if the last token was not a word
  let lastChar = ""; // last character emitted by a significant token
  let lastWasValue = false; // last token ends an expression (ident, number, string, `)`, `]`, `}`)
  let braceDepth = 0;
  const templateStack = []; // brace depth at which each open `${` returns to its template

  const emit = (text, { word = "", value = false } = {}) => {
    if (out.length) {
      if (gapNewline && !NEWLINE_DROPPABLE_AFTER.has(lastChar)) out += "\n";
      else if ((gapSpace || gapNewline) && needsSpace(out[out.length - 1], text[0])) out += " ";
    }
    gapSpace = false;
    gapNewline = false;
    out += text;
    lastWord = word;
    lastChar = text[text.length - 1];
    lastWasValue = value;
  };

  // Reads template characters from i (just after ` or a closing }) to the closing ` or to `${`.
  const readTemplateChunk = () => {
    const start = i;
    while (i < n) {
      const c = src[i];
      if (c === "\\") {
        i += 2;
      } else if (c === "`") {
        i += 1;
        return { text: src.slice(start, i), open: false };
      } else if (c === "$" && src[i + 1] === "{") {
        i += 2;
        return { text: src.slice(start, i), open: true };
      } else {
        i += 1;
      }
    }
    throw new BuildError("unterminated template literal");
  };

  const regexAllowed = () => {
    if (lastWord) return REGEX_AFTER_WORD.has(lastWord);
    if (!lastChar) return true;
    if (lastWasValue) return false;
    // `a++ / b` and `a-- / b`: postfix operators end a value.
    if ((lastChar === "+" || lastChar === "-") && out.endsWith(lastChar + lastChar)) return false;
    return true;
  };

  while (i < n) {
    const c = src[i];
    const next = src[i + 1];
    if (c === "\n" || c === "\r" || c === "\u2028" || c === "\u2029") {
      gapNewline = true;
      i += 1;
    } else if (c === " " || c === "\t" || c === "\f" || c === "\v" || c === "\ufeff" || c === "\u00a0") {
      gapSpace = true;
      i += 1;
    } else if (c === "/" && next === "/") {
      while (i < n && src[i] !== "\n") i += 1;
    } else if (c === "/" && next === "*") {
      const end = src.indexOf("*/", i + 2);
      if (end < 0) throw new BuildError("unterminated comment");
      if (/[\n\r]/.test(src.slice(i, end))) gapNewline = true;
      else gapSpace = true;
      i = end + 2;
    } else if (c === "'" || c === '"') {
      const start = i;
      i += 1;
      while (i < n && src[i] !== c) {
        if (src[i] === "\\") i += 1;
        else if (src[i] === "\n") throw new BuildError("unterminated string literal");
        i += 1;
      }
      i += 1;
      emit(src.slice(start, i), { value: true });
    } else if (c === "`") {
      i += 1;
      const chunk = readTemplateChunk();
      if (chunk.open) templateStack.push(braceDepth);
      emit(`\`${chunk.text}`, { value: !chunk.open });
    } else if (c === "}" && templateStack.length && templateStack[templateStack.length - 1] === braceDepth) {
      templateStack.pop();
      i += 1;
      const chunk = readTemplateChunk();
      if (chunk.open) templateStack.push(braceDepth);
      gapSpace = false;
      gapNewline = false;
      out += `}${chunk.text}`; // whitespace before this } is inside ${ }, safe to drop
      lastWord = "";
      lastChar = out[out.length - 1];
      lastWasValue = !chunk.open;
    } else if (c === "/" && regexAllowed()) {
      const start = i;
      i += 1;
      let inClass = false;
      while (i < n) {
        const r = src[i];
        if (r === "\\") i += 1;
        else if (r === "[") inClass = true;
        else if (r === "]") inClass = false;
        else if (r === "/" && !inClass) break;
        else if (r === "\n") throw new BuildError("unterminated regular expression");
        i += 1;
      }
      i += 1;
      while (i < n && IDENT.test(src[i])) i += 1; // flags
      emit(src.slice(start, i), { value: true });
    } else if (IDENT.test(c)) {
      const start = i;
      // Numbers may hold a "." or an exponent sign: 1.5, 1e-5.
      if (/[0-9]/.test(c)) {
        while (i < n && (IDENT.test(src[i]) || src[i] === "." || ((src[i] === "-" || src[i] === "+") && /[eE]/.test(src[i - 1]) && !/^0[xX]/.test(src.slice(start, i))))) i += 1;
      } else {
        while (i < n && IDENT.test(src[i])) i += 1;
      }
      const word = src.slice(start, i);
      emit(word, { word: /^[0-9]/.test(word) ? "" : word, value: !REGEX_AFTER_WORD.has(word) });
    } else {
      if (c === "{") braceDepth += 1;
      else if (c === "}") braceDepth -= 1;
      i += 1;
      emit(c, { value: c === ")" || c === "]" || c === "}" });
    }
  }
  if (templateStack.length) throw new BuildError("unterminated template literal");
  return `${out}\n`;
}

// ---- CSS and HTML ---------------------------------------------------------------------------------

/** Minifies CSS: comments and whitespace go; strings are kept as written. */
export function minifyCss(src) {
  const STRING = /("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')/;
  const withoutComments = src.replace(
    new RegExp(`${STRING.source}|\\/\\*[\\s\\S]*?\\*\\/`, "g"),
    (m, str) => str || " ",
  );
  // split() with a capturing group puts the strings at the odd indexes.
  const squeezed = withoutComments
    .split(STRING)
    .map((part, k) =>
      k % 2
        ? part
        : part
            .replace(/\s+/g, " ")
            .replace(/\s*([{};,>])\s*/g, "$1")
            .replace(/;}/g, "}"),
    )
    .join("");
  return `${squeezed.trim()}\n`;
}

/** Minifies HTML: comments go and whitespace runs become one space (none between tags). */
export function minifyHtml(src) {
  const keep = [];
  // Whitespace inside these elements is content.
  const guarded = src.replace(
    /(<(pre|textarea|script|style)\b[^>]*>)([\s\S]*?)(<\/\2>)/gi,
    (m, open, tag, body, close) => {
      keep.push(body);
      return `${open}\u0000${keep.length - 1}\u0000${close}`;
    },
  );
  const squeezed = guarded
    .replace(/<!--(?!\[)[\s\S]*?-->/g, "")
    .replace(/\s+/g, " ")
    .replace(/>\s+</g, "><")
    .trim();
  return `${squeezed.replace(/\u0000(\d+)\u0000/g, (_, k) => keep[Number(k)])}\n`;
}

// ---- references -------------------------------------------------------------------------------------

const LOCAL = (ref) => !/^([a-z][a-z0-9+.-]*:|\/\/|#|$)/i.test(ref);

function stripQuery(ref) {
  const cut = ref.search(/[?#]/);
  return cut < 0 ? ref : ref.slice(0, cut);
}

// Where a reference written in `fromFile` points, as an absolute path inside srcRoot.
function resolveRef(srcRoot, fromFile, ref) {
  const clean = stripQuery(ref);
  const target = clean.startsWith("/")
    ? path.join(srcRoot, clean)
    : path.resolve(path.dirname(fromFile), clean);
  if (!target.startsWith(srcRoot + path.sep)) {
    throw new BuildError(`${path.relative(srcRoot, fromFile)} references ${ref}, outside ${srcRoot}`);
  }
  if (!fs.existsSync(target) || !fs.statSync(target).isFile()) {
    throw new BuildError(`${path.relative(srcRoot, fromFile)} references ${ref}, which does not exist`);
  }
  return target;
}

const JS_IMPORT = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s*)(["'])([^"'\n]+)\2/g;
const CSS_URL = /url\(\s*(["']?)([^"')]+)\1\s*\)/g;
const HTML_TAG = /<(link|script|img|source)\b[^>]*>/gi;
const HTML_REF_ATTR = /\b(href|src)=(["'])([^"']+)\2/gi;

// The local files a source file references, in order of appearance.
function referencesOf(srcRoot, file, text) {
  const ext = path.extname(file);
  const refs = [];
  if (ext === ".js" || ext === ".mjs") {
    for (const m of text.matchAll(JS_IMPORT)) if (m[3].startsWith(".") || m[3].startsWith("/")) refs.push(m[3]);
  } else if (ext === ".css") {
    for (const m of text.matchAll(CSS_URL)) if (LOCAL(m[2]) && !m[2].startsWith("data:")) refs.push(m[2]);
  }
  return refs.map((ref) => resolveRef(srcRoot, file, ref));
}

function rewriteRefs(srcRoot, file, text, nameOf) {
  const ext = path.extname(file);
  const swap = (ref, relative) => {
    const target = nameOf.get(resolveRef(srcRoot, file, ref));
    // Hashed files all sit in one folder: modules and CSS refer to siblings, HTML to /assets/.
    return relative ? `./${target}` : `/assets/${target}`;
  };
  if (ext === ".js" || ext === ".mjs") {
    return text.replace(JS_IMPORT, (m, lead, q, ref) =>
      ref.startsWith(".") || ref.startsWith("/") ? `${lead}${q}${swap(ref, true)}${q}` : m,
    );
  }
  if (ext === ".css") {
    return text.replace(CSS_URL, (m, q, ref) => (LOCAL(ref) ? `url(${q}${swap(ref, true)}${q})` : m));
  }
  return text;
}

const MINIFY = { ".js": minifyJs, ".mjs": minifyJs, ".css": minifyCss, ".html": minifyHtml };

function sri(bytes) {
  return `sha384-${createHash("sha384").update(bytes).digest("base64")}`;
}

// ---- build ------------------------------------------------------------------------------------------

function prepareOut(outDir) {
  if (fs.existsSync(outDir)) {
    const entries = fs.readdirSync(outDir);
    if (entries.length && !entries.includes(MARKER)) {
      throw new BuildError(`${outDir} exists and is not a previous build (no ${MARKER}); refusing to empty it`);
    }
    fs.rmSync(outDir, { recursive: true, force: true });
  }
  fs.mkdirSync(path.join(outDir, "assets"), { recursive: true });
}

/** Builds srcDir into outDir; returns the manifest (also written as outDir/manifest.json). */
export function build({ srcDir = path.join(HERE, "src"), outDir = path.join(HERE, "dist"), budgetKb = 50 } = {}) {
  const srcRoot = path.resolve(srcDir);
  const out = path.resolve(outDir);
  const indexPath = path.join(srcRoot, "index.html");
  if (!fs.existsSync(indexPath)) throw new BuildError(`${indexPath} not found`);
  const html = fs.readFileSync(indexPath, "utf8");

  // Assets named by index.html.
  const entryRefs = []; // [tagText, attrRef, absolute path]
  for (const tag of html.matchAll(HTML_TAG)) {
    for (const attr of tag[0].matchAll(HTML_REF_ATTR)) {
      if (LOCAL(attr[3]) && attr[3] !== "/") entryRefs.push(resolveRef(srcRoot, indexPath, attr[3]));
    }
  }

  // Depth-first over the reference graph: a file is emitted after everything it references.
  const nameOf = new Map(); // absolute source path -> hashed file name
  const files = []; // {source, name, bytes}
  const visiting = new Set();
  const visit = (file) => {
    if (nameOf.has(file)) return;
    if (visiting.has(file)) throw new BuildError(`reference cycle through ${path.relative(srcRoot, file)}`);
    visiting.add(file);
    const ext = path.extname(file);
    const raw = fs.readFileSync(file);
    let bytes = raw;
    if (MINIFY[ext]) {
      const text = raw.toString("utf8");
      for (const dep of referencesOf(srcRoot, file, text)) visit(dep);
      bytes = Buffer.from(MINIFY[ext](rewriteRefs(srcRoot, file, text, nameOf)), "utf8");
    } else if (ext === ".svg") {
      bytes = Buffer.from(minifyHtml(raw.toString("utf8")), "utf8");
    }
    const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 10);
    const name = `${path.basename(file, ext)}.${hash}${ext}`;
    visiting.delete(file);
    nameOf.set(file, name);
    files.push({ source: path.relative(srcRoot, file), absolute: file, name, bytes });
  };
  for (const file of entryRefs) visit(file);

  // Every module the entry scripts import, transitively, is preloaded to avoid a request waterfall.
  const byAbsolute = new Map(files.map((f) => [f.absolute, f]));
  const preloads = [];
  const seen = new Set();
  const collect = (file) => {
    for (const dep of referencesOf(srcRoot, file, fs.readFileSync(file, "utf8"))) {
      if (seen.has(dep) || ![".js", ".mjs"].includes(path.extname(dep))) continue;
      seen.add(dep);
      preloads.push(byAbsolute.get(dep));
      collect(dep);
    }
  };
  for (const file of entryRefs) if ([".js", ".mjs"].includes(path.extname(file))) collect(file);

  let indexHtml = html.replace(HTML_TAG, (tag) => {
    let rewritten = tag.replace(HTML_REF_ATTR, (m, attr, q, ref) => {
      if (!LOCAL(ref) || ref === "/") return m;
      return `${attr}=${q}/assets/${nameOf.get(resolveRef(srcRoot, indexPath, ref))}${q}`;
    });
    // Subresource integrity for the stylesheet and scripts.
    const isStylesheet = /^<link\b/i.test(tag) && /\brel=["']stylesheet["']/i.test(tag);
    const isScript = /^<script\b/i.test(tag);
    if ((isStylesheet || isScript) && !/\bintegrity=/i.test(tag)) {
      const ref = (tag.match(HTML_REF_ATTR) || [])[0];
      if (ref) {
        const target = resolveRef(srcRoot, indexPath, ref.replace(/^[^=]+=["']|["']$/g, ""));
        rewritten = rewritten.replace(/\s*\/?>$/, ` integrity="${sri(byAbsolute.get(target).bytes)}">`);
      }
    }
    return rewritten;
  });
  const preloadTags = preloads
    .map((f) => `<link rel="modulepreload" href="/assets/${f.name}" integrity="${sri(f.bytes)}">`)
    .join("");
  if (preloadTags) indexHtml = indexHtml.replace(/<\/head>/i, `${preloadTags}</head>`);
  const indexBytes = Buffer.from(minifyHtml(indexHtml), "utf8");

  prepareOut(out);
  const written = [];
  const write = (relPath, bytes, source) => {
    const target = path.join(out, relPath);
    fs.writeFileSync(target, bytes);
    const entry = { source, file: relPath, bytes: bytes.length, gzip_bytes: bytes.length };
    if (COMPRESSIBLE.has(path.extname(relPath))) {
      const gz = zlib.gzipSync(bytes, { level: 9 });
      entry.gzip_bytes = gz.length;
      if (gz.length < bytes.length) fs.writeFileSync(`${target}.gz`, gz);
    }
    written.push(entry);
  };
  for (const f of files) write(path.join("assets", f.name), f.bytes, f.source);
  write("index.html", indexBytes, "index.html");

  const totalGzip = written.reduce((sum, e) => sum + e.gzip_bytes, 0);
  const manifest = {
    files: written,
    assets: Object.fromEntries(files.map((f) => [f.source, `assets/${f.name}`])),
    total_bytes: written.reduce((sum, e) => sum + e.bytes, 0),
    total_gzip_bytes: totalGzip,
    budget_gzip_bytes: budgetKb * 1024,
  };
  fs.writeFileSync(path.join(out, MARKER), `${JSON.stringify(manifest, null, 2)}\n`);
  if (totalGzip > budgetKb * 1024) {
    throw new BuildError(`assets are ${totalGzip} bytes gzipped, over the ${budgetKb} KB budget`);
  }
  return manifest;
}

function parseArgs(argv) {
  const opts = {};
  for (let k = 0; k < argv.length; k += 1) {
    const arg = argv[k];
    const value = () => {
      if (k + 1 >= argv.length) throw new BuildError(`${arg} needs a value`);
      k += 1;
      return argv[k];
    };
    if (arg === "--out") opts.outDir = value();
    else if (arg === "--src") opts.srcDir = value();
    else if (arg === "--budget-kb") opts.budgetKb = Number(value());
    else if (arg === "-h" || arg === "--help") opts.help = true;
    else throw new BuildError(`unknown argument ${arg} (try --help)`);
  }
  return opts;
}

function main() {
  try {
    const opts = parseArgs(process.argv.slice(2));
    if (opts.help) {
      console.log("usage: node build.mjs [--src DIR] [--out DIR] [--budget-kb N]");
      return;
    }
    const manifest = build(opts);
    for (const e of manifest.files) {
      console.log(`${e.file.padEnd(40)} ${String(e.bytes).padStart(7)} B  ${String(e.gzip_bytes).padStart(6)} B gzip`);
    }
    console.log(`total ${manifest.total_bytes} B, ${manifest.total_gzip_bytes} B gzip (budget ${manifest.budget_gzip_bytes} B)`);
  } catch (err) {
    console.error(`build failed: ${err.message}`);
    process.exitCode = err instanceof BuildError ? 2 : 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) main();
