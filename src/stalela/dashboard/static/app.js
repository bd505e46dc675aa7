// Stalela consoles: the little that needs script. Every page works without it.
"use strict";
(function () {
  // Destructive forms ask first (data-confirm on the form).
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); }
  });
  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (t.hasAttribute("data-copy")) {
      var text = document.getElementById(t.getAttribute("data-copy")).textContent;
      if (navigator.clipboard) { navigator.clipboard.writeText(text).then(function () { t.textContent = "Copied"; }); }
    }
    if (t.hasAttribute("data-print")) { window.print(); }
  });
  // Audit export progress: poll each unfinished job until it is ready or failed.
  function poll(row) {
    var url = row.getAttribute("data-poll");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (job) {
        var status = row.querySelector(".export-status");
        var bar = row.querySelector("progress");
        // The page's words (its language), carried by the table: this script has no catalog of its own.
        var table = row.closest("table"), words = JSON.parse(table.getAttribute("data-statuses") || "{}");
        status.textContent = (words[job.status] || job.status) +
          (job.invoices != null ? " · " + job.invoices + " " + (table.getAttribute("data-word-invoices") || "invoices") : "") +
          (job.error ? " · " + job.error : "");
        bar.value = { pending: 1, running: 2 }[job.status] || 3;
        if (job.status === "ready" && job.download_url) {
          var a = document.createElement("a");
          a.href = job.download_url;
          a.textContent = (table.getAttribute("data-word-download") || "Download") + " (" + job.bytes + " B)";
          row.querySelector(".export-link").replaceChildren(a);
        }
        if (job.status === "pending" || job.status === "running") { setTimeout(function () { poll(row); }, 1000); }
      })
      .catch(function () { setTimeout(function () { poll(row); }, 5000); });
  }
  document.querySelectorAll("[data-poll]").forEach(poll);
  // A table wider than a phone scrolls inside itself (app.css): let the keyboard reach it too.
  function focusableScrollers() {
    document.querySelectorAll("main table").forEach(function (t) {
      if (t.scrollWidth > t.clientWidth + 1) { t.setAttribute("tabindex", "0"); } else { t.removeAttribute("tabindex"); }
    });
  }
  focusableScrollers();
  window.addEventListener("resize", focusableScrollers);
})();
