// cairn UI: the little interaction pages need (everything else is plain HTML).
"use strict";

// as the server writes sizes (cairn.sizes.format_size: 1 KiB = 1024 bytes)
function humanSize(n) {
  if (n < 1024) return n === 1 ? "1 byte" : `${n} bytes`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = n;
  for (const [i, unit] of units.entries()) {
    value /= 1024;
    if (value < 1024 || i === units.length - 1) return `${value.toFixed(1)} ${unit}`;
  }
  return `${n} bytes`;
}

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

  // a large version's folder is listed before its subfolders' sizes are known: ask the
  // page's JSON twin for them, and fill them in
  for (const table of document.querySelectorAll("table[data-sizes]")) {
    if (!table.querySelector("[data-size-of]")) continue;
    const url = new URL(table.dataset.sizes, window.location.href);
    url.searchParams.set("sizes", "true");
    fetch(url, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((doc) => {
        const sizes = new Map(doc.listing.items.map((i) => [i.path, i.size]));
        for (const cell of table.querySelectorAll("[data-size-of]")) {
          const size = sizes.get(cell.dataset.sizeOf);
          if (typeof size === "number") cell.textContent = humanSize(size);
        }
        table.dataset.filled = "1";
      })
      .catch(() => { table.dataset.filled = "0"; });
  }

  // selects that reload the page when changed (lineage depth)
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
});
