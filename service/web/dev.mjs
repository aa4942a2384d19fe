#!/usr/bin/env node
// Development server: serves src/ as is (no build step) and proxies /api to the backend, with the
// same routes and Content-Security-Policy as nginx.conf. Node built-ins only; Node 18+.
//
//   node service/web/dev.mjs [--port 5173] [--api 127.0.0.1:8000] [--root DIR]
//
// For production-like serving, run nginx with WEB_ROOT pointing at src/ or a build (see docs/web.md).

import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "application/javascript; charset=utf-8",
  ".mjs": "application/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".json": "application/json",
  ".png": "image/png",
  ".ico": "image/x-icon",
};
// Kept in step with nginx.conf, so a CSP mistake shows up in development too.
const SECURITY_HEADERS = {
  "Content-Security-Policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "strict-origin-when-cross-origin",
};

function parseArgs(argv) {
  const opts = { port: 5173, api: process.env.API_UPSTREAM || "127.0.0.1:8000", root: path.join(HERE, "src") };
  for (let k = 0; k < argv.length; k += 2) {
    const [flag, value] = [argv[k], argv[k + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--port") opts.port = Number(value);
    else if (flag === "--api") opts.api = value;
    else if (flag === "--root") opts.root = path.resolve(value);
    else throw new Error(`unknown argument ${flag}`);
  }
  return opts;
}

/** A short plain-text answer, unless one has started already (then the connection is cut). */
function answer(res, status, text) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { ...SECURITY_HEADERS, "Content-Type": "text/plain; charset=utf-8" });
  res.end(text);
}

function proxy(req, res, api) {
  const [host, port] = [api.slice(0, api.lastIndexOf(":")), Number(api.slice(api.lastIndexOf(":") + 1))];
  const upstream = http.request(
    { host, port, method: req.method, path: req.url, headers: { ...req.headers, host: api } },
    (reply) => {
      res.writeHead(reply.statusCode, { ...SECURITY_HEADERS, ...reply.headers });
      reply.on("error", () => res.destroy());
      reply.pipe(res);
    },
  );
  upstream.on("error", () => {
    if (res.headersSent) {
      res.destroy(); // the backend went away mid-answer
      return;
    }
    // The same answer nginx gives when the backend is down.
    res.writeHead(503, { ...SECURITY_HEADERS, "Content-Type": "application/json" });
    res.end('{"detail":"The story service is not reachable right now. Try again in a moment."}');
  });
  req.on("error", () => upstream.destroy());
  req.pipe(upstream);
}

function serveFile(res, file, status = 200) {
  const stream = fs.createReadStream(file);
  stream.on("error", () => answer(res, 404, "not found\n")); // gone between the check and the read
  stream.on("open", () => {
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      "Content-Type": TYPES[path.extname(file)] || "application/octet-stream",
      "Cache-Control": "no-cache",
    });
    stream.pipe(res);
  });
}

/** The file under `root` a request path names, or null when the path cannot be decoded. */
function fileFor(root, pathname) {
  let decoded;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null; // a malformed percent-encoding such as /%E0%A4%A
  }
  return path.join(root, path.normalize(decoded));
}

function handle(req, res, { api, root }) {
  const url = new URL(req.url, "http://localhost");
  if (url.pathname === "/healthz") {
    res.writeHead(200, { ...SECURITY_HEADERS, "Content-Type": "text/plain" });
    res.end("ok\n");
    return;
  }
  if (url.pathname.startsWith("/api/")) {
    proxy(req, res, api);
    return;
  }
  const file = fileFor(root, url.pathname);
  if (file === null) {
    answer(res, 400, "bad request: the path is not valid percent-encoded UTF-8\n");
  } else if (file.startsWith(root + path.sep) && fs.existsSync(file) && fs.statSync(file).isFile()) {
    serveFile(res, file);
  } else if (/\.[A-Za-z0-9]+$/.test(url.pathname)) {
    answer(res, 404, "not found\n");
  } else {
    serveFile(res, path.join(root, "index.html")); // client-side route
  }
}

/** Starts the server; resolves to the http.Server once it listens. No request can end the
 * process: whatever a handler throws becomes a 400 (the request was the cause) and a log line. */
export function startDevServer({ port, api, root }) {
  const server = http.createServer((req, res) => {
    try {
      handle(req, res, { api, root });
    } catch (err) {
      console.error(`dev server: ${req.method} ${JSON.stringify(req.url)}: ${err.message}`);
      answer(res, 400, "bad request\n");
    }
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const opts = parseArgs(process.argv.slice(2));
    const server = await startDevServer(opts);
    console.log(`serving ${opts.root} at http://127.0.0.1:${server.address().port}/ (api: ${opts.api})`);
  } catch (err) {
    console.error(`dev server: ${err.message}`);
    process.exitCode = 2;
  }
}
