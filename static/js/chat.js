// The chat page: one websocket per conversation, replies rendered as they stream.
// Protocol: docs/protocol.md. Replies are markdown, rendered through markdown.js (sanitised);
// the user's own messages are plain text (textContent), shown exactly as typed.

import { renderInto } from "./markdown.js";

const conversationId = JSON.parse(document.getElementById("conversation-id").textContent);
let chatSettings = JSON.parse(document.getElementById("conversation-settings").textContent);
const messagesEl = document.getElementById("messages");
const form = document.getElementById("composer");
const input = document.getElementById("message-input");
const sendButton = document.getElementById("send-button");
const stopButton = document.getElementById("stop-button");
const notice = document.getElementById("notice");
const announcer = document.getElementById("announcer");
const jumpButton = document.getElementById("jump-button");
const settingsDialog = document.getElementById("settings-dialog");
const settingsForm = document.getElementById("settings-form");
const settingsError = document.getElementById("settings-error");

const LIVE = new Set(["queued", "streaming"]);
const BLOCKED_NOTICE = "This reply was stopped by the moderation rules.";
const ENDED_LABEL = { stopped: "Reply stopped.", blocked: "Reply blocked.", failed: "Reply failed." };
// message id -> {el, text, seq, place, frame}: the raw text of each reply being written.
const replies = new Map();
let socket = null;
let retryDelay = 500;
let everOpened = false;
let busy = false;
let settingsPending = false;
let noticeTimer = 0;
// Set when the server closed the socket for good (4401, 4403, 4404): why, repeated on every later send.
let endedNotice = null;
// The text of a send not yet echoed back: a refused send gives it back to the composer.
let unsent = "";

// --- scrolling: follow the stream unless the person scrolled up ---------------------

let pinned = true;

function nearBottom() {
  return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 48;
}

function followIfPinned() {
  if (pinned) window.scrollTo(0, document.documentElement.scrollHeight);
  jumpButton.hidden = pinned || !busy;
}

window.addEventListener(
  "scroll",
  () => {
    pinned = nearBottom();
    jumpButton.hidden = pinned || !busy;
  },
  { passive: true },
);
jumpButton.addEventListener("click", () => {
  pinned = true;
  followIfPinned();
  input.focus();
});

// --- messages in the list -------------------------------------------------------------

function findMessage(id) {
  return messagesEl.querySelector(`[data-message-id="${CSS.escape(id)}"]`);
}

function messageElement(id, role) {
  let el = findMessage(id);
  if (!el) {
    el = document.createElement("li");
    el.className = `message ${role}`;
    el.id = `m-${id}`;
    el.dataset.messageId = id;
    const roleEl = document.createElement("div");
    roleEl.className = "role";
    roleEl.textContent = role === "user" ? "You" : "Assistant";
    const content = document.createElement("div");
    content.className = "content";
    el.append(roleEl, content);
    if (role === "assistant") {
      const meta = document.createElement("div");
      meta.className = "meta";
      el.append(meta);
    }
    messagesEl.append(el);
  }
  return el;
}

function setContent(el, text) {
  const content = el.querySelector(".content");
  if (el.classList.contains("assistant")) renderInto(content, text);
  else content.textContent = text;
  el.rawText = text;
}

function setStatus(el, status) {
  el.dataset.status = status;
  el.className = el.className.replace(/\bstatus-\S+/g, "").trim() + ` status-${status}`;
  el.setAttribute("aria-busy", String(LIVE.has(status)));
}

function reply(id) {
  if (!replies.has(id)) replies.set(id, { el: messageElement(id, "assistant"), text: "", seq: 0, frame: 0 });
  return replies.get(id);
}

// At most one markdown render per animation frame, however many tokens arrived in it.
function scheduleRender(r, id) {
  if (r.frame) return;
  r.frame = requestAnimationFrame(() => {
    r.frame = 0;
    setContent(r.el, r.text);
    messagesEl.dispatchEvent(new CustomEvent("chat:render", { detail: { id, text: r.text } }));
    followIfPinned();
  });
}

// --- versions: ‹ 2/3 › under a message with siblings (docs/protocol.md, "The tree") -------

// Remembered while a switch asked from here is answered: which nav to give the focus back to,
// or which message a search hit asked to see.
let switchFocus = null;
let askedId = null;

