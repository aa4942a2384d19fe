// The page: the feature form, the live status of one story set, its stories, and the list of
// earlier sets. Routes: "/" and "/stories/<id>" (nginx answers both with index.html).

import { ApiError, createStorySet, getApiKey, getStorySet, listStorySets, setApiKey } from "./api.js";
import { h, relativeTime, renderStories, storySetToMarkdown } from "./stories.js";

const $ = (id) => document.getElementById(id);
const FIELDS = ["feature", "context", "persona"];
const DRAFT_KEY = "autodevhub.draft";
const PAGE_SIZE = 10;
const STATUS_TEXT = {
  queued: "Queued: waiting for the generator…",
  running: "Writing stories…",
  done: "Done.",
  failed: "Generation failed.",
};

const state = { current: null, poll: null, pollToken: 0, offset: 0, q: "", cooldown: null };

// ---- drafts: whatever the person typed survives errors and reloads ----------------------------

function saveDraft() {
  const draft = Object.fromEntries(FIELDS.map((f) => [f, $(f).value]));
  try {
    sessionStorage.setItem(DRAFT_KEY, JSON.stringify(draft));
  } catch {
    // storage disabled: the text is still in the form
  }
}

function restoreDraft() {
  let draft = null;
  try {
    draft = JSON.parse(sessionStorage.getItem(DRAFT_KEY) || "null");
  } catch {
    draft = null;
  }
  if (!draft) return;
  for (const f of FIELDS) if (typeof draft[f] === "string" && !$(f).value) $(f).value = draft[f];
}

// ---- form errors -----------------------------------------------------------------------------

function showFieldError(field, message) {
  const input = $(field);
  const box = $(`${field}-error`);
  if (!input || !box) return false;
  box.textContent = message;
  box.hidden = !message;
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  return true;
}

function clearErrors() {
  for (const f of FIELDS) showFieldError(f, "");
  const alert = $("form-error");
  alert.hidden = true;
  alert.replaceChildren();
}

function showFormError(message, extra = []) {
  const alert = $("form-error");
  alert.replaceChildren(h("p", {}, message), ...extra);
  alert.hidden = false;
  alert.focus();
}

function validate(values) {
  const errors = {};
  if (values.feature.trim().length < 3) errors.feature = "Describe the feature in at least 3 characters.";
  if (values.feature.length > 4000) errors.feature = "Keep the feature under 4000 characters.";
  if (values.context.length > 4000) errors.context = "Keep the context under 4000 characters.";
  if (values.persona.length > 200) errors.persona = "Keep the persona under 200 characters.";
  return errors;
}

function showApiError(err) {
  if (!(err instanceof ApiError)) {
    showFormError("Something went wrong in the page. Your text is still here; reload and try again.");
    console.error(err);
    return;
  }
  const unplaced = [];
  for (const [field, message] of Object.entries(err.fieldErrors)) {
    if (!showFieldError(field, message)) unplaced.push(message);
  }
  const extra = unplaced.map((m) => h("p", {}, m));
  if (err.status === 401 || err.status === 403) $("key-panel").open = true;
  showFormError(err.message, extra);
  if (err.status === 429) startCooldown(err.retryAfter || 5);
}

// After a 429 the submit button waits out Retry-After, counting down.
function startCooldown(seconds) {
  const button = $("submit");
  clearInterval(state.cooldown);
  let left = seconds;
  const tick = () => {
    if (left <= 0) {
      clearInterval(state.cooldown);
      button.disabled = false;
      button.textContent = "Generate stories";
      return;
    }
    button.disabled = true;
    button.textContent = `Wait ${left} s`;
    left -= 1;
  };
  tick();
  state.cooldown = setInterval(tick, 1000);
}

// ---- the current story set ---------------------------------------------------------------------

function setStatus(text, busy) {
  $("status").textContent = text;
  $("result").setAttribute("aria-busy", busy ? "true" : "false");
  $("status").classList.toggle("busy", busy);
}

