// Verity's pages work without this file; it only adds conveniences: photo previews before a
// check is sent, and live progress on pages that declare data-progress-url.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll("input[type=file][data-preview]")) {
    const box = document.getElementById(input.dataset.preview);
    input.addEventListener("change", () => {
      box.replaceChildren();
      for (const file of input.files) {
        const img = document.createElement("img");
        img.alt = "Selected photo " + (box.children.length + 1);
        img.src = URL.createObjectURL(file);
        box.append(img);
      }
    });
  }
  const live = document.querySelector("[data-progress-url]");
  if (live) {
    const status = live.querySelector("[data-progress-text]");
    const poll = async () => {
      const r = await fetch(live.dataset.progressUrl, { credentials: "same-origin" });
      if (!r.ok) return;
      const body = await r.json();
      if (status && body.text) status.textContent = body.text;
      if (body.done) { window.location.reload(); return; }
      setTimeout(poll, 1000);
    };
    setTimeout(poll, 1000);
  }
});
