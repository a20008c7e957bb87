/* spikebench report: draw every figure from the JSON in #plot-specs with the
   one inline copy of plotly.js.  A figure that cannot be drawn says so in
   its place instead of leaving a blank box.  When all are done, <body> gets
   data-plots-drawn / data-plots-failed (read by the browser test). */
(function () {
  "use strict";
  var config = {
    responsive: true,
    displaylogo: false,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
    toImageButtonOptions: { format: "png", scale: 2 }
  };
  var specs = {};
  var failed = 0;
  var drawn = 0;

  function fail(div, message) {
    failed += 1;
    var p = document.createElement("p");
    p.className = "plot-error";
    p.textContent = "This figure could not be drawn: " + message;
    div.appendChild(p);
  }

  function finish(total) {
    document.body.setAttribute("data-plots-drawn", String(drawn));
    document.body.setAttribute("data-plots-failed", String(failed));
    document.body.setAttribute("data-plots-total", String(total));
    document.body.setAttribute("data-page-height", String(document.documentElement.scrollHeight));
  }

  try {
    specs = JSON.parse(document.getElementById("plot-specs").textContent);
  } catch (err) {
    console.error("spikebench report: cannot read the figure data: " + err);
  }
  var divs = Array.prototype.slice.call(document.querySelectorAll("div.plot"));
  if (typeof Plotly === "undefined") {
    divs.forEach(function (div) { fail(div, "plotly.js did not load"); });
    finish(divs.length);
    return;
  }
  var pending = divs.map(function (div) {
    var spec = specs[div.id];
    if (!spec) {
      fail(div, "no data for " + div.id);
      return Promise.resolve();
    }
    try {
      return Plotly.newPlot(div, spec.data, spec.layout, config).then(
        function () { drawn += 1; },
        function (err) { fail(div, String(err)); }
      );
    } catch (err) {
      fail(div, String(err));
      return Promise.resolve();
    }
  });
  Promise.all(pending).then(function () { finish(divs.length); });
})();
