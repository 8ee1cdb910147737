// Refreshes the parts of the page marked data-live-part while the page
// says something is under way (<body data-live="true">): the page is
// fetched again and those parts are swapped in place, so forms being typed
// in and the scroll position stay as they are.
(function () {
  "use strict";
  var delay = 1000;

  function live() {
    return document.body.getAttribute("data-live") === "true";
  }

  function refresh() {
    fetch(location.href, { cache: "no-store", credentials: "same-origin" })
      .then(function (resp) {
        if (!resp.ok) {
          throw new Error("HTTP " + resp.status);
        }
        return resp.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live-part]").forEach(function (part) {
          var next = fresh.getElementById(part.id);
          if (next) {
            part.replaceWith(document.importNode(next, true));
          }
        });
        document.title = fresh.title;
        document.body.setAttribute("data-live", fresh.body.getAttribute("data-live"));
      })
      .catch(function () {
        // The server may be restarting: try again at the next tick.
      })
      .finally(schedule);
  }

  function schedule() {
    if (live()) {
      setTimeout(refresh, delay);
    }
  }

  document.addEventListener("DOMContentLoaded", schedule);
})();
