// Markdown to safe DOM: marked parses, highlight.js colours code, DOMPurify removes anything
// that could run (scripts, event handlers, javascript: links, SVG/MathML, forms, images).
// Everything the model or a person wrote passes through `renderMarkdown` before it is shown.

import { Marked } from "../vendor/marked/marked.esm.js";
import DOMPurify from "../vendor/dompurify/purify.es.mjs";
import hljs from "../vendor/highlight.js/highlight.esm.min.js";

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

const marked = new Marked({
  gfm: true,
  breaks: true, // a chat reply's single newlines are meant as line breaks
  renderer: {
    code({ text, lang }) {
      const language = (lang || "").trim().split(/\s+/)[0];
      let html;
      try {
        html = language && hljs.getLanguage(language)
          ? hljs.highlight(text, { language, ignoreIllegals: true }).value
          : escapeHtml(text);
      } catch {
        html = escapeHtml(text);
      }
      const label = hljs.getLanguage(language) ? language : "";
      return `<pre data-language="${escapeHtml(label)}"><code class="hljs">${html}</code></pre>`;
    },
  },
});

const purifier = DOMPurify(window);
const SANITIZE = {
  USE_PROFILES: { html: true }, // no SVG, no MathML
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "img", "video", "audio", "iframe"],
  FORBID_ATTR: ["style", "id", "name"],
  RETURN_DOM_FRAGMENT: true,
};
purifier.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

// The copy button is made here, after sanitising, so no text can forge one.
function addCopyButtons(fragment) {
  for (const pre of fragment.querySelectorAll("pre")) {
    const bar = document.createElement("div");
    bar.className = "code-bar";
    const language = document.createElement("span");
    language.className = "code-language";
    language.textContent = pre.dataset.language || "";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "copy-code";
    copy.setAttribute("aria-label", "Copy code");
    bar.append(language, copy);
    const wrapper = document.createElement("div");
    wrapper.className = "code-block";
    pre.replaceWith(wrapper);
    wrapper.append(bar, pre);
  }
}

/** Render markdown text into a sanitised DocumentFragment. */
export function renderMarkdown(text) {
  const fragment = purifier.sanitize(marked.parse(text), SANITIZE);
  // The newlines marked puts between blocks are not part of the reply.
  for (const edge of [fragment.firstChild, fragment.lastChild]) {
    if (edge?.nodeType === Node.TEXT_NODE && !edge.textContent.trim()) edge.remove();
  }
  addCopyButtons(fragment);
  return fragment;
}

/** Replace an element's children with the rendered text, in one DOM operation (no flicker). */
export function renderInto(element, text) {
  element.replaceChildren(renderMarkdown(text));
}

// One listener for every copy button on the page, present and future.
document.addEventListener("click", async (click) => {
  const button = click.target.closest?.("button.copy-code");
  if (!button) return;
  const code = button.closest(".code-block").querySelector("pre code").textContent;
  try {
    await navigator.clipboard.writeText(code);
    button.dataset.copied = "1";
    button.setAttribute("aria-label", "Copied");
  } catch {
    button.dataset.copied = "0";
    button.setAttribute("aria-label", "Copy failed");
  }
  setTimeout(() => {
    delete button.dataset.copied;
    button.setAttribute("aria-label", "Copy code");
  }, 1500);
});
