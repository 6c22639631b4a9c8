// feedwise console: draws the page's charts with the Plotly bundle /dashboard serves, and
// keeps a double submit from posting a form twice. Pages work without it (tables, forms).
(function () {
  "use strict";
  function draw() {
    if (!window.Plotly) { return; }
    document.querySelectorAll("div.chart[data-fig]").forEach(function (el) {
      var src = document.getElementById(el.dataset.fig);
      if (!src) { return; }
      var fig = JSON.parse(src.textContent);
      window.Plotly.newPlot(el, fig.data || [], fig.layout || {},
        {displaylogo: false, responsive: true}).then(function () {
          el.dataset.drawn = "1";
          var svg = el.querySelector("svg.main-svg");
          if (svg) { svg.setAttribute("aria-hidden", "true"); }
        });
    });
  }
  function guardForms() {
    document.querySelectorAll("form[method=post]").forEach(function (f) {
      f.addEventListener("submit", function () {
        f.querySelectorAll("button[type=submit]").forEach(function (b) {
          setTimeout(function () { b.disabled = true; }, 0);
        });
      });
    });
  }
  function lazy() {
    document.querySelectorAll("section.lazy[data-src]").forEach(function (el) {
      fetch(el.dataset.src, {credentials: "same-origin"}).then(function (r) {
        return r.ok ? r.text() : Promise.reject(new Error("status " + r.status));
      }).then(function (html) {
        var box = document.createElement("div");
        box.innerHTML = html;
        var got = box.querySelector("section");
        if (got) { el.replaceWith(got); }
      }).catch(function (e) {
        el.querySelector("p").textContent = "Alerts could not be loaded (" + e.message +
          "); reload the page.";
      });
    });
  }
  function poll() {
    var main = document.querySelector("main[data-poll]");
    if (!main) { return; }
    setInterval(function () { if (!document.hidden) { location.reload(); } },
      1000 * Number(main.dataset.poll));
  }
  document.addEventListener("DOMContentLoaded", function () {
    guardForms();
    lazy();
    poll();
    if (window.Plotly) { draw(); } else { window.addEventListener("load", draw); }
  });
}());