function setVersions(el, fields) {
  el.querySelector(".versions")?.remove();
  if (fields.parent_id !== undefined) el.dataset.parentId = fields.parent_id ?? "";
  if (!fields.sibling_ids || fields.sibling_count < 2) return;
  const index = fields.sibling_index;
  const nav = document.createElement("nav");
  nav.className = "versions";
  nav.setAttribute("aria-label", `Version ${index + 1} of ${fields.sibling_count}`);
  const button = (className, label, symbol, target) => {
    const b = actionButton(className, symbol);
    b.setAttribute("aria-label", label);
    b.dataset.target = target ?? "";
    b.disabled = !target;
    return b;
  };
  const count = document.createElement("span");
  count.className = "version-count";
  count.textContent = `${index + 1}/${fields.sibling_count}`;
  nav.append(
    button("version-prev", "Previous version", "‹", fields.sibling_ids[index - 1]),
    count,
    button("version-next", "Next version", "›", fields.sibling_ids[index + 1]),
  );
  const actions = el.querySelector(".message-actions");
  if (actions) actions.before(nav);
  else el.append(nav);
}

function switchTo(button) {
  if (!button?.dataset.target || button.disabled || busy) return;
  const el = button.closest(".message");
  switchFocus = { depth: [...messagesEl.children].indexOf(el), which: button.classList.contains("version-prev") ? "prev" : "next" };
  sendEvent({ type: "switch", message_id: button.dataset.target });
}

function renderPath(event) {
  for (const r of replies.values()) cancelAnimationFrame(r.frame);
  replies.clear();
  messagesEl.replaceChildren();
  for (const m of event.messages) {
    const el = messageElement(m.id, m.role);
    if (m.status === "blocked") {
      el.rawText = "";
      el.querySelector(".content").textContent = BLOCKED_NOTICE;
    } else {
      setContent(el, m.content);
    }
    setStatus(el, m.status);
    if (m.role === "assistant") {
      const meta = [m.status === "complete" ? "" : m.status, m.error || "", formatStats(m.stats || {})];
      el.querySelector(".meta").textContent = meta.filter(Boolean).join(" · ");
    }
    setVersions(el, m);
  }
  updateActions();
  if (askedId) {
    findMessage(askedId)?.scrollIntoView({ block: "center" });
    askedId = null;
  }
  if (switchFocus) {
    const nav = messagesEl.children[switchFocus.depth]?.querySelector(".versions");
    const wanted = nav?.querySelector(`.version-${switchFocus.which}`);
    (wanted && !wanted.disabled ? wanted : nav?.querySelector("button:not([disabled])"))?.focus();
    switchFocus = null;
    const count = nav?.querySelector(".version-count")?.textContent;
    if (count) announcer.textContent = `Version ${count.replace("/", " of ")}`;
  }
}

// --- actions under messages: edit a message of mine, regenerate or retry the last reply --

function actionButton(className, label, title) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `small ${className}`;
  button.textContent = label;
  if (title) button.title = title;
  return button;
}

function updateActions() {
  for (const old of messagesEl.querySelectorAll(".message-actions")) old.remove();
  if (busy) return;
  for (const el of messagesEl.querySelectorAll(".message.user:not(.editing)")) {
    const actions = document.createElement("div");
    actions.className = "message-actions";
    actions.append(actionButton("edit-button", "Edit", "Edit and send again (the earlier version is kept: ‹ › under it)"));
    el.append(actions);
  }
  const last = messagesEl.lastElementChild;
  if (last?.classList.contains("assistant")) {
    const failed = ["failed", "stopped", "blocked"].includes(last.dataset.status);
    const actions = document.createElement("div");
    actions.className = "message-actions";
    actions.append(actionButton("regenerate-button", failed ? "Retry" : "Regenerate", "Write this reply again"));
    last.append(actions);
  }
}

function startEdit(el) {
  el.classList.add("editing");
  el.querySelector(".message-actions")?.remove();
  const editor = document.createElement("form");
  editor.className = "editor";
  const id = `edit-${el.dataset.messageId}`;
  editor.innerHTML =
    `<label class="visually-hidden" for="${id}">Edit message</label>` +
    `<textarea id="${id}" rows="3" required></textarea>` +
    '<div class="editor-actions"><button type="button" class="small cancel-edit">Cancel</button>' +
    '<button type="submit" class="small primary">Save and send</button></div>';
  const area = editor.querySelector("textarea");
  area.maxLength = input.maxLength;
  area.value = el.rawText ?? el.querySelector(".content").textContent;
  el.querySelector(".content").hidden = true;
  el.append(editor);
  area.focus();
}

