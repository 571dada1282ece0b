// The users console's small behaviours (CSP forbids inline scripts). Everything here is an
// enhancement: each form and link works without JavaScript.
(function () {
  "use strict";

  function table() { return document.getElementById("users-table"); }

  function refreshSelection() {
    var root = table();
    if (!root) { return; }
    var boxes = root.querySelectorAll("[data-row-check]");
    var checked = 0;
    boxes.forEach(function (box) {
      var row = box.closest("tr");
      if (row) { row.classList.toggle("is-selected", box.checked); }
      if (box.checked) { checked += 1; }
    });
    var all = root.querySelector("[data-select-page]");
    if (all) {
      all.checked = boxes.length > 0 && checked === boxes.length;
      all.indeterminate = checked > 0 && checked < boxes.length;
    }
    var scope = root.querySelector("[data-scope]");
    var label = root.querySelector("[data-selected-count]");
    if (label) {
      label.classList.remove("text-danger");  // "Select users first" lasts until the selection changes
      if (scope && scope.value === "all") {
        label.textContent = "Every matching user";
      } else {
        label.textContent = checked === 0 ? "None selected" : checked + " selected";
      }
    }
    var bulk = root.querySelector("[data-bulk]");
    if (bulk) {
      // The batch bar shows once something is selected (or every matching user is the scope);
      // without JavaScript it is always there and the server asks for a selection.
      var active = checked > 0 || Boolean(scope && scope.value === "all");
      bulk.classList.toggle("has-selection", active);
      bulk.classList.toggle("is-idle", !active);
    }
  }

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches("[data-select-page]")) {
      table().querySelectorAll("[data-row-check]").forEach(function (box) { box.checked = el.checked; });
      refreshSelection();
    } else if (el.matches("[data-row-check], [data-scope]")) {
      refreshSelection();
    } else if (el.matches("[data-ban-duration]")) {
      syncBanUntil(el);
    } else if (el.matches("[data-mode]")) {
      syncPasswordField();
    }
  });

  function syncBanUntil(select) {
    var form = select.closest("form");
    var until = form && form.querySelector("[data-ban-until]");
    if (until) { until.hidden = select.value !== "until"; }
  }

  function syncPasswordField() {
    var field = document.querySelector("[data-password-field]");
    var chosen = document.querySelector("[data-mode]:checked");
    if (field && chosen) { field.hidden = chosen.value !== "password"; }
  }

  // Keep pushed URLs short: drop empty and default values from the list's htmx requests.
  var DEFAULTS = { sort: "-created", per_page: "50" };
  function droppable(key, value) { return value === "" || DEFAULTS[key] === value; }
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.closest || !(elt.closest("#users-filter") || elt.id === "users-q")) { return; }
    var params = event.detail.parameters;
    var names = [];
    if (params instanceof FormData) {
      params.forEach(function (value, key) { if (droppable(key, value)) { names.push(key); } });
      names.forEach(function (key) { params.delete(key); });
    } else if (params) {
      Object.keys(params).forEach(function (key) { if (droppable(key, params[key])) { delete params[key]; } });
    }
  });

  // A batch on "selected users" needs a selection: say so instead of a round trip.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id !== "batch-form") { return; }
    var scope = form.querySelector("[data-scope]");
    var any = table() && table().querySelector("[data-row-check]:checked");
    if (scope && scope.value === "selected" && !any) {
      event.preventDefault();
      var label = form.querySelector("[data-selected-count]");
      if (label) { label.textContent = "Select users first"; label.classList.add("text-danger"); }
    }
  });

  document.addEventListener("htmx:afterSwap", refreshSelection);
  document.addEventListener("DOMContentLoaded", function () {
    refreshSelection();
    document.querySelectorAll("[data-ban-duration]").forEach(syncBanUntil);
    syncPasswordField();
  });
})();
