// Every page with the conversation list: the model's state and the no-worker banner
// (polled from /healthz), and the keyboard-shortcut help dialog (`?` or its button).

const helpDialog = document.getElementById("help-dialog");
const banner = document.getElementById("worker-banner");
const bannerText = document.getElementById("worker-banner-text");
const DOWN = { offline: "Messages wait in the queue until one starts.", failed: "The worker failed to load the model." };
const REFRESH_MS = 5000;

function isTyping(target) {
  return target.closest?.("input, textarea, select, [contenteditable=''], [contenteditable=true]");
}

document.getElementById("help-button").addEventListener("click", () => helpDialog.showModal());
document.addEventListener("keydown", (key) => {
  if (key.key === "?" && !key.ctrlKey && !key.metaKey && !key.altKey && !isTyping(key.target)) {
    if (document.querySelector("dialog[open]")) return;
    key.preventDefault();
    helpDialog.showModal();
  }
});

function showModel(health) {
  const model = health.model;
  document.getElementById("model-name").textContent = model.model || "no worker running";
  document.getElementById("model-state").textContent = model.state;
  document.getElementById("model-status").dataset.state = model.state;
  const load = model.capacity ? [`${model.active}/${model.capacity} replies in progress`] : [];
  if (health.queue_length) load.push(`${health.queue_length} waiting`);
  if (model.waiting) load.push(`${model.waiting} waiting for the engine`);
  if (model.kv_blocks_total) {
    const used = Math.round((100 * model.kv_blocks_used) / model.kv_blocks_total);
    load.push(`cache ${used}% used, prefix hits ${Math.round(100 * (model.prefix_hit_rate || 0))}%`);
  }
  document.getElementById("model-load").textContent = load.join(" · ");
  banner.hidden = !(model.state in DOWN);
  if (model.state in DOWN) bannerText.textContent = DOWN[model.state];
}

async function refreshModel() {
  try {
    const response = await fetch("/healthz", { cache: "no-store" });
    showModel(await response.json());
  } catch {
    document.getElementById("model-state").textContent = "unreachable";
  }
}

refreshModel();
setInterval(refreshModel, REFRESH_MS);
