// Progressive help for the pages; each works without it. No framework, no build step.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Users who did not choose a zone see times in their browser's: tell the server once.
  function reportBrowserZone() {
    var body = document.body;
    var url = body.dataset.browserZoneUrl;
    if (!url || body.dataset.zoneSource === "setting" || !window.Intl) return;
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (!zone || zone === body.dataset.zone) return;
    var tried = "aa-zone-reported:" + zone;
    if (window.sessionStorage && sessionStorage.getItem(tried)) return;
    if (window.sessionStorage) sessionStorage.setItem(tried, "1");
    var form = new URLSearchParams({ csrf_token: csrfToken(), timezone: zone });
    fetch(url, { method: "POST", body: form, credentials: "same-origin" }).then(function (r) {
      if (r.status === 204) window.location.reload();
    });
  }

  // Long form posts (an archive run) show that they are working, and for how long.
  function showProgress(form) {
    var region = document.getElementById(form.dataset.progress);
    if (!region) return;
    var started = Date.now();
    var label = form.dataset.progressLabel || "Working";
    function tick() {
      var seconds = Math.round((Date.now() - started) / 1000);
      region.textContent = label + "… " + seconds + " s";
    }
    tick();
    window.setInterval(tick, 1000);
    form.querySelectorAll("button[type=submit]").forEach(function (b) {
      b.setAttribute("aria-disabled", "true");
    });
  }

  // Fields that take dates or phrases get a calendar picker beside them.
  function addDatePicker(input) {
    var picker = document.createElement("input");
    picker.type = "date";
    picker.id = input.id + "-picker";
    var label = document.createElement("label");
    label.className = "hint";
    label.textContent = "or pick a day ";
    label.appendChild(picker);
    picker.addEventListener("change", function () {
      if (picker.value) input.value = picker.value;
    });
    var anchor = input.closest("label") || input;
    anchor.insertAdjacentElement("afterend", label);
  }

  document.addEventListener("DOMContentLoaded", function () {
    reportBrowserZone();
    document.querySelectorAll("form[data-progress]").forEach(function (form) {
      form.addEventListener("submit", function () { showProgress(form); });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
    document.querySelectorAll("input[data-date-picker]").forEach(addDatePicker);
  });
})();
