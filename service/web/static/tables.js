// A wide table scrolls sideways inside .table-wrap on a phone: make each wrapper that really
// scrolls reachable with the keyboard (Tab, then arrow keys) and named by its table's caption
// (WCAG 2.1.1; axe's scrollable-region-focusable). Pages work without this file.
"use strict";
const markScrollable = () => {
  for (const wrap of document.querySelectorAll(".table-wrap")) {
    const scrolls = wrap.scrollWidth > wrap.clientWidth;
    if (scrolls && !wrap.hasAttribute("tabindex")) {
      const caption = wrap.querySelector("caption");
      wrap.tabIndex = 0;
      wrap.setAttribute("role", "region");
      wrap.setAttribute("aria-label", caption ? caption.textContent.trim() : "Table");
    }
  }
};
document.addEventListener("DOMContentLoaded", markScrollable);
document.addEventListener("toggle", markScrollable, true);  // tables inside <details>
window.addEventListener("resize", markScrollable);
