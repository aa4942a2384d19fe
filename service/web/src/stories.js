// Lays out a story set for reading and writes it as Markdown. DOM is built with
// createElement/textContent only: generated text never becomes markup.

/** Creates an element with attributes/properties and children (strings become text). */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const PRIORITY_LABEL = { high: "High priority", medium: "Medium priority", low: "Low priority" };

function storyArticle(story, index) {
  const headingId = `story-${index + 1}`;
  const criteria = Array.isArray(story.acceptance_criteria) ? story.acceptance_criteria : [];
  return h(
    "article",
    { class: "story", "aria-labelledby": headingId },
    h(
      "header",
      { class: "story-head" },
      h("h3", { id: headingId }, h("span", { class: "story-num" }, `${index + 1}.`), " ", story.title || "Untitled story"),
      h(
        "p",
        { class: "badges" },
        story.priority
          ? h("span", { class: `badge prio-${story.priority}` }, PRIORITY_LABEL[story.priority] || story.priority)
          : null,
        Number.isFinite(story.estimate)
          ? h("span", { class: "badge" }, `${story.estimate} point${story.estimate === 1 ? "" : "s"}`)
          : null,
      ),
    ),
    h(
      "p",
      { class: "story-text" },
      h("span", { class: "lead" }, "As a "), story.as_a || "user", ", ",
      h("span", { class: "lead" }, "I want "), story.i_want || "", ", ",
      h("span", { class: "lead" }, "so that "), story.so_that || "", ".",
    ),
    criteria.length
      ? h(
          "section",
          { class: "criteria", "aria-label": `Acceptance criteria for story ${index + 1}` },
          h("h4", {}, "Acceptance criteria"),
          h(
            "ol",
            {},
            criteria.map((c) =>
              h(
                "li",
                {},
                h(
                  "dl",
                  { class: "gwt" },
                  h("dt", {}, "Given"), h("dd", {}, c.given || ""),
                  h("dt", {}, "When"), h("dd", {}, c.when || ""),
                  h("dt", {}, "Then"), h("dd", {}, c.then || ""),
                ),
              ),
            ),
          ),
        )
      : null,
  );
}

/** Replaces the content of `container` with the stories of `set`. */
export function renderStories(container, set) {
  const stories = Array.isArray(set?.stories) ? set.stories : [];
  container.replaceChildren(...stories.map(storyArticle));
}

// Keeps generated text from turning into Markdown structure (headings, lists, emphasis).
function mdInline(text) {
  return String(text ?? "")
    .replace(/\s+/g, " ")
    .trim()
    .replace(/([\\`*_[\]<>#|])/g, "\\$1");
}

/** The story set as Markdown, for the clipboard. */
export function storySetToMarkdown(set) {
  const lines = [`# User stories: ${mdInline(set.feature)}`, ""];
  if (set.persona) lines.push(`Persona: ${mdInline(set.persona)}`, "");
  if (set.context) lines.push(`Context: ${mdInline(set.context)}`, "");
  (set.stories || []).forEach((story, i) => {
    lines.push(`## ${i + 1}. ${mdInline(story.title)}`, "");
    const facts = [];
    if (story.priority) facts.push(`Priority: ${story.priority}`);
    if (Number.isFinite(story.estimate)) facts.push(`Estimate: ${story.estimate}`);
    if (facts.length) lines.push(`*${facts.join(" · ")}*`, "");
    lines.push(
      `As a ${mdInline(story.as_a)}, I want ${mdInline(story.i_want)}, so that ${mdInline(story.so_that)}.`,
      "",
    );
    const criteria = story.acceptance_criteria || [];
    if (criteria.length) {
      lines.push("### Acceptance criteria", "");
      criteria.forEach((c, j) => {
        lines.push(
          `${j + 1}. **Given** ${mdInline(c.given)}  `,
          `   **When** ${mdInline(c.when)}  `,
          `   **Then** ${mdInline(c.then)}`,
        );
      });
      lines.push("");
    }
  });
  return `${lines.join("\n").trimEnd()}\n`;
}

/** "3 minutes ago"-style text for an ISO timestamp, with the exact time for the title. */
export function relativeTime(iso, now = Date.now()) {
  const when = Date.parse(iso);
  if (Number.isNaN(when)) return "";
  const seconds = Math.round((when - now) / 1000);
  const units = [
    ["year", 31536000],
    ["month", 2592000],
    ["day", 86400],
    ["hour", 3600],
    ["minute", 60],
  ];
  const format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
  }
  return format.format(seconds, "second");
}
