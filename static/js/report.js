// "Report" under each finished assistant reply: a small dialog with the server's own form
// (reasons and CSRF token from GET /c/<conversation>/m/<message>/report/), posted with fetch.

const conversationId = JSON.parse(document.getElementById("conversation-id").textContent);
const messagesEl = document.getElementById("messages");
const LIVE = new Set(["queued", "streaming"]);

function reportUrl(messageId) {
  return `/c/${encodeURIComponent(conversationId)}/m/${encodeURIComponent(messageId)}/report/`;
}

function addControls() {
  for (const el of messagesEl.querySelectorAll(".message.assistant")) {
    const wanted = Boolean(el.dataset.messageId) && !LIVE.has(el.dataset.status);
    const control = el.querySelector(":scope > .report-control");
    if (wanted && !control) {
      const wrap = document.createElement("div");
      wrap.className = "report-control";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small report-button";
      button.textContent = el.dataset.reported ? "Reported" : "Report";
      button.disabled = Boolean(el.dataset.reported);
      button.title = "Report this reply to the moderators";
      wrap.append(button);
      el.append(wrap);
    } else if (!wanted && control) {
      control.remove();
    }
  }
}

const dialog = document.createElement("dialog");
dialog.id = "report-dialog";
dialog.setAttribute("aria-labelledby", "report-heading");
document.body.append(dialog);

async function openReport(el) {
  const messageId = el.dataset.messageId;
  let form;
  try {
    const response = await fetch(reportUrl(messageId), { credentials: "same-origin" });
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    form = page.querySelector("form.report-form");
    if (!form) throw new Error(`HTTP ${response.status}`);
  } catch {
    return;  // the reply was hidden or removed meanwhile: nothing to report
  }
  const heading = document.createElement("h2");
  heading.id = "report-heading";
  heading.textContent = "Report this reply";
  dialog.replaceChildren(heading, document.importNode(form, true));
  const shown = dialog.querySelector("form");
  const error = shown.querySelector(".report-error");
  shown.querySelector(".report-cancel").addEventListener("click", (event) => {
    event.preventDefault();
    dialog.close();
  });
  shown.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch(shown.action, {
      method: "POST",
      body: new FormData(shown),
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    const body = await response.json().catch(() => ({ message: "The report could not be sent." }));
    if (!response.ok) {
      error.textContent = body.message || "The report could not be sent.";
      error.hidden = false;
      return;
    }
    el.dataset.reported = "1";
    el.querySelector(".report-control")?.remove();
    addControls();
    dialog.close();
  });
  dialog.showModal();
  shown.querySelector("select").focus();
}

messagesEl.addEventListener("click", (event) => {
  const button = event.target.closest(".report-button");
  if (button) openReport(button.closest(".message"));
});
new MutationObserver(addControls).observe(messagesEl, {
  childList: true,
  subtree: true,
  attributes: true,
  attributeFilter: ["data-status", "data-message-id"],
});
addControls();