function endEdit(el) {
  el.classList.remove("editing");
  el.querySelector(".editor")?.remove();
  el.querySelector(".content").hidden = false;
  updateActions();
}

messagesEl.addEventListener("click", (click) => {
  const el = click.target.closest(".message");
  if (!el) return;
  if (click.target.closest(".edit-button")) startEdit(el);
  else if (click.target.closest(".cancel-edit")) endEdit(el);
  else if (click.target.closest(".regenerate-button") && !busy) sendEvent({ type: "regenerate", params: sendParams() });
  else if (click.target.closest(".versions button")) switchTo(click.target.closest(".versions button"));
});

messagesEl.addEventListener("submit", (submit) => {
  submit.preventDefault();
  const el = submit.target.closest(".message");
  const content = submit.target.querySelector("textarea").value;
  if (!content.trim() || busy) return;
  if (sendEvent({ type: "edit", message_id: el.dataset.messageId, content, params: sendParams() })) endEdit(el);
});

messagesEl.addEventListener("keydown", (key) => {
  const nav = key.target.closest(".versions");
  if (nav && (key.key === "ArrowLeft" || key.key === "ArrowRight")) {
    key.preventDefault();
    switchTo(nav.querySelector(key.key === "ArrowLeft" ? ".version-prev" : ".version-next"));
    return;
  }
  const area = key.target.closest(".editor textarea");
  if (!area) return;
  if (key.key === "Escape") {
    key.stopPropagation();
    endEdit(area.closest(".message"));
  } else if (key.key === "Enter" && !key.shiftKey && !key.isComposing) {
    key.preventDefault();
    area.form.requestSubmit();
  }
});

// --- state shown around the list ------------------------------------------------------

function setBusy(value) {
  busy = value;
  stopButton.hidden = !busy;
  sendButton.disabled = busy;
  updateActions();
  jumpButton.hidden = pinned || !busy;
}

function showNotice(text, { fade = false } = {}) {
  clearTimeout(noticeTimer);
  notice.textContent = text;
  notice.hidden = !text;
  notice.dataset.kind = fade ? "info" : "error";
  if (fade) noticeTimer = setTimeout(() => showNotice(""), 4000);
}

function formatStats(stats) {
  const parts = [];
  if (stats.completion_tokens != null) parts.push(`${stats.completion_tokens} tokens`);
  if (stats.ttft_ms != null) parts.push(`first token ${Math.round(stats.ttft_ms)} ms`);
  if (stats.tokens_per_s != null) parts.push(`${stats.tokens_per_s.toFixed(1)} tokens/s`);
  return parts.join(" · ");
}

// A new conversation is titled by its first message; show that without a reload.
function nameInSidebar(m) {
  const current = document.querySelector(".conversation-list .current a.title");
  if (m.role !== "user" || !current || current.dataset.titled) return;
  current.dataset.titled = "1";
  if (current.textContent.trim() === "New chat") {
    const line = m.content.split(/\s+/).join(" ").trim();
    current.textContent = line.length <= 60 ? line : `${line.slice(0, 59).trimEnd()}…`;
  }
}

// --- server events ----------------------------------------------------------------------