function showStorySet(set) {
  if (state.current?.id !== set.id) document.querySelector(".copy-fallback")?.remove();
  state.current = set;
  $("result").hidden = false;
  $("result-feature").textContent = set.feature || "";
  const meta = [];
  if (set.persona) meta.push(`Persona: ${set.persona}`);
  if (set.generator) meta.push(`Generator: ${set.generator}${set.model ? ` (${set.model})` : ""}`);
  if (set.created_at) meta.push(`Created ${relativeTime(set.created_at)}`);
  $("result-meta").textContent = meta.join(" · ");
  const count = set.stories?.length || 0;
  if (set.status === "done") {
    setStatus(`Done: ${count} ${count === 1 ? "story" : "stories"}.`, false);
  } else if (set.status === "failed") {
    const why = set.error ? `: ${set.error}${/[.!?]$/.test(set.error) ? "" : "."}` : ".";
    setStatus(`Generation failed${why} Submit the feature again to retry.`, false);
  } else {
    setStatus(STATUS_TEXT[set.status] || "Working…", true);
  }
  $("result").classList.toggle("failed", set.status === "failed");
  renderStories($("stories"), set);
  $("copy").hidden = !(set.status === "done" && count > 0);
}

function stopPolling() {
  clearTimeout(state.poll);
  state.pollToken += 1;
}

// Polls until the set is done or failed: quick at first, then every 2 s; honours Retry-After.
function pollStorySet(id) {
  stopPolling();
  const token = state.pollToken;
  let delay = 400;
  const step = async () => {
    if (token !== state.pollToken) return;
    try {
      const set = await getStorySet(id);
      if (token !== state.pollToken) return;
      showStorySet(set);
      if (set.status === "done" || set.status === "failed") {
        loadHistory();
        return;
      }
      delay = Math.min(delay * 1.5, 2000);
    } catch (err) {
      if (token !== state.pollToken) return;
      if (err instanceof ApiError && err.status === 404) {
        setStatus(err.message, false);
        return;
      }
      setStatus(`${err.message} Still checking…`, true);
      delay = err.retryAfter ? err.retryAfter * 1000 : 3000;
    }
    state.poll = setTimeout(step, delay);
  };
  state.poll = setTimeout(step, delay);
}

async function openStorySet(id, { push = true } = {}) {
  if (push && location.pathname !== `/stories/${id}`) history.pushState({ id }, "", `/stories/${encodeURIComponent(id)}`);
  stopPolling();
  const token = state.pollToken; // a later click or submit wins over this load
  state.current = null;
  $("result").hidden = false;
  $("result").classList.remove("failed");
  $("result-feature").textContent = "";
  $("result-meta").textContent = "";
  $("stories").replaceChildren();
  $("copy").hidden = true;
  setStatus("Loading…", true);
  try {
    const set = await getStorySet(id);
    if (token !== state.pollToken) return;
    showStorySet(set);
    if (set.status === "queued" || set.status === "running") pollStorySet(id);
  } catch (err) {
    if (token === state.pollToken) setStatus(err.message, false);
  }
}

async function onSubmit(event) {
  event.preventDefault();
  clearErrors();
  const values = Object.fromEntries(FIELDS.map((f) => [f, $(f).value]));
  const errors = validate(values);
  if (Object.keys(errors).length) {
    for (const [f, m] of Object.entries(errors)) showFieldError(f, m);
    showFormError("Please fix the highlighted field before generating stories.");
    $(Object.keys(errors)[0]).focus();
    return;
  }
  saveDraft();
  const button = $("submit");
  button.disabled = true;
  button.textContent = "Sending…";
  try {
    const set = await createStorySet({
      feature: values.feature.trim(),
      context: values.context.trim(),
      persona: values.persona.trim(),
    });
    stopPolling(); // whatever set was showing or loading gives way to this one
    history.pushState({ id: set.id }, "", `/stories/${encodeURIComponent(set.id)}`);
    showStorySet(set);
    $("result-heading").focus();
    if (set.status === "queued" || set.status === "running") pollStorySet(set.id);
    loadHistory();
  } catch (err) {
    showApiError(err);
  } finally {
    if (!$("submit").textContent.startsWith("Wait")) {
      button.disabled = false;
      button.textContent = "Generate stories";
    }
  }
}

async function onCopy() {
  if (!state.current) return;
  const text = storySetToMarkdown(state.current);
  const note = $("copy-status");
  try {
    await navigator.clipboard.writeText(text);
    note.textContent = "Copied as Markdown.";
  } catch {
    // No clipboard API (older browsers, insecure origins): select text for a manual copy.
    let area = document.querySelector(".copy-fallback");
    if (!area) {
      area = h("textarea", { class: "copy-fallback", readOnly: true, "aria-label": "Stories as Markdown" });
      $("stories").before(area);
    }
    area.value = text;
    area.select();
    note.textContent = document.execCommand?.("copy") ? "Copied as Markdown." : "Press Ctrl+C (or ⌘C) to copy the selected Markdown.";
  }
  setTimeout(() => {
    note.textContent = "";
  }, 4000);
}

