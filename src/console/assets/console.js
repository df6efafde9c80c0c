// dbs-archiver console: live updates without a full reload.
// Every few seconds the current URL is fetched again and each element marked `data-live`
// is replaced by its namesake (same id) from the fresh page. Polling pauses while the tab
// is hidden or while the user is typing in a form, and backs off when the server fails.
(function () {
  "use strict";
  var BASE_MS = 5000, MAX_MS = 60000, delay = BASE_MS;
  var status = function (text) {
    var el = document.getElementById("live-status");
    if (el) { el.textContent = text; }
  };
  function busy() {
    var a = document.activeElement;
    return a && (a.tagName === "INPUT" || a.tagName === "SELECT" || a.tagName === "TEXTAREA");
  }
  function schedule() { window.setTimeout(tick, delay); }
  function tick() {
    if (document.hidden || busy()) { schedule(); return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Console-Poll": "1" } })
      .then(function (r) {
        if (r.redirected || !r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          var next = fresh.getElementById(el.id);
          if (next && next.innerHTML !== el.innerHTML) { el.innerHTML = next.innerHTML; }
        });
        delay = BASE_MS;
        status(" · live");
      })
      .catch(function () {
        delay = Math.min(delay * 2, MAX_MS);
        status(" · live updates paused (server unreachable), retrying");
      })
      .then(schedule);
  }
  if (document.querySelector("[data-live]")) { schedule(); }
})();
