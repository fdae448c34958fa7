// A wide table (.table-wrap) or JSON block (pre.json) scrolls inside its box on a phone: make
// each one that really scrolls reachable with the keyboard (Tab, then arrow keys) and named by its table's caption
// (WCAG 2.1.1; axe's scrollable-region-focusable). Pages work without this file.
"use strict";
const markScrollable = () => {
  for (const wrap of document.querySelectorAll(".table-wrap, pre.json")) {
    const scrolls = wrap.scrollWidth > wrap.clientWidth || wrap.scrollHeight > wrap.clientHeight;
    if (scrolls && !wrap.hasAttribute("tabindex")) {
      const caption = wrap.querySelector("caption");
      wrap.tabIndex = 0;
      wrap.setAttribute("role", "region");
      wrap.setAttribute("aria-label", caption ? caption.textContent.trim() : wrap.tagName === "PRE" ? "JSON" : "Table");
    }
  }
};
document.addEventListener("DOMContentLoaded", markScrollable);
document.addEventListener("toggle", markScrollable, true);  // tables inside <details>
window.addEventListener("resize", markScrollable);
