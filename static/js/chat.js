// The chat page: one websocket per conversation, replies rendered as they stream.
// Protocol: docs/protocol.md. Text is only ever set with textContent, never as HTML.

const conversationId = JSON.parse(document.getElementById("conversation-id").textContent);
const messagesEl = document.getElementById("messages");
const form = document.getElementById("composer");
const input = document.getElementById("message-input");
const sendButton = document.getElementById("send-button");
const stopButton = document.getElementById("stop-button");
const notice = document.getElementById("notice");

const LIVE = new Set(["queued", "streaming"]);
const replies = new Map(); // message id -> {el, text, seq}
let socket = null;
let retryDelay = 500;

function scrolledToBottom() {
  return window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
}

function follow(wasAtBottom) {
  if (wasAtBottom) window.scrollTo(0, document.body.scrollHeight);
}

function messageElement(id, role) {
  let el = messagesEl.querySelector(`[data-message-id="${CSS.escape(id)}"]`);
  if (!el) {
    el = document.createElement("li");
    el.className = `message ${role}`;
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

function setStatus(el, status) {
  el.dataset.status = status;
  el.className = el.className.replace(/\bstatus-\S+/g, "").trim() + ` status-${status}`;
}

function reply(id) {
  if (!replies.has(id)) replies.set(id, { el: messageElement(id, "assistant"), text: "", seq: 0 });
  return replies.get(id);
}

function setBusy(busy) {
  stopButton.hidden = !busy;
  sendButton.disabled = busy;
}

function showNotice(text) {
  notice.textContent = text;
  notice.hidden = !text;
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

const handlers = {
  message(event) {
    const m = event.message;
    const atBottom = scrolledToBottom();
    const el = messageElement(m.id, m.role);
    el.querySelector(".content").textContent = m.content;
    setStatus(el, m.status);
    follow(atBottom);
    nameInSidebar(m);
  },
  start(event) {
    const r = reply(event.message_id);
    if (r.seq > 0) return; // already streaming: a late place update
    setStatus(r.el, "queued");
    // Sent again as the queue moves, from different processes: a place only ever
    // goes down, so the smallest one heard is the current one.
    r.place = Math.min(r.place ?? Infinity, event.queue_position);
    r.el.querySelector(".meta").textContent =
      r.place > 0 ? `Queued: ${r.place} ahead of you` : "Waiting for the model…";
    setBusy(true);
    follow(true);
  },
  snapshot(event) {
    const r = reply(event.message_id);
    r.text = event.text;
    r.seq = event.seq;
    r.el.querySelector(".content").textContent = r.text;
    setStatus(r.el, "streaming");
    setBusy(true);
  },
  token(event) {
    const r = reply(event.message_id);
    if (event.seq <= r.seq) return; // already part of a snapshot
    const atBottom = scrolledToBottom();
    r.seq = event.seq;
    r.text += event.text;
    r.el.querySelector(".content").textContent = r.text;
    if (r.el.dataset.status !== "streaming") {
      setStatus(r.el, "streaming");
      r.el.querySelector(".meta").textContent = "";
    }
    follow(atBottom);
  },
  done(event) {
    const r = reply(event.message_id);
    r.text = event.content;
    r.el.querySelector(".content").textContent = event.content;
    setStatus(r.el, event.status);
    const meta = [event.status === "complete" ? "" : event.status, event.error || "", formatStats(event.stats)];
    r.el.querySelector(".meta").textContent = meta.filter(Boolean).join(" · ");
    replies.delete(event.message_id);
    setBusy(false);
    input.focus();
  },
  error(event) {
    showNotice(event.message);
  },
};

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/conversations/${conversationId}/`);
  socket.addEventListener("open", () => {
    retryDelay = 500;
    document.body.dataset.socket = "open";
    showNotice("");
  });
  socket.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    handlers[event.type]?.(event);
  });
  socket.addEventListener("close", (close) => {
    document.body.dataset.socket = "closed";
    if (close.code >= 4400 && close.code < 4500) {
      showNotice(close.code === 4401 ? "Your session ended: log in again." : "This conversation is not available.");
      return;
    }
    showNotice("Connection lost, reconnecting…");
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  });
}

function send() {
  const content = input.value;
  if (!content.trim() || socket?.readyState !== WebSocket.OPEN || sendButton.disabled) return;
  showNotice("");
  socket.send(JSON.stringify({ type: "send", content }));
  input.value = "";
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
stopButton.addEventListener("click", () => socket?.send(JSON.stringify({ type: "stop" })));
document.addEventListener("keydown", (key) => {
  if (key.key === "Escape" && !stopButton.hidden) socket?.send(JSON.stringify({ type: "stop" }));
});

async function refreshModel() {
  try {
    const health = await (await fetch("/healthz")).json();
    const model = health.model;
    document.getElementById("model-name").textContent = model.model || "no worker running";
    document.getElementById("model-state").textContent = model.state;
    document.getElementById("model-status").dataset.state = model.state;
    const load = model.capacity ? [`${model.active}/${model.capacity} replies in progress`] : [];
    if (health.queue_length) load.push(`${health.queue_length} waiting`);
    document.getElementById("model-load").textContent = load.join(" · ");
  } catch {
    document.getElementById("model-state").textContent = "unreachable";
  }
}

for (const el of messagesEl.querySelectorAll(".message.assistant")) {
  if (LIVE.has(el.dataset.status)) {
    replies.set(el.dataset.messageId, { el, text: el.querySelector(".content").textContent, seq: 0 });
    setBusy(true);
  }
}
connect();
setInterval(refreshModel, 10000);
input.focus();
window.scrollTo(0, document.body.scrollHeight);
