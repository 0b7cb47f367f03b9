// cairn UI: the little interaction pages need (everything else is plain HTML).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // tabbed cards: buttons [data-tab] show the matching [data-panel]
  for (const box of document.querySelectorAll("[data-tabs]")) {
    const buttons = box.querySelectorAll("[data-tab]");
    for (const button of buttons) {
      button.addEventListener("click", () => {
        for (const b of buttons) b.setAttribute("aria-selected", String(b === button));
        for (const panel of box.querySelectorAll("[data-panel]")) {
          panel.hidden = panel.dataset.panel !== button.dataset.tab;
        }
      });
    }
  }

  // copy buttons copy the code beside them
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const code = button.parentElement.querySelector("pre");
      const text = code ? code.innerText : "";
      try {
        await navigator.clipboard.writeText(text);
      } catch (err) {
        const range = document.createRange();
        range.selectNodeContents(code);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        document.execCommand("copy");
      }
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
  }

  // selects that reload the page when changed (lineage depth)
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
});