const handlers = {
  message(event) {
    const m = event.message;
    if (m.role === "user") unsent = "";
    const el = messageElement(m.id, m.role);
    setContent(el, m.content);
    setStatus(el, m.status);
    setVersions(el, m);
    followIfPinned();
    nameInSidebar(m);
    updateActions();
  },
  removed(event) {
    for (const id of event.message_ids) {
      findMessage(id)?.remove();
      replies.delete(id);
    }
    updateActions();
  },
  start(event) {
    const r = reply(event.message_id);
    if (event.sibling_ids) setVersions(r.el, event); // the first start says where the reply sits
    if (r.seq > 0) return; // already streaming: a late place update
    setStatus(r.el, "queued");
    // Sent again as the queue moves, from different processes: a place only ever
    // goes down, so the smallest one heard is the current one.
    r.place = Math.min(r.place ?? Infinity, event.queue_position);
    r.el.querySelector(".meta").textContent =
      r.place > 0 ? `Queued: ${r.place} ahead of you` : "Waiting for the model…";
    setBusy(true);
    followIfPinned();
  },
  snapshot(event) {
    const r = reply(event.message_id);
    if (event.sibling_ids) setVersions(r.el, event);
    r.text = event.text;
    r.seq = event.seq;
    setStatus(r.el, "streaming");
    r.el.querySelector(".meta").textContent = "";
    setBusy(true);
    scheduleRender(r, event.message_id);
  },
  token(event) {
    const r = reply(event.message_id);
    if (event.seq <= r.seq) return; // already part of a snapshot
    r.seq = event.seq;
    r.text += event.text;
    if (r.el.dataset.status !== "streaming") {
      setStatus(r.el, "streaming");
      r.el.querySelector(".meta").textContent = "";
    }
    scheduleRender(r, event.message_id);
  },
  done(event) {
    const r = reply(event.message_id);
    cancelAnimationFrame(r.frame);
    messagesEl.dispatchEvent(
      new CustomEvent("chat:reply-done", {
        detail: { id: event.message_id, streamed: r.text, content: event.content, status: event.status },
      }),
    );
    r.text = event.content;
    if (event.status === "blocked") {
      // The partial reply goes: what moderation stopped is not left half-said.
      r.el.rawText = "";
      r.el.querySelector(".content").textContent = BLOCKED_NOTICE;
    } else {
      setContent(r.el, event.content);
    }
    setStatus(r.el, event.status);
    const moderated = r.redacted ? "some text was redacted" : "";
    const meta = [event.status === "complete" ? "" : event.status, event.error || "", moderated, formatStats(event.stats)];
    r.el.querySelector(".meta").textContent = meta.filter(Boolean).join(" · ");
    replies.delete(event.message_id);
    setBusy(false);
    followIfPinned();
    // One announcement per reply, when it is whole: a live region on the list itself
    // would read every token as it lands.
    const spoken = r.el.querySelector(".content").textContent.trim();
    announcer.textContent = ENDED_LABEL[event.status] ?? `Assistant: ${spoken.slice(0, 2000)}`;
    if (!document.querySelector("dialog[open]") && !messagesEl.querySelector(".editing")) input.focus();
  },
  path(event) {
    // A switch, here or in another tab, or the answer to a `sync`: the path shown, whole.
    renderPath(event);
  },
  settings(event) {
    chatSettings = event.settings;
    if (settingsPending) {
      settingsPending = false;
      settingsDialog.close();
      showNotice("Settings saved.", { fade: true });
    }
  },
  moderation(event) {
    // What was caught is for staff; the person learns only that something was.
    if (event.action === "redact") reply(event.message_id).redacted = true;
  },
  error(event) {
    if (settingsPending) {
      settingsPending = false;
      settingsError.textContent = event.message;
      settingsError.hidden = false;
      return;
    }
    switchFocus = null;
    if (unsent && !input.value) input.value = unsent;
    unsent = "";
    // A ban is followed by the socket's close: the notice keeps saying why.
    if (event.code === "banned") endedNotice = event.message;
    // A limit that passes (rate_limited, quota_exceeded, busy) says when to try again.
    const wait = event.retry_after == null ? "" : ` Try again in ${formatWait(event.retry_after)}.`;
    showNotice(event.message + wait);
  },
};

function formatWait(seconds) {
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

// --- the socket, reconnecting with backoff --------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/conversations/${conversationId}/`);
  window.__chatSocket = socket; // for the browser tests, which cut the connection
  socket.addEventListener("open", () => {
    retryDelay = 500;
    document.body.dataset.socket = "open";
    if (everOpened) {
      showNotice(busy ? "Reconnected: the reply resumes." : "Reconnected.", { fade: true });
      // A reply that ended while we were away sends no snapshot: ask for its end.
      for (const id of replies.keys()) sendEvent({ type: "resume", message_id: id });
      // Another tab may have switched the path while we were away.
      if (!busy) sendEvent({ type: "sync" });
    } else {
      showNotice("");
      showAskedVersion();
    }
    everOpened = true;
  });
  socket.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    handlers[event.type]?.(event);
  });
  socket.addEventListener("close", (close) => {
    document.body.dataset.socket = "closed";
    if (close.code >= 4400 && close.code < 4500) {
      // Closed for good: no reconnecting, and every later send says why.
      endedNotice ??= close.code === 4401 ? "Your session ended: log in again." : "This conversation is not available.";
      showNotice(endedNotice);
      return;
    }
    const seconds = Math.max(1, Math.round(retryDelay / 1000));
    showNotice(
      `Connection lost. Reconnecting in ${seconds} s…` +
        (busy ? " The reply in progress resumes once the connection is back." : ""),
    );
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  });
}

