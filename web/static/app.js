// blo-alert web: live updates (server-sent events), the location button, item rows.
// No inline script anywhere (the content security policy forbids it).
"use strict";
(function () {
  document.documentElement.classList.add("js");
  var live = document.getElementById("live");
  if (live && window.EventSource && live.dataset.areas) {
    var areas = live.dataset.areas.split(" ");
    var busy = false, again = false, timer = null;
    var refresh = function () {
      if (busy) { again = true; return; }
      busy = true;
      fetch(location.pathname + location.search, { headers: { "X-Partial": "live" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { live.innerHTML = html; } })
        .catch(function () {})
        .then(function () { busy = false; if (again) { again = false; refresh(); } });
    };
    var events = new EventSource("/events");
    events.addEventListener("change", function (e) {
      var moved = e.data.split(" ");
      if (moved.some(function (a) { return areas.indexOf(a) >= 0; })) {
        clearTimeout(timer);
        timer = setTimeout(refresh, 150);  // one fetch for a burst of receipts
      }
    });
    events.addEventListener("open", function () { document.body.classList.remove("offline"); });
    events.addEventListener("error", function () { document.body.classList.add("offline"); });
  }
  var geo = document.getElementById("geo");
  if (geo) {
    var say = document.getElementById("geo-status");
    geo.addEventListener("click", function () {
      if (!navigator.geolocation) { say.textContent = "no location on this device: type it"; return; }
      say.textContent = "finding…";
      navigator.geolocation.getCurrentPosition(function (p) {
        document.getElementById("lat").value = p.coords.latitude.toFixed(5);
        document.getElementById("lon").value = p.coords.longitude.toFixed(5);
        document.getElementById("accuracy").value = Math.round(p.coords.accuracy);
        say.textContent = "±" + Math.round(p.coords.accuracy) + " m";
      }, function (err) { say.textContent = "no position (" + err.message + "): type it"; },
      { enableHighAccuracy: true, timeout: 20000 });
    });
  }
  var more = document.getElementById("more-items");
  if (more) {
    var extra = Array.prototype.slice.call(document.querySelectorAll(".item.extra"));
    extra.forEach(function (row) {
      var filled = Array.prototype.some.call(row.querySelectorAll("input"), function (i) { return i.value; });
      if (!filled) { row.classList.add("hidden"); }
    });
    more.addEventListener("click", function () {
      var next = document.querySelector(".item.extra.hidden");
      if (next) { next.classList.remove("hidden"); }
      if (!document.querySelector(".item.extra.hidden")) { more.disabled = true; }
    });
  }
})();
