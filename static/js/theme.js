// Light or dark: follows the system unless the person picked one (stored in localStorage).
// Loaded in <head>, not deferred: the stored theme is set before the first paint (no inline
// script: the Content-Security-Policy forbids them); the toggle is wired once the page is parsed.
// The cycle is: system -> light -> dark -> system.
(function () {
  var KEY = "theme";
  var ORDER = ["system", "light", "dark"];
  var LABELS = { system: "Theme: follows the system", light: "Theme: light", dark: "Theme: dark" };

  function stored() {
    try {
      var value = localStorage.getItem(KEY);
      return ORDER.indexOf(value) >= 0 ? value : "system";
    } catch (error) {
      return "system";
    }
  }

  function apply(choice) {
    var root = document.documentElement;
    if (choice === "system") delete root.dataset.theme;
    else root.dataset.theme = choice;
    var button = document.getElementById("theme-toggle");
    if (button) {
      button.setAttribute("aria-label", LABELS[choice] + " (change)");
      button.title = LABELS[choice];
      button.dataset.choice = choice;
    }
  }

  apply(stored());
  document.addEventListener("DOMContentLoaded", function () {
    apply(stored());
    document.getElementById("theme-toggle").addEventListener("click", toggle);
  });

  function toggle() {
    var next = ORDER[(ORDER.indexOf(stored()) + 1) % ORDER.length];
    try {
      if (next === "system") localStorage.removeItem(KEY);
      else localStorage.setItem(KEY, next);
    } catch (error) {
      // Storage refused (private mode): the choice lasts for this page only.
    }
    apply(next);
  }
})();