// A search hit on another version links here with ?show=<message id>: switch the path to it, once.
function showAskedVersion() {
  const asked = new URLSearchParams(location.search).get("show");
  if (!asked) return;
  history.replaceState(null, "", location.pathname + location.hash);
  if (!findMessage(asked) && !busy && sendEvent({ type: "switch", message_id: asked })) askedId = asked;
}

function sendEvent(event) {
  if (endedNotice) {
    showNotice(endedNotice);
    return false;
  }
  if (socket?.readyState !== WebSocket.OPEN) {
    showNotice("Not connected yet: try again in a moment.");
    return false;
  }
  socket.send(JSON.stringify(event));
  return true;
}

// What every send, edit and regenerate asks for: this conversation's settings.
function sendParams() {
  const params = { temperature: chatSettings.temperature, top_p: chatSettings.top_p };
  if (chatSettings.max_tokens != null) params.max_tokens = chatSettings.max_tokens;
  if (chatSettings.seed != null) params.seed = chatSettings.seed;
  return params;
}

function send() {
  const content = input.value;
  if (!content.trim() || busy) return;
  showNotice("");
  pinned = true;
  if (sendEvent({ type: "send", content, params: sendParams() })) {
    unsent = content;
    input.value = "";
  }
}

function stop() {
  sendEvent({ type: "stop" });
}

form.addEventListener("submit", (submit) => {
  submit.preventDefault();
  send();
});
input.addEventListener("keydown", (key) => {
  if (key.key === "Enter" && !key.shiftKey && !key.isComposing) {
    key.preventDefault();
    send();
  }
});
stopButton.addEventListener("click", stop);
document.addEventListener("keydown", (key) => {
  if (key.key === "Escape" && busy && !document.querySelector("dialog[open]")) stop();
});

// --- the settings panel -----------------------------------------------------------------

function fillSettings() {
  const fields = settingsForm.elements;
  fields.system_prompt.value = chatSettings.system_prompt;
  fields.temperature.value = chatSettings.temperature;
  fields.top_p.value = chatSettings.top_p;
  fields.max_tokens.value = chatSettings.max_tokens ?? "";
  fields.seed.value = chatSettings.seed ?? "";
  fields.guardrail.checked = chatSettings.guardrail;
}

document.getElementById("settings-button").addEventListener("click", () => {
  fillSettings();
  settingsError.hidden = true;
  settingsDialog.showModal();
});
document.getElementById("settings-cancel").addEventListener("click", () => settingsDialog.close());
settingsForm.addEventListener("submit", (submit) => {
  submit.preventDefault();
  settingsError.hidden = true;
  // The same limits as the server's, from the inputs' min/max/step/maxlength.
  if (!settingsForm.reportValidity()) return;
  const fields = settingsForm.elements;
  const number = (field) => (field.value === "" ? null : Number(field.value));
  settingsPending = sendEvent({
    type: "settings",
    settings: {
      system_prompt: fields.system_prompt.value,
      temperature: number(fields.temperature),
      top_p: number(fields.top_p),
      max_tokens: number(fields.max_tokens),
      seed: number(fields.seed),
      guardrail: fields.guardrail.checked,
    },
  });
});

// --- start ------------------------------------------------------------------------------

for (const el of messagesEl.querySelectorAll(".message")) {
  setContent(el, el.querySelector(".content").textContent);
  if (el.classList.contains("assistant") && LIVE.has(el.dataset.status)) {
    replies.set(el.dataset.messageId, { el, text: el.rawText, seq: 0, frame: 0 });
    setStatus(el, el.dataset.status);
    busy = true;
  }
}
setBusy(busy);
connect();
input.focus();
window.scrollTo(0, document.documentElement.scrollHeight);