// ---- earlier story sets --------------------------------------------------------------------------

const STATUS_BADGE = { queued: "Queued", running: "Running", done: "Done", failed: "Failed" };

function historyItem(item) {
  const count = item.story_count ?? 0;
  return h(
    "li",
    {},
    h("a", { href: `/stories/${encodeURIComponent(item.id)}`, dataset: { id: item.id } }, item.feature || "(no description)"),
    h(
      "span",
      { class: "item-meta" },
      h("span", { class: `badge st-${item.status}` }, STATUS_BADGE[item.status] || item.status),
      item.status === "done" ? ` ${count} ${count === 1 ? "story" : "stories"}` : "",
      item.created_at ? h("time", { datetime: item.created_at, title: item.created_at }, ` · ${relativeTime(item.created_at)}`) : null,
    ),
  );
}

let historyRequest = 0;

async function loadHistory() {
  const ticket = ++historyRequest;
  const note = $("history-status");
  $("history").setAttribute("aria-busy", "true");
  try {
    const page = await listStorySets({ limit: PAGE_SIZE, offset: state.offset, q: state.q });
    if (ticket !== historyRequest) return;
    const items = page.items || [];
    $("history").replaceChildren(...items.map(historyItem));
    const total = page.total ?? items.length;
    if (!items.length) {
      note.textContent = state.q ? `No story sets match “${state.q}”.` : "No story sets yet. Describe a feature above to write the first.";
    } else {
      const matching = state.q ? ` matching “${state.q}”` : "";
      note.textContent =
        total <= PAGE_SIZE && state.offset === 0
          ? `${total} story ${total === 1 ? "set" : "sets"}${matching}`
          : `${state.offset + 1}–${state.offset + items.length} of ${total}${matching}`;
    }
    $("prev").disabled = state.offset <= 0;
    $("next").disabled = state.offset + items.length >= total;
    $("pager").hidden = total <= PAGE_SIZE && state.offset === 0;
  } catch (err) {
    if (ticket !== historyRequest) return;
    note.textContent = `Couldn't load earlier story sets. ${err.message}`;
  } finally {
    if (ticket === historyRequest) $("history").setAttribute("aria-busy", "false");
  }
}

// ---- wiring ---------------------------------------------------------------------------------------

function updateCount() {
  const n = $("feature").value.length;
  $("feature-count").textContent = `${n} / 4000`;
}

function routeFromLocation() {
  const match = location.pathname.match(/^\/stories\/([^/]+)\/?$/);
  if (match) {
    openStorySet(decodeURIComponent(match[1]), { push: false });
  } else {
    stopPolling();
    state.current = null;
    $("result").hidden = true;
  }
}

function init() {
  restoreDraft();
  updateCount();
  $("story-form").addEventListener("submit", onSubmit);
  for (const f of FIELDS) {
    $(f).addEventListener("input", () => {
      saveDraft();
      if ($(f).getAttribute("aria-invalid")) showFieldError(f, "");
    });
  }
  $("feature").addEventListener("input", updateCount);
  // Ctrl/Cmd+Enter submits from any text field.
  $("story-form").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("story-form").requestSubmit();
  });
  $("copy").addEventListener("click", onCopy);

  $("api-key").value = getApiKey();
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setApiKey($("api-key").value.trim());
    $("key-status").textContent = $("api-key").value.trim() ? "Key saved for this tab." : "Key removed.";
  });
  $("key-clear").addEventListener("click", () => {
    $("api-key").value = "";
    setApiKey("");
    $("key-status").textContent = "Key removed.";
  });

  let searchTimer = null;
  $("q").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      state.q = $("q").value.trim();
      state.offset = 0;
      loadHistory();
    }, 250);
  });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    clearTimeout(searchTimer);
    state.q = $("q").value.trim();
    state.offset = 0;
    loadHistory();
  });
  $("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    loadHistory();
  });
  $("next").addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    loadHistory();
  });
  $("history").addEventListener("click", (e) => {
    const link = e.target.closest("a[data-id]");
    if (!link || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    openStorySet(link.dataset.id);
    $("result-heading").focus();
  });
  window.addEventListener("popstate", routeFromLocation);

  routeFromLocation();
  loadHistory();
}

init();
