// Talks to the story API at /api (same origin: nginx proxies it) and turns every failure into one
// ApiError whose message a person can act on.

const KEY_STORAGE = "autodevhub.apiKey";

/** The API key for write requests, kept for this tab only (sessionStorage). */
export function getApiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

/** Stores (or, when empty, forgets) the API key for this tab. */
export function setApiKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage can be disabled (private mode, policies); the key then lives only in the input.
  }
}

/** A failed API call: `kind` is "network" or "http"; `message` is written for the person. */
export class ApiError extends Error {
  constructor({ kind, status = 0, detail = null, retryAfter = null, fieldErrors = {}, sentKey = false }) {
    super(describe(kind, status, detail, retryAfter, sentKey));
    this.name = "ApiError";
    this.kind = kind;
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
    this.fieldErrors = fieldErrors;
  }
}

function describe(kind, status, detail, retryAfter, sentKey) {
  if (kind === "network") {
    return "Can't reach the server. Check your connection and try again; your text is still here.";
  }
  const said = typeof detail === "string" && detail ? ` The server said: “${detail}”` : "";
  switch (status) {
    case 401:
      if (sentKey) return "That API key was not accepted. Check it under “API key” at the top of the page, then try again.";
      return "This server needs an API key. Enter it under “API key” at the top of the page, then try again.";
    case 403:
      return "That API key was not accepted. Check it under “API key” at the top of the page.";
    case 404:
      return "That story set no longer exists.";
    case 413:
      return "That is too much text for the server. Shorten the feature or context and try again.";
    case 422:
      return "Some fields need a change before the stories can be written. See the messages below each field.";
    case 429: {
      const wait = retryAfter ? ` Try again in ${retryAfter} second${retryAfter === 1 ? "" : "s"}.` : " Try again in a moment.";
      return `Too many requests right now.${wait}`;
    }
    default:
      if (status >= 500) {
        return `The server ran into a problem (error ${status}). Your text is still here; try again in a moment.${said}`;
      }
      return `The request failed (error ${status}).${said}`;
  }
}

// Retry-After is either seconds or an HTTP date.
function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - Date.now()) / 1000));
}

// FastAPI's 422 detail is a list of {loc, msg, type}; loc is ["body", "<field>", ...].
function fieldErrorsOf(detail) {
  const errors = {};
  if (!Array.isArray(detail)) return errors;
  for (const item of detail) {
    const loc = Array.isArray(item?.loc) ? item.loc : [];
    const field = loc[0] === "body" ? loc[1] ?? "" : loc[loc.length - 1] ?? "";
    const key = typeof field === "string" && field ? field : "_form";
    errors[key] = errors[key] ? `${errors[key]} ${item.msg}` : String(item?.msg ?? "Invalid value.");
  }
  return errors;
}

async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = getApiKey();
  if (key && method !== "GET") headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(`/api${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError({ kind: "network" });
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text().catch(() => "");
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null; // e.g. an HTML error page from a proxy
  }
  if (!response.ok) {
    const detail = data && typeof data === "object" ? data.detail ?? null : null;
    throw new ApiError({
      kind: "http",
      status: response.status,
      detail,
      retryAfter: parseRetryAfter(response.headers.get("Retry-After")),
      fieldErrors: response.status === 422 ? fieldErrorsOf(detail) : {},
      sentKey: Boolean(headers.Authorization),
    });
  }
  return data;
}

/** POST /api/stories: starts generating a story set; returns it (usually queued). */
export function createStorySet({ feature, context, persona }) {
  return request("POST", "/stories", {
    feature,
    context: context || null,
    persona: persona || null,
  });
}

/** GET /api/stories/{id}. */
export function getStorySet(id) {
  return request("GET", `/stories/${encodeURIComponent(id)}`);
}

/** GET /api/stories: one page of earlier story sets, newest first. */
export function listStorySets({ limit = 20, offset = 0, q = "" } = {}) {
  const params = new URLSearchParams({ limit: String(limit), offset: String(offset) });
  if (q) params.set("q", q);
  return request("GET", `/stories?${params}`);
}

/** DELETE /api/stories/{id}. */
export function deleteStorySet(id) {
  return request("DELETE", `/stories/${encodeURIComponent(id)}`);
}
