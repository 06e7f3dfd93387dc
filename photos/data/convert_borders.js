#!/usr/bin/env node
// Converts Natural Earth country borders (npm world-atlas, countries-10m.json) into the
// small GeoJSON the incident map draws (photos/data/mekong-borders.geojson). Run ONCE,
// by hand, when the border data is to be updated; the result is committed, so neither
// the map nor the tests need Node or the network:
//
//   cd /tmp && npm install world-atlas@2.0.2 topojson-client@3
//   node /path/to/photos/data/convert_borders.js \
//       /tmp/node_modules/world-atlas/countries-10m.json > mekong-borders.geojson
//
// What it does: takes the six Mekong countries (KH, CN, LA, MM, TH, VN) and, drawn grey
// for context only, their neighbours in the frame (IN, BD, BT, MY); clips every ring to
// the region's box (Sutherland-Hodgman against a rectangle, so China keeps only the
// part near the region); leaves out islets under ~3 km; simplifies each ring (Douglas-Peucker,
// ~300 m); rounds to 3 decimals (~100 m). 1:10m, not 1:50m: at 1:50m the
// Cambodia-Viet Nam border near Bavet is several km off, enough to put a crossing's
// incident in the wrong country on the close-up panel.
"use strict";
const fs = require("fs");
const path = require("path");
const topojson = require(require.resolve("topojson-client", { paths: [process.cwd(), "/tmp"] }));

const BOX = [91.5, 4.5, 111.0, 29.5]; // west, south, east, north (degrees)
const MEKONG = { "116": ["KH", "Cambodia"], "156": ["CN", "China"], "418": ["LA", "Laos"],
  "104": ["MM", "Myanmar"], "764": ["TH", "Thailand"], "704": ["VN", "Viet Nam"] };
const CONTEXT = { "356": ["IN", "India"], "050": ["BD", "Bangladesh"],
  "064": ["BT", "Bhutan"], "458": ["MY", "Malaysia"] };
const TOLERANCE = 0.003; // degrees (~300 m): Douglas-Peucker simplification
const ISLET = 0.03; // degrees (~3 km): islands smaller than this each way are left out

function clipRing(ring) {
  // Clip a closed ring to BOX, one edge of the box at a time.
  const edges = [
    (p) => p[0] >= BOX[0], (p) => p[0] <= BOX[2], (p) => p[1] >= BOX[1], (p) => p[1] <= BOX[3],
  ];
  const cut = [
    (a, b) => [BOX[0], a[1] + ((b[1] - a[1]) * (BOX[0] - a[0])) / (b[0] - a[0])],
    (a, b) => [BOX[2], a[1] + ((b[1] - a[1]) * (BOX[2] - a[0])) / (b[0] - a[0])],
    (a, b) => [a[0] + ((b[0] - a[0]) * (BOX[1] - a[1])) / (b[1] - a[1]), BOX[1]],
    (a, b) => [a[0] + ((b[0] - a[0]) * (BOX[3] - a[1])) / (b[1] - a[1]), BOX[3]],
  ];
  let out = ring.slice(0, -1);
  for (let e = 0; e < 4 && out.length; e++) {
    const input = out;
    out = [];
    for (let i = 0; i < input.length; i++) {
      const cur = input[i], prev = input[(i + input.length - 1) % input.length];
      if (edges[e](cur)) {
        if (!edges[e](prev)) out.push(cut[e](prev, cur));
        out.push(cur);
      } else if (edges[e](prev)) {
        out.push(cut[e](prev, cur));
      }
    }
  }
  return out;
}

function islet(ring) {
  const xs = ring.map((p) => p[0]), ys = ring.map((p) => p[1]);
  return Math.max(...xs) - Math.min(...xs) < ISLET && Math.max(...ys) - Math.min(...ys) < ISLET;
}

function simplify(points) {
  // Douglas-Peucker: keep the point farthest from the chord while it is over TOLERANCE.
  const keep = new Uint8Array(points.length);
  keep[0] = keep[points.length - 1] = 1;
  const stack = [[0, points.length - 1]];
  while (stack.length) {
    const [a, b] = stack.pop();
    const [ax, ay] = points[a], [bx, by] = points[b];
    const len = Math.hypot(bx - ax, by - ay);
    let far = -1, dist = TOLERANCE;
    for (let i = a + 1; i < b; i++) {
      const [px, py] = points[i];
      // A closed ring's chord has no length: measure from its end point instead.
      const d = len ? Math.abs((bx - ax) * (ay - py) - (ax - px) * (by - ay)) / len
        : Math.hypot(px - ax, py - ay);
      if (d > dist) { far = i; dist = d; }
    }
    if (far >= 0) { keep[far] = 1; stack.push([a, far], [far, b]); }
  }
  return points.filter((_, i) => keep[i]);
}

function thin(ring) {
  if (ring.length < 3) return null;
  const out = [];
  for (const p of simplify([...ring, ring[0]])) {
    const q = [Math.round(p[0] * 1000) / 1000, Math.round(p[1] * 1000) / 1000];
    const last = out[out.length - 1];
    if (!last || q[0] !== last[0] || q[1] !== last[1]) out.push(q);
  }
  if (out.length < 4) return null; // a closed ring needs three corners and the closing point
  return out;
}

function main(file) {
  const topo = JSON.parse(fs.readFileSync(file, "utf8"));
  const features = [];
  for (const geom of topo.objects.countries.geometries) {
    const known = MEKONG[geom.id] || CONTEXT[geom.id];
    if (!known) continue;
    const shape = topojson.feature(topo, geom).geometry;
    const polygons = shape.type === "Polygon" ? [shape.coordinates] : shape.coordinates;
    const kept = [];
    for (const polygon of polygons) {
      const rings = polygon.map((r) => thin(clipRing(r)));
      // An outer ring cut away (outside the box, or an islet) takes its holes with it.
      if (rings[0] && !islet(rings[0])) kept.push(rings.filter((r) => r));
    }
    if (!kept.length) continue;
    features.push({
      type: "Feature",
      properties: { iso2: known[0], name: known[1], context: !MEKONG[geom.id] },
      geometry: { type: "MultiPolygon", coordinates: kept },
    });
  }
  features.sort((a, b) => a.properties.iso2.localeCompare(b.properties.iso2));
  const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(file), "package.json"), "utf8"));
  const out = {
    type: "FeatureCollection",
    bbox: BOX,
    source: `Natural Earth 1:10m admin-0 countries (v4.1.0) via npm world-atlas ${pkg.version}`,
    note: "Borders are shown as in Natural Earth; they imply no endorsement by the programme.",
    features,
  };
  process.stdout.write(JSON.stringify(out) + "\n");
}

main(process.argv[2]);
