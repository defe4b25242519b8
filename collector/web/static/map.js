// The supervisor's district map: households coloured by risk, outlined by live state, kept up to
// date by server-sent events from /map/events. Everything here is served by the collector.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("map-config").textContent);
  var words = JSON.parse(document.getElementById("map-words").textContent);
  var RISK = { red: "#d62828", orange: "#f77f00", blue: "#1d4ed8" };
  var SOS_FILL = "#c2188b";
  var homes = {};   // id -> household
  var markers = {}; // id -> Leaflet circle marker

  var map = L.map("map", { zoomControl: true, attributionControl: !!config.tiles });
  // SVG markers are DOM elements (tests and screen readers can find them); past a few thousand
  // a canvas draws far faster.
  var renderer = L.svg();
  map.setView([37.57, 126.94], 14);
  if (config.tiles) {
    var failed = 0, loaded = 0;
    var layer = L.tileLayer(config.tiles, { maxZoom: 19, attribution: config.attribution || "" });
    layer.on("tileerror", function () { failed += 1; if (!loaded) showNoTiles(); });
    layer.on("tileload", function () { loaded += 1; hideNoTiles(); });
    layer.addTo(map);
  } else {
    showNoTiles();
  }
  function mark(name) { if (window.performance && performance.mark) { performance.mark(name); } }
  function showNoTiles() { document.getElementById("no-tiles").hidden = false; }
  function hideNoTiles() { document.getElementById("no-tiles").hidden = true; }

  function style(h) {
    var s = { radius: 7, weight: 1, color: "#ffffff", fillColor: RISK[h.risk] || "#555", fillOpacity: 0.9 };
    if (h.state === "sos") { s.radius = 12; s.weight = 3; s.color = "#000000"; s.fillColor = SOS_FILL; }
    else if (h.state === "silent") { s.radius = 9; s.weight = 3; s.color = "#e0a800"; }
    else if (h.state === "offline") { s.weight = 2; s.color = "#6b7280"; s.dashArray = "3"; }
    else { s.dashArray = null; }
    return s;
  }

  var filters = readFilters();
  function readFilters() { return { risk: checked("risk"), state: checked("state") }; }
  function visible(h) {
    return filters.risk.indexOf(h.risk) >= 0 && filters.state.indexOf(h.state) >= 0;
  }
  function checked(name) {
    return Array.prototype.map.call(
      document.querySelectorAll("#filters input[name=" + name + "]:checked"),
      function (i) { return i.value; });
  }

  function label(h) { return h.name + " · " + words[h.risk] + " · " + words[h.state]; }

  function upsert(h) {
    homes[h.id] = h;
    if (h.lat !== null && h.lon !== null) {
      var m = markers[h.id];
      if (!m) {
        var options = style(h);
        options.renderer = renderer;
        m = L.circleMarker([h.lat, h.lon], options).addTo(map);
        m.on("click", function () { window.location = "/care/households/" + encodeURIComponent(h.id); });
        markers[h.id] = m;
      } else {
        m.setStyle(style(h));
        m.setRadius(style(h).radius);
      }
      if (m.getTooltip()) { m.setTooltipContent(label(h)); } else { m.bindTooltip(label(h)); }
      var el = m.getElement();
      if (el) {
        el.setAttribute("data-household", h.id);
        el.setAttribute("data-state", h.state);
        el.setAttribute("data-risk", h.risk);
      }
      if (visible(h)) { if (!map.hasLayer(m)) { m.addTo(map); tag(h); } } else { m.remove(); }
      if (h.state === "sos") { m.bringToFront(); }
    }
    row(h);
  }
  function tag(h) {
    var el = markers[h.id].getElement();
    if (el) { el.setAttribute("data-household", h.id); el.setAttribute("data-state", h.state); el.setAttribute("data-risk", h.risk); }
  }

  // The list behind the map: the most urgent first (SOS, silent, offline, ok), at most
  // `listLimit` rows, rebuilt at most once per frame however many updates arrive.
  var SEVERITY = { sos: 0, silent: 1, offline: 2, ok: 3 };
  var listLimit = 300, listQueued = false;
  function row(h) {
    if (!listQueued) { listQueued = true; window.requestAnimationFrame(renderList); }
  }
  function renderList() {
    listQueued = false;
    var shown = Object.keys(homes).map(function (id) { return homes[id]; }).filter(visible);
    shown.sort(function (a, b) {
      return (SEVERITY[a.state] - SEVERITY[b.state]) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    });
    var body = document.createElement("tbody");
    shown.slice(0, listLimit).forEach(function (h) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-household", h.id);
      tr.setAttribute("data-state", h.state);
      var name = document.createElement("td"), a = document.createElement("a");
      a.href = "/care/households/" + encodeURIComponent(h.id);
      a.textContent = h.name;
      name.appendChild(a);
      var risk = document.createElement("td"), state = document.createElement("td");
      risk.textContent = words[h.risk]; risk.className = "risk-" + h.risk;
      state.textContent = words[h.state]; state.className = "live-" + h.state;
      tr.appendChild(name); tr.appendChild(risk); tr.appendChild(state);
      body.appendChild(tr);
    });
    var table = document.getElementById("homes");
    table.replaceChild(body, table.tBodies[0]);
    document.getElementById("count").textContent = shown.length;
    document.getElementById("more").hidden = shown.length <= listLimit;
  }
  function count() { row(null); }
  document.getElementById("more").addEventListener("click", function () {
    listLimit += 300; renderList();
  });

  document.getElementById("filters").addEventListener("change", function () {
    filters = readFilters();
    Object.keys(homes).forEach(function (id) { upsert(homes[id]); });
    count();
  });

  fetch("/map/data.json", { credentials: "same-origin" })
    .then(function (r) { return r.json(); })
    .then(function (data) {
      mark("anbu-map-data");  // bench/pages.py reads these marks
      var points = [];
      if (data.households.length > 1500) { renderer = L.canvas({ padding: 0.2 }); }
      data.households.forEach(function (h) { if (h.lat !== null) points.push([h.lat, h.lon]); });
      // The view first, without animation: markers added after it are projected and drawn
      // once, not again for a view change (at 10,000 markers that redraw took seconds).
      if (points.length) { map.fitBounds(points, { padding: [20, 20], animate: false }); }
      data.households.forEach(upsert);
      count();
      mark("anbu-markers-added");
      // The frame after the next: the canvas with the markers has been drawn.
      window.requestAnimationFrame(function () {
        window.requestAnimationFrame(function () { mark("anbu-markers-drawn"); });
      });
      document.body.setAttribute("data-map-ready", "true");
      listen();
    });

  function listen() {
    var source = new EventSource("/map/events");
    var live = document.getElementById("live");
    source.addEventListener("open", function () { live.setAttribute("data-connected", "true"); });
    source.addEventListener("error", function () { live.setAttribute("data-connected", "false"); });
    source.addEventListener("households", function (e) {
      live.setAttribute("data-connected", "true");
      JSON.parse(e.data).forEach(upsert);
      count();
    });
  }
})();
