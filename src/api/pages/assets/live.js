// Live pages: every few seconds, fetch the page again and swap in its #live part. Without
// script the page is complete as served; a failed fetch just waits for the next turn.
(function () {
  var every = Number(document.body.getAttribute("data-live") || 0) * 1000;
  var target = document.getElementById("live");
  var refreshes = 0;
  if (!every || !target || !window.fetch || !window.DOMParser) return;
  function turn() {
    fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (!text) return;
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("live");
        if (!fresh) return;
        target.innerHTML = fresh.innerHTML;
        refreshes += 1;
        target.setAttribute("data-refreshes", String(refreshes));
      })
      .catch(function () {})
      .then(function () { window.setTimeout(turn, every); });
  }
  window.setTimeout(turn, every);
})();
