// poolwarden dashboard charts: draws the series the server embedded in the page.
// The numbers are computed on the server (poolwarden.http.web.series); this file only
// hands them to Chart.js (vendor/chart.umd.min.js). No inline script: the page's CSP
// allows scripts from this origin only.
(function () {
  "use strict";
  var COLOURS = ["#1d2330", "#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#0e7490",
                 "#be123c", "#4d7c0f", "#a16207"];
  var RATE_SIGNALS = {hard_bounce_rate: true, complaint_rate: true, deferral_rate: true};

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function percent(value) {
    return value === null || value === undefined ? "no data" : (value * 100).toFixed(2) + " %";
  }

  function draw(canvas, series) {
    var signal = canvas.dataset.signal;
    var isRate = RATE_SIGNALS[signal] === true;
    var names = Object.keys(series.providers);
    var datasets = names.map(function (name, i) {
      return {
        label: name,
        data: series.providers[name][signal],
        borderColor: COLOURS[i % COLOURS.length],
        backgroundColor: COLOURS[i % COLOURS.length],
        borderWidth: name === "all" ? 3 : 1.5,
        pointRadius: 1.5,
        spanGaps: false,
        tension: 0
      };
    });
    var threshold = canvas.dataset.threshold;
    if (threshold) {
      var value = parseFloat(threshold);
      datasets.push({
        label: canvas.dataset.thresholdName + " " + (isRate ? percent(value) : value),
        data: series.days.map(function () { return value; }),
        borderColor: "#b3261e", borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0
      });
    }
    var chart = new window.Chart(canvas, {
      type: signal === "volume" ? "bar" : "line",
      data: {labels: series.days, datasets: datasets},
      options: {
        animation: false,  // drawn at once: what the page shows is final when it loads
        responsive: true,
        maintainAspectRatio: false,
        interaction: {mode: "index", intersect: false},
        scales: {
          y: {beginAtZero: true, ticks: {callback: function (v) {
            // up to 3 decimals, no trailing zeros: complaint rates live around 0.1 %
            return isRate ? parseFloat((v * 100).toFixed(3)) + "%" : v;
          }}}
        },
        plugins: {
          tooltip: {callbacks: {label: function (ctx) {
            var v = ctx.parsed.y;
            return ctx.dataset.label + ": " + (isRate ? percent(v) : v);
          }}}
        }
      }
    });
    canvas.dataset.rendered = "1";
    return chart;
  }

  function start() {
    var series = readJson("series-data");
    window.poolwardenCharts = {};
    if (!series || !window.Chart) { return; }
    var canvases = document.querySelectorAll("canvas[data-signal]");
    for (var i = 0; i < canvases.length; i++) {
      window.poolwardenCharts[canvases[i].dataset.signal] = draw(canvases[i], series);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
