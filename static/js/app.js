// Small behaviours that CSP forbids inline: confirmations, copy buttons, select-all.
(function () {
  "use strict";
  // The confirmation dialog (templates/layouts/base.html). Confirmed, the form is sent without its
  // confirm_step field, so the server acts; without JavaScript that field brings the confirmation page.
  function openConfirm(el) {
    var dialog = document.getElementById("confirm-dialog");
    var form = el.form || el.closest("form");
    if (!dialog || typeof dialog.showModal !== "function" || !form) { return false; }
    dialog.querySelector("[data-confirm-text]").textContent = el.getAttribute("data-confirm");
    var ok = dialog.querySelector("[data-confirm-ok]");
    ok.textContent = el.getAttribute("data-confirm-button") || el.textContent.trim() || "Confirm";
    dialog.returnValue = "";
    dialog.addEventListener("close", function done() {
      dialog.removeEventListener("close", done);
      if (dialog.returnValue !== "ok") { return; }
      var step = form.querySelector("input[name=confirm_step]");
      if (step) { step.remove(); }
      el.setAttribute("data-confirmed", "1");
      if (form.requestSubmit) { form.requestSubmit(el.type === "submit" ? el : undefined); } else { el.click(); }
    });
    dialog.showModal();
    return true;
  }
  document.addEventListener("click", function (event) {
    var el = event.target.closest("[data-confirm]");
    if (el && el.getAttribute("data-confirmed") !== "1" && openConfirm(el)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
    var copy = event.target.closest("[data-copy]");
    if (copy && navigator.clipboard) {
      navigator.clipboard.writeText(copy.getAttribute("data-copy"));
      copy.textContent = "Copied";
    }
  }, true);
  // A session that expired during an htmx request gets a client redirect (HX-Redirect);
  // anything else that fails shows a message instead of silently doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var box = document.getElementById("htmx-error");
    if (box) {
      box.hidden = false;
      box.textContent = "The request failed (" + event.detail.xhr.status + "). Reload the page and try again.";
    }
  });
})();
// Forms marked data-autosubmit submit when one of their selects changes (tenant switcher).
document.addEventListener("change", function (event) {
  var form = event.target.closest("form[data-autosubmit]");
  if (form && event.target.tagName === "SELECT") { form.submit(); }
});
// Sudo mode: after a fresh code, the kept action is sent again at once (the button does it without JS).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-submit-now]");
  if (form) { form.submit(); }
});
// The browser's time zone, for the times the server renders (core.time_zones; a staff setting wins).
(function () {
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("tz=" + encodeURIComponent(zone)) === -1) {
      document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
    }
  } catch (e) { /* no Intl: times stay in UTC */ }
})();
// Form errors: the field with an error is marked (aria-invalid, described by its message) and the
// first one gets the focus, so a keyboard or screen-reader user lands where the fix is needed.
document.addEventListener("DOMContentLoaded", function () {
  var first = null;
  document.querySelectorAll(".field .errorlist, .field .error").forEach(function (list, index) {
    var field = list.closest(".field");
    var input = field && field.querySelector("input:not([type=hidden]), select, textarea");
    if (!input) { return; }
    if (!list.id) { list.id = "field-error-" + index; }
    field.classList.add("field-invalid");
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", ((input.getAttribute("aria-describedby") || "") + " " + list.id).trim());
    if (!first) { first = input; }
  });
  if (first && !document.querySelector("form[data-submit-now]")) { first.focus(); }
});
// "/" focuses the page's search box (data-search-shortcut), as in GitHub, Studio and Clerk.
document.addEventListener("keydown", function (event) {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) { return; }
  var target = event.target;
  if (target.closest("input, textarea, select, [contenteditable=true]")) { return; }
  var box = document.querySelector("[data-search-shortcut]");
  if (box) { event.preventDefault(); box.focus(); box.select(); }
});
// A row of the users table opens its user: a click anywhere on it but on its own controls.
document.addEventListener("click", function (event) {
  var row = event.target.closest("table.users tbody tr");
  if (!row || event.target.closest("a, button, input, label, select, textarea")) { return; }
  if (window.getSelection && String(window.getSelection())) { return; }  // selecting text is not a click
  var link = row.querySelector("a.cell-primary");
  if (link) { window.location.href = link.href; }
});
