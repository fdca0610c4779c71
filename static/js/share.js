// Share links: the shared page's replies rendered as the chat renders them (sanitised markdown;
// people's messages stay plain text, as typed), and the "Copy link" button of a new link.
// No inline script: the CSP allows none.

import { renderInto } from "./markdown.js";

for (const content of document.querySelectorAll("#shared .message.assistant .content")) {
  renderInto(content, content.textContent);
}

const copyButton = document.getElementById("copy-link");
if (copyButton) {
  const field = document.getElementById(copyButton.dataset.copyFrom);
  const status = document.getElementById("copy-status");
  copyButton.addEventListener("click", async () => {
    field.select();
    try {
      await navigator.clipboard.writeText(field.value);
      status.textContent = "Copied.";
    } catch {
      status.textContent = "Select the link and copy it (Ctrl+C).";
    }
  });
}
