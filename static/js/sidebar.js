// The sidebar: rename a conversation in place, confirm before deleting, keyboard shortcuts.
// Without this script the same actions work as plain forms and pages.

const list = document.getElementById("conversation-list");

function csrfToken(form) {
  return form.querySelector("input[name=csrfmiddlewaretoken]").value;
}

async function submitRename(item, form) {
  const input = form.querySelector("input[name=title]");
  const response = await fetch(form.action, {
    method: "POST",
    headers: { Accept: "application/json", "X-CSRFToken": csrfToken(form) },
    body: new URLSearchParams({ title: input.value }),
  });
  const body = await response.json();
  if (!response.ok) {
    input.setCustomValidity(body.message);
    input.reportValidity();
    return;
  }
  const link = item.querySelector("a.title");
  link.textContent = body.title;
  link.dataset.titled = "1";
  closeRename(item);
}

function openRename(item) {
  const form = item.querySelector("form.rename");
  form.hidden = false;
  item.querySelector("a.title").hidden = true;
  const input = form.querySelector("input[name=title]");
  input.value = item.querySelector("a.title").textContent.trim();
  input.focus();
  input.select();
}

function closeRename(item) {
  item.querySelector("form.rename").hidden = true;
  item.querySelector("a.title").hidden = false;
}

list?.addEventListener("click", (click) => {
  const item = click.target.closest("li[data-conversation-id]");
  if (!item) return;
  if (click.target.closest(".rename-button")) openRename(item);
  const deleteLink = click.target.closest(".delete-link");
  if (deleteLink) {
    click.preventDefault();
    const title = item.querySelector("a.title").textContent.trim();
    if (!window.confirm(`Delete “${title}” and all its messages? This cannot be undone.`)) return;
    // The confirmation page's form does the deleting, with its CSRF token.
    const form = document.createElement("form");
    form.method = "post";
    form.action = deleteLink.href;
    const token = item.querySelector("input[name=csrfmiddlewaretoken]").cloneNode();
    form.append(token);
    document.body.append(form);
    form.submit();
  }
});

list?.addEventListener("submit", (submit) => {
  const form = submit.target.closest("form.rename");
  if (!form) return;
  submit.preventDefault();
  submitRename(form.closest("li"), form);
});

list?.addEventListener("keydown", (key) => {
  const form = key.target.closest("form.rename");
  if (form && key.key === "Escape") closeRename(form.closest("li"));
  if (form && key.target.validity && !key.target.validity.valid) key.target.setCustomValidity("");
});

document.addEventListener("keydown", (key) => {
  if (key.ctrlKey && key.shiftKey && key.key.toLowerCase() === "o") {
    key.preventDefault();
    document.getElementById("new-chat")?.click();
  } else if (key.ctrlKey && key.key.toLowerCase() === "k") {
    key.preventDefault();
    if (menuButton && getComputedStyle(menuButton).display !== "none") setSidebarOpen(true);
    document.getElementById("search-input")?.focus();
  }
});

// On a phone the sidebar hides behind the menu button (CSS decides when; this only toggles).
const menuButton = document.getElementById("menu-button");

function setSidebarOpen(open) {
  document.body.classList.toggle("sidebar-open", open);
  menuButton?.setAttribute("aria-expanded", String(open));
}

menuButton?.addEventListener("click", () => {
  const open = !document.body.classList.contains("sidebar-open");
  setSidebarOpen(open);
  if (open) document.querySelector("#sidebar .new-chat")?.focus();
});
document.addEventListener("keydown", (key) => {
  if (key.key === "Escape" && document.body.classList.contains("sidebar-open")) {
    setSidebarOpen(false);
    menuButton?.focus();
  }
});
document.addEventListener("click", (click) => {
  if (
    document.body.classList.contains("sidebar-open") &&
    !click.target.closest("#sidebar") &&
    !click.target.closest("#menu-button")
  ) {
    setSidebarOpen(false);
  }
});
