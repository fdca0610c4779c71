// The moderation queue page: select-all for bulk actions, a check before banning,
// and the live feed (/ws/moderation/): each new item listed as it arrives, with
// "N new items — refresh", and items another moderator has just handled marked as such.

const root = document.getElementById("moderation");
const banner = document.getElementById("live-banner");
const countText = document.getElementById("live-count");
const nounText = document.getElementById("live-noun");
const liveItems = document.getElementById("live-items");
const selectAll = document.getElementById("select-all");
const MAX_LIVE_ITEMS = 20;
const CLOSED_FOR_GOOD = new Set([4401, 4403]);
const MAX_BACKOFF_MS = 30000;

selectAll?.addEventListener("change", () => {
  for (const box of document.querySelectorAll(".select-item")) box.checked = selectAll.checked;
});

// Banning is the one action a moderator cannot take back from this page.
document.addEventListener("submit", (submit) => {
  const button = submit.submitter;
  const bulkBan = submit.target.id === "bulk" && document.getElementById("bulk-action").value === "ban";
  if (button?.value === "ban" || (bulkBan && button?.id === "bulk-apply")) {
    const selected = submit.target.id === "bulk" ? document.querySelectorAll(".select-item:checked").length : 1;
    if (!window.confirm(`Ban the author${selected > 1 ? "s" : ""} of ${selected} item${selected > 1 ? "s" : ""}?`)) {
      submit.preventDefault();
    }
  }
});

let fresh = 0;
let backoff = 1000;

function onItem(item) {
  if (item.kind === "event" || item.kind === "report") {
    fresh += 1;
    countText.textContent = String(fresh);
    nounText.textContent = fresh === 1 ? "item" : "items";
    banner.hidden = false;
    showLive(item);
  } else if (item.kind === "action" && ["event", "report"].includes(item.target_type)) {
    const shown = document.getElementById(`item-${item.target_type}-${item.target_id}`);
    const status = shown?.querySelector(".status");
    if (status) {
      const done = { dismiss: "dismissed", confirm: "confirmed" }[item.action] ?? item.action;
      status.textContent = `${done} by ${item.moderator ?? "a moderator"}`;
      shown.dataset.handled = "1";
    }
  }
}

// One line per new item, newest first; text only (textContent), never markup from the wire.
function showLive(item) {
  const line = document.createElement("li");
  line.className = `live-item kind-${item.kind === "report" ? "report" : "event"}`;
  const what =
    item.kind === "report"
      ? `report · ${item.reason ?? ""}`
      : `${item.action} · ${(item.categories ?? []).join(", ") || "no category"} · ${item.hook} at ${item.stage}`;
  const at = new Date(item.created_at);
  line.textContent = `${Number.isNaN(at.getTime()) ? "" : at.toLocaleTimeString()} ${what}`.trim();
  liveItems.prepend(line);
  while (liveItems.children.length > MAX_LIVE_ITEMS) liveItems.lastElementChild.remove();
  liveItems.hidden = false;
}

function connect() {
  const url = location.origin.replace(/^http/, "ws") + root.dataset.socketPath;
  const socket = new WebSocket(url);
  socket.addEventListener("open", () => {
    backoff = 1000;
    document.body.dataset.moderationSocket = "open";
  });
  socket.addEventListener("message", (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (event.type === "moderation.item" && event.item) onItem(event.item);
  });
  socket.addEventListener("close", (close) => {
    document.body.dataset.moderationSocket = "closed";
    if (CLOSED_FOR_GOOD.has(close.code)) return;
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  });
}

if (root && banner && liveItems) connect();
