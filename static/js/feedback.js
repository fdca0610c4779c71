// 👍 / 👎 under each finished assistant reply: POST /c/<conversation>/m/<message>/feedback/ (JSON).
// Pressing the pressed one takes the rating back. docs/feedback.md.

const conversationId = JSON.parse(document.getElementById("conversation-id").textContent);
const messagesEl = document.getElementById("messages");
const LIVE = new Set(["queued", "streaming"]);
const LABELS = { up: "Good reply", down: "Bad reply" };
const SYMBOLS = { up: "👍", down: "👎" };

function feedbackUrl(messageId) {
  return `/c/${encodeURIComponent(conversationId)}/m/${encodeURIComponent(messageId)}/feedback/`;
}

function csrfToken() {
  return document.querySelector("#page-csrf input[name=csrfmiddlewaretoken]")?.value ?? "";
}

function showRating(el) {
  for (const button of el.querySelectorAll(":scope > .feedback-control button")) {
    button.setAttribute("aria-pressed", String(button.dataset.rating === el.dataset.rating));
  }
}

// A reply shown after a switch arrives without its rating: ask for it once.
// Each change bumps `feedbackVersion`, so an answer that comes back after a newer press is dropped.
async function loadRating(el) {
  el.dataset.rating = "";
  const version = (el.feedbackVersion = (el.feedbackVersion ?? 0) + 1);
  try {
    const response = await fetch(feedbackUrl(el.dataset.messageId), { credentials: "same-origin" });
    const rating = response.ok ? ((await response.json()).rating ?? "") : "";
    if (el.feedbackVersion === version) el.dataset.rating = rating;
  } catch {
    // No rating shown: pressing a button still sets one.
  }
  showRating(el);
}

function addControls() {
  for (const el of messagesEl.querySelectorAll(".message.assistant")) {
    const wanted = Boolean(el.dataset.messageId) && !LIVE.has(el.dataset.status) && el.dataset.status !== "blocked";
    const control = el.querySelector(":scope > .feedback-control");
    if (wanted && !control) {
      const wrap = document.createElement("div");
      wrap.className = "feedback-control";
      wrap.setAttribute("role", "group");
      wrap.setAttribute("aria-label", "Rate this reply");
      for (const rating of ["up", "down"]) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = `small feedback-${rating}`;
        button.dataset.rating = rating;
        button.textContent = SYMBOLS[rating];
        button.setAttribute("aria-label", LABELS[rating]);
        button.title = LABELS[rating];
        wrap.append(button);
      }
      el.append(wrap);
      if (el.dataset.rating === undefined) loadRating(el);
      else showRating(el);
    } else if (!wanted && control) {
      control.remove();
    }
  }
}

async function rate(button) {
  const el = button.closest(".message");
  const rating = el.dataset.rating === button.dataset.rating ? null : button.dataset.rating;
  const version = (el.feedbackVersion = (el.feedbackVersion ?? 0) + 1);
  const response = await fetch(feedbackUrl(el.dataset.messageId), {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify({ rating }),
  }).catch(() => null);
  if (!response?.ok || el.feedbackVersion !== version) return;
  el.dataset.rating = (await response.json()).rating ?? "";
  showRating(el);
}

messagesEl.addEventListener("click", (event) => {
  const button = event.target.closest(".feedback-control button");
  if (button) rate(button);
});
new MutationObserver(addControls).observe(messagesEl, {
  childList: true,
  subtree: true,
  attributes: true,
  attributeFilter: ["data-status", "data-message-id"],
});
addControls();
