/* mlstack dashboards: each page reads the JSON API with the key the person signed in with (kept in
   sessionStorage, sent as Authorization: Bearer) and draws it with uPlot. No data is in the HTML.
   A missing key, or one whose role may not read the page's data (401/403), goes to the sign-in page. */
(function () {
  "use strict";
  var KEY = "mlstack.apiKey";
  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04"];
  var page = document.body.dataset.page;
  var content = document.getElementById("content");
  var statusLine = document.getElementById("status");

  function AccessDenied(message) { this.message = message; }

  // -- small helpers ------------------------------------------------------------------------------
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else if (name === "onclick") node.addEventListener("click", attrs[name]);
      else node.setAttribute(name, attrs[name]);
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }
  function fmt(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value) && Math.abs(value) >= 1000) return value.toLocaleString("en");
    return Number.isInteger(value) ? String(value) : value.toFixed(digits === undefined ? 3 : digits);
  }
  function pct(value) { return value === null || value === undefined ? "–" : (100 * value).toFixed(1) + " %"; }
  function dayTime(day) { return Date.parse(day + "T00:00:00Z") / 1000; }
  function isoTime(text) { return Date.parse(text) / 1000; }
  function when(text) { return text ? new Date(text).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "–"; }
  function card(title, wide) {
    var box = el("section", { "class": wide ? "card wide" : "card" }, el("h2", { text: title }));
    return box;
  }
  function note(text) { return el("p", { "class": "note", text: text }); }
  function setStatus(text, isError) {
    statusLine.textContent = text;
    statusLine.className = isError ? "status error" : "status";
  }

  // -- the key and the API ------------------------------------------------------------------------
  function apiKey() { return sessionStorage.getItem(KEY); }
  function toSignIn(reason) {
    sessionStorage.removeItem(KEY);
    location.replace("/dashboards?next=" + encodeURIComponent(page) + (reason ? "&reason=" + reason : ""));
  }
  function api(path, method, body) {
    return fetch(path, {
      method: method || "GET",
      headers: { "Authorization": "Bearer " + apiKey(), "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      if (response.status === 401 || response.status === 403) throw new AccessDenied(path);
      return response.json().then(function (payload) {
        if (!response.ok) throw new Error((payload.error && payload.error.message) || "HTTP " + response.status);
        return payload;
      });
    });
  }

  // -- charts (uPlot) -----------------------------------------------------------------------------
  // spec: {title, x, xLabel, yLabel, time, series: [{label, values, kind: line|bars|points, color, dash}],
  //        band: [lowIndex, highIndex] (series indexes, 1-based), yRange: [min, max]}
  function chart(parent, spec) {
    var holder = el("div", { "class": "chart", "data-title": spec.title });
    parent.appendChild(holder);
    var drawn = 0;
    spec.series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v !== undefined) drawn++; }); });
    holder.setAttribute("data-points", String(drawn));
    if (!drawn) {
      holder.appendChild(note(spec.title + ": no data yet"));
      return holder;
    }
    var draw = function () { holder._plot = plot(holder, spec); };
    if (holder.isConnected) draw(); else pending.push(draw);
    return holder;
  }
  var pending = [];  // charts whose card is not yet in the page: drawn once it is (they size to it)
  function flushCharts() { pending.splice(0).forEach(function (draw) { draw(); }); }
  function plot(holder, spec) {
    var width = Math.max(280, (holder.clientWidth || 600) - 4);
    var series = [{ label: spec.xLabel, value: spec.time === false ? function (u, v) { return fmt(v); } : undefined }];
    spec.series.forEach(function (s, i) {
      var color = s.color || PALETTE[i % PALETTE.length];
      var entry = {
        label: s.label, stroke: color, width: s.kind === "points" ? 0 : 2, dash: s.dash,
        value: function (u, v) { return fmt(v, s.digits); }, spanGaps: true,
        points: { show: s.kind === "points" || spec.x.length < 40, size: s.kind === "points" ? 9 : 5, fill: color },
      };
      if (s.kind === "bars") {
        entry.paths = uPlot.paths.bars({ size: [0.8 / spec.series.length, 60], align: 0 });
        entry.fill = color + "99";
        entry.points = { show: false };
      }
      if (s.kind === "points") entry.paths = function () { return null; };
      if (s.fill) entry.fill = s.fill;
      series.push(entry);
    });
    var x = { time: spec.time !== false };
    if (spec.x.length === 1) {  // one point (a single week): a range around it, not uPlot's guess
      var pad = spec.time === false ? 0.5 : 4 * 86400;
      x.range = [spec.x[0] - pad, spec.x[0] + pad];
    }
    var y = spec.yRange ? { range: spec.yRange } : { auto: true };
    if (spec.zero) y = { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } };
    var opts = {
      title: spec.title, width: width, height: spec.height || 260, series: series,
      scales: { x: x, y: y },
      axes: [{ label: spec.xLabel, labelSize: 20 }, { label: spec.yLabel, labelSize: 20, size: 64 }],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    };
    if (spec.band) opts.bands = [{ series: spec.band, fill: "rgba(37,99,235,0.15)" }];
    var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    return new uPlot(opts, data, holder);
  }
  // One series per distinct key (e.g. model version, risk level) over the distinct days.
  function pivot(rows, keyOf, valueOf) {
    var days = Array.from(new Set(rows.map(function (r) { return r.day; }))).sort();
    var keys = Array.from(new Set(rows.map(keyOf))).sort();
    var columns = keys.map(function (k) {
      var byDay = {};
      rows.forEach(function (r) { if (keyOf(r) === k) byDay[r.day] = valueOf(r); });
      return { label: k, values: days.map(function (d) { return byDay[d] === undefined ? null : byDay[d]; }) };
    });
    return { x: days.map(dayTime), series: columns };
  }
  function table(columns, rows, rowClass) {
    var head = el("tr", {});
    columns.forEach(function (c) { head.appendChild(el("th", { "class": c.num ? "num" : "", text: c.label })); });
    var body = el("tbody", {});
    rows.forEach(function (row) {
      var tr = el("tr", { "class": rowClass ? rowClass(row) : "" });
      columns.forEach(function (c) {
        var value = c.get(row);
        var td = el("td", { "class": c.num ? "num" : "" });
        if (value instanceof Node) td.appendChild(value); else td.textContent = value === null || value === undefined ? "–" : String(value);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    return el("table", {}, el("thead", {}, head), body);
  }
  function figures(items) {
    var box = el("div", { "class": "figures" });
    items.forEach(function (item) {
      box.appendChild(el("div", { "class": "figure" }, el("div", { "class": "value", text: item[1] }),
                         el("div", { "class": "label", text: item[0] })));
    });
    return box;
  }
  function badge(text) { return el("span", { "class": "badge " + text, text: text }); }

  // -- sign-in ------------------------------------------------------------------------------------
  function signIn() {
    var params = new URLSearchParams(location.search);
    var next = params.get("next") || "";
    var input = el("input", { type: "password", id: "api-key", autocomplete: "off", placeholder: "API key" });
    var form = el("form", { "class": "signin", id: "sign-in" },
      el("p", { text: "Sign in with an API key: a staff key for your tenant's OCR, conflict and fraud pages, an" +
                      " operator key for monitoring. The key stays in this tab (sessionStorage) and is sent to this" +
                      " service only." }),
      el("label", { "for": "api-key", text: "API key" }), input,
      el("button", { type: "submit", text: "Open dashboards" }));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      location.assign("/dashboards/" + (["ocr", "conflict", "fraud", "monitoring"].indexOf(next) >= 0 ? next : "ocr"));
    });
    if (params.get("reason") === "denied") {
      setStatus("That key may not see the " + next + " page (it needs a staff key, or an operator key for" +
                " monitoring). Sign in with another key.", true);
    } else {
      setStatus("No data is shown until you sign in.");
    }
    content.appendChild(form);
  }

  // -- OCR ----------------------------------------------------------------------------------------
  function ocrPage(data) {
    var grid = el("div", { "class": "grid" });
    var head = card("Where the loop stands", true);
    var threshold = data.threshold || {};
    var batch = data.latest_labelling_batch;
    head.appendChild(figures([
      ["capture threshold in force (" + data.current_threshold.source + ")", fmt(data.current_threshold.value)],
      ["recommended threshold (" + pct(threshold.target_share) + " of errors)", fmt(threshold.threshold)],
      ["captures per day at it", fmt(threshold.captures_per_day, 1)],
      ["labelling backlog: captured, uncorrected", fmt(data.labelling_backlog.captured_uncorrected)],
      ["selected, not yet labelled", fmt(data.labelling_backlog.selected_unlabelled)],
      ["latest labelling batch", batch ? batch.labelled + " of " + batch.size + " labelled" : "none yet"],
    ]));
    if (batch) head.appendChild(note("Latest batch " + batch.batch_id + ", created " + when(batch.created_at) + ": " + batch.manifest_key));
    if (threshold.reason) head.appendChild(note(threshold.reason));
    grid.appendChild(head);

    var daily = data.capture_rate_per_day;
    var capture = card("Capture rate per day");
    chart(capture, { title: "Share of readings captured for review", xLabel: "day (UTC)", yLabel: "captured (%)",
      x: daily.map(function (d) { return dayTime(d.day); }),
      series: [{ label: "capture rate %", values: daily.map(function (d) { return 100 * d.rate; }), digits: 1 }] });
    capture.appendChild(note("Last 30 days; readings per day: " + daily.map(function (d) { return d.readings; }).join(", ")));
    grid.appendChild(capture);

    var weeks = data.corrections_per_week;
    var corrections = card("Corrections per week");
    chart(corrections, { title: "Corrections per week", xLabel: "week starting (UTC)", yLabel: "corrections", zero: true,
      x: weeks.map(function (w) { return dayTime(w.week); }),
      series: [{ label: "corrections", values: weeks.map(function (w) { return w.corrections; }), kind: "bars", digits: 0 },
               { label: "of which errors", values: weeks.map(function (w) { return w.errors; }), kind: "bars", digits: 0 }] });
    grid.appendChild(corrections);

    var buckets = data.quality_by_confidence;
    var quality = card("Accuracy and character error rate per confidence bucket", true);
    chart(quality, { title: "Quality by OCR confidence (observed against estimated)", xLabel: "OCR confidence (bucket midpoint)",
      yLabel: "rate (0–1)", time: false, yRange: [0, 1],
      x: buckets.map(function (b) { return (b.confidence[0] + b.confidence[1]) / 2; }),
      series: [{ label: "accuracy", values: buckets.map(function (b) { return b.observed_accuracy; }) },
               { label: "character error rate", values: buckets.map(function (b) { return b.character_error_rate; }) },
               { label: "estimated error rate", values: buckets.map(function (b) { return b.estimated_error_rate; }), dash: [6, 4] }] });
    quality.appendChild(table([
      { label: "confidence", get: function (b) { return b.confidence[0].toFixed(1) + "–" + b.confidence[1].toFixed(1); } },
      { label: "readings", num: true, get: function (b) { return fmt(b.readings); } },
      { label: "accuracy", num: true, get: function (b) { return pct(b.observed_accuracy); } },
      { label: "CER", num: true, get: function (b) { return fmt(b.character_error_rate, 4); } },
      { label: "estimated error rate", num: true, get: function (b) { return pct(b.estimated_error_rate); } },
    ], buckets));
    grid.appendChild(quality);
    return grid;
  }

  // -- conflict -----------------------------------------------------------------------------------
  function conflictPage(data) {
    var grid = el("div", { "class": "grid" });
    var versions = card("Model versions", true);
    versions.appendChild(table([
      { label: "version", get: function (v) { return v.label; } },
      { label: "role", get: function (v) { return badge(v.role); } },
      { label: "scope", get: function (v) { return v.scope; } },
      { label: "trained ROC-AUC", num: true, get: function (v) { return fmt(v.trained_metrics.roc_auc); } },
      { label: "trained Brier", num: true, get: function (v) { return fmt(v.trained_metrics.brier, 4); } },
      { label: "live ROC-AUC (30 d)", num: true, get: function (v) { return fmt((v.live_metrics["30d"] || {}).roc_auc); } },
      { label: "live Brier (30 d)", num: true, get: function (v) { return fmt((v.live_metrics["30d"] || {}).brier, 4); } },
      { label: "live predictions (30 d)", num: true, get: function (v) { return fmt((v.live_metrics["30d"] || {}).predictions); } },
      { label: "activated", get: function (v) { return when(v.activated_at); } },
    ], data.versions));
    versions.appendChild(note("champion = the active version; challenger = a candidate answering a share of requests; shadow = scored alongside, never answering."));
    grid.appendChild(versions);

    var live = data.live_by_day;
    var byLabel = function (r) { return r.model_label; };
    var auc = pivot(live, byLabel, function (r) { return r.roc_auc; });
    var aucCard = card("Live ROC-AUC per version");
    chart(aucCard, { title: "Live ROC-AUC per day (labelled predictions)", xLabel: "day (UTC)", yLabel: "ROC-AUC", x: auc.x, series: auc.series });
    grid.appendChild(aucCard);
    var brier = pivot(live, byLabel, function (r) { return r.brier; });
    var brierCard = card("Live Brier score per version");
    chart(brierCard, { title: "Live Brier score per day (lower is better)", xLabel: "day (UTC)", yLabel: "Brier score", x: brier.x,
      series: brier.series.map(function (s) { s.digits = 4; return s; }) });
    grid.appendChild(brierCard);

    var risk = pivot(data.predictions_by_risk, function (r) { return r.risk_level; }, function (r) { return r.predictions; });
    var colors = { high: "#dc2626", medium: "#ea580c", low: "#16a34a" };
    var riskCard = card("Predictions per day by risk level");
    chart(riskCard, { title: "Predictions per day by risk level", xLabel: "day (UTC)", yLabel: "predictions", x: risk.x, zero: true,
      series: risk.series.map(function (s) { s.color = colors[s.label]; s.digits = 0; return s; }) });
    grid.appendChild(riskCard);

    var outcomes = data.outcomes_by_day;
    var outCard = card("Outcomes per day");
    chart(outCard, { title: "What happened after each prediction", xLabel: "day (UTC)", yLabel: "predictions", zero: true,
      x: outcomes.map(function (o) { return dayTime(o.day); }),
      series: [{ label: "conflicted", values: outcomes.map(function (o) { return o.conflicted; }), color: "#dc2626", digits: 0 },
               { label: "no conflict", values: outcomes.map(function (o) { return o.clean; }), color: "#16a34a", digits: 0 },
               { label: "pending", values: outcomes.map(function (o) { return o.pending; }), color: "#6b7280", digits: 0 }] });
    grid.appendChild(outCard);

    var deciles = data.calibration;
    var calCard = card("Calibration by decile");
    chart(calCard, { title: "Predicted against observed conflict rate, by decile", xLabel: "mean predicted probability",
      yLabel: "observed conflict rate", time: false,
      x: deciles.map(function (d) { return d.predicted; }),
      series: [{ label: "observed", values: deciles.map(function (d) { return d.observed; }), kind: "points" },
               { label: "perfect calibration", values: deciles.map(function (d) { return d.predicted; }), color: "#9ca3af", dash: [4, 4] }] });
    grid.appendChild(calCard);
    return grid;
  }

  // -- fraud --------------------------------------------------------------------------------------
  function fraudPage(parts) {
    var summary = parts[0], activity = parts[1], point = parts[2];
    var grid = el("div", { "class": "grid" });
    var head = card("Serving model and operating point", true);
    var trained = summary.trained.metrics || {};
    head.appendChild(figures([
      ["serving model", summary.model_version],
      ["PR-AUC at training", fmt(trained.pr_auc)],
      ["review threshold", fmt(point.review_threshold)],
      ["block threshold", fmt(point.block_threshold)],
      ["scored in 30 days", fmt(summary.traffic.scored)],
      ["decisions allow / review / block", [summary.traffic.decisions.allow, summary.traffic.decisions.review, summary.traffic.decisions.block].join(" / ")],
    ]));
    head.appendChild(table([
      { label: "version", get: function (v) { return v.label; } },
      { label: "role", get: function (v) { return badge(v.role); } },
      { label: "scope", get: function (v) { return v.scope; } },
      { label: "PR-AUC (training)", num: true, get: function (v) { return fmt(v.trained_pr_auc); } },
      { label: "PR-AUC (live, 30 d)", num: true, get: function (v) { return fmt(v.live_pr_auc_30d); } },
      { label: "PR-AUC (live, 7 d)", num: true, get: function (v) { return fmt(v.live_pr_auc_7d); } },
    ], activity.versions));
    grid.appendChild(head);

    var tradeoff = point.tradeoff || [];
    var curve = card("Threshold trade-off");
    chart(curve, { title: "Precision, recall and false-positive rate by threshold", xLabel: "review threshold (score)",
      yLabel: "rate (0–1)", time: false, yRange: [0, 1],
      x: tradeoff.map(function (r) { return r.threshold; }),
      series: [{ label: "precision", values: tradeoff.map(function (r) { return r.precision; }) },
               { label: "recall", values: tradeoff.map(function (r) { return r.recall; }) },
               { label: "false-positive rate", values: tradeoff.map(function (r) { return r.false_positive_rate; }) },
               { label: "current review threshold", kind: "points", color: "#111827",
                 values: tradeoff.map(function (r) { return Math.abs(r.threshold - point.review_threshold) < 1e-9 ? r.recall : null; }) }] });
    grid.appendChild(curve);

    var fpr = activity.false_positive_rate_by_day;
    var fprCard = card("False-positive rate over time");
    chart(fprCard, { title: "False-positive rate per day at the review threshold", xLabel: "day (UTC)", yLabel: "false-positive rate (%)",
      x: fpr.map(function (d) { return dayTime(d.day); }),
      series: [{ label: "false-positive rate %", values: fpr.map(function (d) { return d.false_positive_rate === null ? null : 100 * d.false_positive_rate; }), digits: 2 }] });
    fprCard.appendChild(note("Scores with a known outcome (investigators' verdicts; 30 days without one = legitimate)."));
    grid.appendChild(fprCard);

    var move = card("Move the operating point", true);
    var review = el("input", { type: "number", id: "review-threshold", min: "0", max: "1", step: "any", value: String(point.review_threshold) });
    var block = el("input", { type: "number", id: "block-threshold", min: "0", max: "1", step: "any", value: String(point.block_threshold) });
    var result = el("span", { id: "operating-point-result", "class": "note" });
    var form = el("form", { "class": "inline", id: "operating-point" },
      el("label", { "for": "review-threshold", text: "review at score ≥" }), review,
      el("label", { "for": "block-threshold", text: "block at score ≥" }), block,
      el("button", { type: "submit", id: "save-operating-point", text: "Save" }), result);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      result.textContent = "saving…";
      api("/api/v2/fraud/operating-point", "PUT", { review_threshold: Number(review.value), block_threshold: Number(block.value) })
        .then(function (saved) { result.textContent = "saved: review " + saved.review_threshold + ", block " + saved.block_threshold; result.setAttribute("data-saved", "true"); })
        .catch(function (error) { result.textContent = "not saved: " + error.message; });
    });
    move.appendChild(form);
    move.appendChild(table([
      { label: "threshold", num: true, get: function (r) { return fmt(r.threshold, 2); } },
      { label: "precision", num: true, get: function (r) { return pct(r.precision); } },
      { label: "recall", num: true, get: function (r) { return pct(r.recall); } },
      { label: "false-positive rate", num: true, get: function (r) { return pct(r.false_positive_rate); } },
      { label: "alerts per day", num: true, get: function (r) { return fmt(r.alerts_per_day, 1); } },
      { label: "", get: function (r) {
          return el("button", { type: "button", "class": "use-threshold", "data-threshold": String(r.threshold), text: "review here",
            onclick: function () { review.value = String(r.threshold); if (Number(block.value) < r.threshold) block.value = String(r.threshold); } });
        } },
    ], tradeoff, function (r) { return Math.abs(r.threshold - point.review_threshold) < 1e-9 ? "current" : ""; }));
    move.appendChild(note("Staff only; saving writes through PUT /api/v2/fraud/operating-point. The table is the serving model's, on its hold-out."));
    grid.appendChild(move);

    var confusion = summary.confusion_at_review;
    var matrix = card("Confusion matrix at the review threshold");
    matrix.appendChild(table([
      { label: "", get: function (r) { return r[0]; } },
      { label: "flagged (≥ " + fmt(confusion.threshold) + ")", num: true, get: function (r) { return fmt(r[1]); } },
      { label: "not flagged", num: true, get: function (r) { return fmt(r[2]); } },
    ], [["fraud", confusion.true_positives, confusion.false_negatives], ["legitimate", confusion.false_positives, confusion.true_negatives]]));
    matrix.appendChild(note("Precision " + pct(confusion.precision) + ", recall " + pct(confusion.recall) + ", false-positive rate " +
                            pct(confusion.false_positive_rate) + " over the last 30 days' scores with known outcomes."));
    grid.appendChild(matrix);

    var gain = summary.feature_importance.gain || {};
    var contribution = summary.feature_importance.mean_abs_contribution || {};
    var names = Object.keys(gain).sort(function (a, b) { return gain[b] - gain[a]; });
    var top = names.length ? gain[names[0]] : 1;
    var importance = card("Feature importance");
    importance.appendChild(table([
      { label: "feature", get: function (n) { return n; } },
      { label: "gain", num: true, get: function (n) { return fmt(gain[n]); } },
      { label: "", get: function (n) { return el("div", { style: "background:#2563eb;height:8px;width:" + Math.round(120 * gain[n] / top) + "px" }); } },
      { label: "mean |contribution|", num: true, get: function (n) { return fmt(contribution[n], 4); } },
    ], names));
    grid.appendChild(importance);

    var high = card("Recent high scores and their reasons", true);
    high.appendChild(table([
      { label: "predicted", get: function (r) { return when(r.predicted_at); } },
      { label: "event", get: function (r) { return r.client_event_id; } },
      { label: "user", get: function (r) { return r.user_id; } },
      { label: "site", get: function (r) { return r.site_id; } },
      { label: "score", num: true, get: function (r) { return fmt(r.fraud_score); } },
      { label: "outcome", get: function (r) { return r.outcome === null ? "pending" : r.outcome ? "fraud" : "legitimate"; } },
      { label: "reasons (log-odds)", get: function (r) { return r.reasons.map(function (x) { return x.feature + " +" + fmt(x.contribution, 2); }).join(", ") || "–"; } },
    ], activity.high_scores));
    grid.appendChild(high);
    return grid;
  }

  // -- monitoring ---------------------------------------------------------------------------------
  function monitoringPage(parts) {
    var board = parts[0], incidents = parts[1].incidents, drift = parts[2].reports;
    var grid = el("div", { "class": "grid" });
    var health = card("Infrastructure health", true);
    var open = board.health.open_incidents_by_source;
    health.appendChild(figures(Object.keys(open).length ? Object.keys(open).map(function (s) { return ["open incidents: " + s, String(open[s])]; })
                                                        : [["open incidents", "0"]]));
    health.appendChild(table([
      { label: "source", get: function (s) { return s.source; } },
      { label: "metric", get: function (s) { return s.metric; } },
      { label: "latest value", num: true, get: function (s) { return fmt(s.value, 2); } },
      { label: "at", get: function (s) { return when(s.last_point_at); } },
      { label: "reported, last " + board.health.reported_window_hours + " h", num: true,
        get: function (s) { return s.reported_share === null ? "–" : fmt(100 * s.reported_share, 2) + " %"; } },
      { label: "state", get: function (s) { return s.stale ? badge("open") : "reporting"; } },
    ], board.health.series));
    grid.appendChild(health);

    var timeline = card("Anomaly timeline", true);
    var choices = board.health.series.map(function (s) { return s.source + " " + s.metric; });
    var picker = el("select", { id: "series-picker" });
    choices.forEach(function (c) { picker.appendChild(el("option", { value: c, text: c })); });
    var first = board.anomalies.length ? board.anomalies[0].source + " " + board.anomalies[0].metric : choices[0];
    if (first) picker.value = first;
    var holder = el("div", {});
    timeline.appendChild(el("form", { "class": "inline" }, el("label", { "for": "series-picker", text: "series" }), picker));
    timeline.appendChild(holder);
    grid.appendChild(timeline);
    function drawSeries() {
      if (!picker.value) return Promise.resolve();
      var parts = picker.value.split(" ");
      var width = Math.max(300, Math.min(2000, holder.clientWidth || 1000));
      return api("/api/v2/monitoring/series?source=" + encodeURIComponent(parts[0]) + "&metric=" + encodeURIComponent(parts[1]) +
                 "&days=" + board.window.days + "&points=" + width).then(function (s) {
        holder.textContent = "";
        var marks = {};
        board.anomalies.forEach(function (a) {
          if (a.source === parts[0] && a.metric === parts[1]) marks[Math.floor(isoTime(a.first_at) / s.bucket_seconds) * s.bucket_seconds] = a.value;
        });
        chart(holder, { title: s.source + " " + s.metric + ", " + board.window.days + " days (" + fmt(s.raw_points) + " points, " +
                                (s.bucket_seconds / 60) + "-minute buckets: min, mean, max)",
          xLabel: "time (UTC)", yLabel: s.metric, x: s.t, band: [3, 1], height: 300,
          series: [{ label: "min", values: s.min, color: "#93c5fd", digits: 2 },
                   { label: "mean", values: s.mean, color: "#2563eb", digits: 2 },
                   { label: "max", values: s.max, color: "#93c5fd", digits: 2 },
                   { label: "anomaly", kind: "points", color: "#dc2626", digits: 2,
                     values: s.t.map(function (t) { return marks[t] === undefined ? null : marks[t]; }) }] });
      });
    }
    picker.addEventListener("change", function () { drawSeries().catch(fail); });

    var around = card("Anomalies, with the metric two hours either side", true);
    var small = el("div", { "class": "small-charts" });
    around.appendChild(small);
    grid.appendChild(around);
    if (!board.anomalies.length) around.appendChild(note("No anomalies in the window."));

    var incidentCard = card("Incidents", true);
    function incidentRows(rows) {
      return table([
        { label: "opened", get: function (i) { return when(i.opened_at); } },
        { label: "source", get: function (i) { return i.source; } },
        { label: "status", get: function (i) { return badge(i.status); } },
        { label: "alerts", num: true, get: function (i) { return fmt(i.alerts.length); } },
        { label: "max score", num: true, get: function (i) { return fmt(i.max_score, 2); } },
        { label: "metrics", get: function (i) { return Array.from(new Set(i.alerts.map(function (a) { return a.metric; }))).join(", "); } },
        { label: "acknowledged by", get: function (i) { return i.acknowledged_by || ""; } },
        { label: "", get: function (i) {
            var cell = el("span", {});
            if (i.status === "open") {
              cell.appendChild(el("button", { type: "button", "class": "acknowledge", "data-incident": i.incident_id, text: "Acknowledge",
                onclick: function (event) {
                  event.target.disabled = true;
                  api("/api/v2/monitoring/incidents/" + i.incident_id + "/acknowledge", "POST", {})
                    .then(function () { return refreshIncidents(); }).catch(fail);
                } }));
            }
            cell.appendChild(el("button", { type: "button", "class": "silence", "data-source": i.source, text: "Silence 1 h",
              onclick: function (event) {
                event.target.disabled = true;
                api("/api/v2/monitoring/silences", "POST", { source: i.source, minutes: 60, reason: "from the monitoring dashboard" })
                  .then(function () { event.target.textContent = "silenced 1 h"; }).catch(fail);
              } }));
            return cell;
          } },
      ], rows);
    }
    var incidentTable = el("div", { id: "incidents" }, incidentRows(incidents));
    incidentCard.appendChild(incidentTable);
    function refreshIncidents() {
      return api("/api/v2/monitoring/incidents?limit=50").then(function (fresh) {
        incidentTable.textContent = "";
        incidentTable.appendChild(incidentRows(fresh.incidents));
      });
    }
    grid.appendChild(incidentCard);

    var together = card("Alerts that fired together");
    together.appendChild(table([
      { label: "series", get: function (p) { return p.first; } },
      { label: "and", get: function (p) { return p.second; } },
      { label: "times together", num: true, get: function (p) { return fmt(p.together); } },
      { label: "share of the rarer's alerts", num: true, get: function (p) { return pct(p.share); } },
    ], board.fired_together));
    together.appendChild(note("Two alerts fired together when their first points lie within " + board.fired_together_within_minutes + " minutes."));
    grid.appendChild(together);

    var driftCard = card("Drift per model and feature");
    var psi = drift.filter(function (r) { return r.psi !== null; });
    chart(driftCard, { title: "Population stability index per feature (> 0.2: drifted)", xLabel: "feature (number, see table)",
      yLabel: "PSI", time: false, zero: true, x: psi.map(function (r, i) { return i + 1; }),
      series: [{ label: "PSI", values: psi.map(function (r) { return r.psi; }), kind: "bars", digits: 3 }] });
    driftCard.appendChild(table([
      { label: "#", num: true, get: function (r) { return psi.indexOf(r) >= 0 ? String(psi.indexOf(r) + 1) : ""; } },
      { label: "kind", get: function (r) { return r.kind; } },
      { label: "tenant", get: function (r) { return r.tenant_id ? r.tenant_id.slice(0, 8) : "global"; } },
      { label: "feature", get: function (r) { return r.feature; } },
      { label: "test", get: function (r) { return r.test; } },
      { label: "statistic", num: true, get: function (r) { return fmt(r.statistic); } },
      { label: "PSI", num: true, get: function (r) { return fmt(r.psi); } },
      { label: "drifted", get: function (r) { return r.drifted ? badge("open") : "no"; } },
    ], drift));
    grid.appendChild(driftCard);

    // Drawn after the grid is in the page (the charts size to their card).
    grid._after = function () {
      board.anomalies.slice(0, 6).forEach(function (a) {
        var at = isoTime(a.first_at);
        chart(small, { title: a.source + " " + a.metric + " at " + when(a.first_at) + " (score " + fmt(a.score, 2) + ")",
          xLabel: "time (UTC)", yLabel: a.metric, x: a.points.t, height: 200,
          series: [{ label: a.metric, values: a.points.value, digits: 2 },
                   { label: "anomaly", kind: "points", color: "#dc2626", digits: 2,
                     values: a.points.t.map(function (t) { return Math.abs(t - at) < 30 ? a.value : null; }) }] });
      });
      return drawSeries();
    };
    return grid;
  }

  // -- wiring -------------------------------------------------------------------------------------
  // One request after another: a cold local server (chalice local, threaded) has been seen to
  // answer one of several simultaneous first requests with the heuristic instead of the model.
  function inTurn(paths) {
    var answers = [];
    return paths.reduce(function (chain, path) {
      return chain.then(function () { return api(path).then(function (answer) { answers.push(answer); }); });
    }, Promise.resolve()).then(function () { return answers; });
  }
  var PAGES = {
    ocr: { load: function () { return api("/api/v2/ocr/dashboard"); }, draw: ocrPage },
    conflict: { load: function () { return api("/api/v2/conflict/dashboard"); }, draw: conflictPage },
    fraud: { load: function () { return inTurn(["/api/v2/fraud/dashboard", "/api/v2/fraud/activity", "/api/v2/fraud/operating-point"]); },
             draw: fraudPage },
    monitoring: { load: function () { return inTurn(["/api/v2/monitoring/dashboard", "/api/v2/monitoring/incidents?limit=50", "/api/v2/monitoring/drift"]); },
                  draw: monitoringPage },
  };
  function fail(error) {
    if (error instanceof AccessDenied) { toSignIn("denied"); return; }
    setStatus("Could not load the data: " + error.message, true);
  }
  function start() {
    if (page === "signin") { signIn(); return; }
    if (!apiKey()) { toSignIn(""); return; }
    var signOut = document.getElementById("sign-out");
    signOut.hidden = false;
    signOut.addEventListener("click", function () { toSignIn(""); });
    var started = performance.now();
    PAGES[page].load().then(function (data) {
      var grid = PAGES[page].draw(data);
      content.appendChild(grid);
      flushCharts();
      return Promise.resolve(grid._after ? grid._after() : null).then(function () {
        flushCharts();
        setStatus("Data as of " + new Date().toISOString().slice(0, 19).replace("T", " ") + " UTC; drawn in " +
                  Math.round(performance.now() - started) + " ms.");
        // Milliseconds from navigation to every chart drawn (scripts/bench_dashboards.py reads it).
        document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
        document.body.setAttribute("data-ready", "true");
      });
    }).catch(fail);
  }
  start();
})();
