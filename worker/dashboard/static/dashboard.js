// Live updates without reloading: every few seconds fetch this page's live
// fragment and swap it in. Plain script, shipped in the package.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var every = 1000 * Number(document.body.getAttribute("data-refresh") || "5");
  function refresh() {
    // From path and query only: a URL holding user:password cannot be fetched.
    var url = new URL(window.location.pathname + window.location.search, window.location.origin);
    url.searchParams.set("fragment", "1");
    fetch(url.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        live.innerHTML = html;
        live.setAttribute("data-updated", String(Date.now()));
        var n = Number(live.getAttribute("data-updates") || "0") + 1;
        live.setAttribute("data-updates", String(n));
      })
      .catch(function () { live.setAttribute("data-stale", "1"); });
  }
  window.setInterval(refresh, every);
})();
