// 👍 / 👎 under each finished assistant reply: POST /c/<conversation>/m/<message>/feedback/ (JSON).
// Pressing the pressed one takes the rating back. docs/feedback.md.

const conversationId = JSON.parse(document.getElementById("conversation-id").textContent);
const messagesEl = document.getElementById("messages");
const LIVE = new Set(["queued", "streaming"]);
const LABELS = { up: "Good reply", down: "Bad reply" };
const SYMBOLS = { up: "👍", down: "👎" };
const REASONS = JSON.parse(document.getElementById("feedback-reasons").textContent);

function feedbackUrl(messageId) {
  return `/c/${encodeURIComponent(conversationId)}/m/${encodeURIComponent(messageId)}/feedback/`;
}

function csrfToken() {
  return document.querySelector("#page-csrf input[name=csrfmiddlewaretoken]")?.value ?? "";
}

function showRating(el) {
  for (const button of el.querySelectorAll(":scope > .feedback-control button[data-rating]")) {
    button.setAttribute("aria-pressed", String(button.dataset.rating === el.dataset.rating));
  }
  const why = el.querySelector(":scope > .feedback-control .feedback-why");
  if (why) why.hidden = !el.dataset.rating;
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
      const why = document.createElement("button");
      why.type = "button";
      why.className = "small feedback-why";
      why.textContent = "Why?";
      why.title = "Say why (reasons and a comment)";
      why.hidden = true;
      wrap.append(why);
      el.append(wrap);
      if (el.dataset.rating === undefined) loadRating(el);
      else showRating(el);
    } else if (!wanted && control) {
      control.remove();
    }
  }
}

async function save(el, body) {
  const version = (el.feedbackVersion = (el.feedbackVersion ?? 0) + 1);
  const response = await fetch(feedbackUrl(el.dataset.messageId), {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body),
  }).catch(() => null);
  const answer = await response?.json().catch(() => null);
  if (response?.ok && el.feedbackVersion === version) {
    el.dataset.rating = answer.rating ?? "";
    showRating(el);
  }
  return response?.ok ? null : (answer?.message ?? "The feedback could not be saved.");
}

function rate(button) {
  const el = button.closest(".message");
  save(el, { rating: el.dataset.rating === button.dataset.rating ? null : button.dataset.rating });
}

// "Why?": the reasons offered for the rating given, and a comment, in a dialog.
const dialog = document.createElement("dialog");
dialog.id = "feedback-dialog";
dialog.setAttribute("aria-labelledby", "feedback-heading");
document.body.append(dialog);

async function openWhy(el) {
  const response = await fetch(feedbackUrl(el.dataset.messageId), { credentials: "same-origin" }).catch(() => null);
  if (!response?.ok) return;
  const current = await response.json();
  if (!current.rating) return;
  const form = document.createElement("form");
  form.className = "feedback-form";
  const heading = document.createElement("h2");
  heading.id = "feedback-heading";
  heading.textContent = current.rating === "up" ? "What was good?" : "What went wrong?";
  const fieldset = document.createElement("fieldset");
  const legend = document.createElement("legend");
  legend.textContent = "Reasons";
  fieldset.append(legend);
  for (const [value, label] of REASONS[current.rating]) {
    const line = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.name = "reasons";
    box.value = value;
    box.checked = current.reasons.includes(value);
    line.append(box, ` ${label}`);
    fieldset.append(line);
  }
  const commentLabel = document.createElement("label");
  commentLabel.htmlFor = "feedback-comment";
  commentLabel.textContent = "Comment (optional)";
  const comment = document.createElement("textarea");
  comment.id = "feedback-comment";
  comment.name = "comment";
  comment.rows = 3;
  comment.maxLength = 1000;
  comment.value = current.comment;
  const error = document.createElement("p");
  error.className = "errors";
  error.setAttribute("role", "alert");
  error.hidden = true;
  const actions = document.createElement("div");
  actions.className = "dialog-actions";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.textContent = "Cancel";
  cancel.addEventListener("click", () => dialog.close());
  const submit = document.createElement("button");
  submit.type = "submit";
  submit.className = "primary";
  submit.textContent = "Save";
  actions.append(cancel, submit);
  form.append(heading, fieldset, commentLabel, comment, error, actions);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const reasons = [...form.querySelectorAll("input[name=reasons]:checked")].map((box) => box.value);
    const refused = await save(el, { rating: current.rating, reasons, comment: comment.value });
    if (refused) {
      error.textContent = refused;
      error.hidden = false;
    } else {
      dialog.close();
    }
  });
  dialog.replaceChildren(form);
  dialog.showModal();
  fieldset.querySelector("input")?.focus();
}

messagesEl.addEventListener("click", (event) => {
  const button = event.target.closest(".feedback-control button");
  if (button?.classList.contains("feedback-why")) openWhy(button.closest(".message"));
  else if (button) rate(button);
});
new MutationObserver(addControls).observe(messagesEl, {
  childList: true,
  subtree: true,
  attributes: true,
  attributeFilter: ["data-status", "data-message-id"],
});
addControls();
