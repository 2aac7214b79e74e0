// vdb explain view. Reads the explanation embedded in #data (the JSON of
// `vdbctl explain --json`) and draws it; makes no network requests.
"use strict";
(function () {
  // Requests the page's policy blocked (there should be none).
  const violations = [];
  document.addEventListener("securitypolicyviolation", (e) => violations.push(e.blockedURI));
  const D = JSON.parse(document.getElementById("data").textContent);
  const SVG = "http://www.w3.org/2000/svg"; // a namespace name, not a URL to fetch
  const $ = (id) => document.getElementById(id);
  const fmt = (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toLocaleString("en", { maximumFractionDigits: d }));
  const el = (tag, attrs = {}, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const sv = (tag, attrs = {}, text) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };

  // ---- payloads: images or text ----------------------------------------
  function decodeBase64(s) {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  // A text payload with a "<W>x<H>" token followed by W·H pixels as hex
  // pairs is a greyscale picture; the other tokens are its caption.
  function pictureOf(text) {
    const parts = text.split(/\s+/);
    for (let i = 0; i + 1 < parts.length; i++) {
      const m = /^(\d{1,4})x(\d{1,4})$/.exec(parts[i]);
      if (!m) continue;
      const w = +m[1], h = +m[2], hex = parts[i + 1];
      if (w * h * 2 !== hex.length || !/^[0-9a-fA-F]*$/.test(hex)) continue;
      const px = new Uint8Array(w * h);
      for (let j = 0; j < w * h; j++) px[j] = parseInt(hex.substr(2 * j, 2), 16);
      const caption = parts.slice(0, i).concat(parts.slice(i + 2)).join(" ");
      return { w, h, px, caption };
    }
    return null;
  }
  function canvasOf(w, h, px) {
    const c = el("canvas", { width: w, height: h, class: "pixels" });
    const ctx = c.getContext("2d");
    const img = ctx.createImageData(w, h);
    let max = 1;
    for (const v of px) max = Math.max(max, v);
    for (let j = 0; j < w * h; j++) {
      const g = 255 - Math.round((255 * px[j]) / max);
      img.data.set([g, g, g, 255], 4 * j);
    }
    ctx.putImageData(img, 0, 0);
    return c;
  }
  // The visual of a payload: a picture when it is one, else its text.
  function payloadView(item) {
    const box = el("div", { class: "payload" });
    if (typeof item.payload === "string") {
      if (/^data:image\/(png|jpeg|gif|webp);base64,/.test(item.payload)) {
        box.append(el("img", { src: item.payload, alt: "id " + item.id }));
        return box;
      }
      const pic = pictureOf(item.payload);
      if (pic) {
        box.append(canvasOf(pic.w, pic.h, pic.px));
        if (pic.caption) box.append(el("span", { class: "caption" }, pic.caption));
        return box;
      }
      box.append(el("span", { class: "text" }, item.payload.length > 80 ? item.payload.slice(0, 79) + "…" : item.payload));
      return box;
    }
    if (typeof item.payload_base64 === "string") {
      const bytes = decodeBase64(item.payload_base64);
      if (D.image && bytes.length === D.image[0] * D.image[1]) {
        box.append(canvasOf(D.image[0], D.image[1], bytes));
      } else {
        box.append(el("span", { class: "text" }, "<" + bytes.length + " bytes>"));
      }
    }
    return box;
  }

  // ---- facts ------------------------------------------------------------
  const probedBy = new Map(D.probed.map((p, i) => [p.list, { ...p, order: i + 1 }]));
  const hitIds = new Set(D.hits.map((h) => h.id));
  const missed = D.exact ? D.exact.missed : [];
  const missedLists = new Map();
  for (const m of missed) {
    if (!missedLists.has(m.list)) missedLists.set(m.list, []);
    missedLists.get(m.list).push(m);
  }
  const total = D.coarse_distances + D.fine_distances;

  $("title").textContent = `vdb explain — collection "${D.collection}"`;
  $("facts").textContent =
    `generation ${D.generation} · ${fmt(D.rows, 0)} rows · nlist ${D.nlist} · nprobe ${D.nprobe}` +
    (D.nprobe_clamped ? " (clamped)" : "") + ` · k ${D.k}` +
    (D.filter ? ` · filter ${D.filter}: ${fmt(D.filter_rows, 0)} rows pass (estimated ${fmt(D.filter_estimate, 0)}); ` +
      `${fmt(D.filter_matched, 0)} scored (target ${fmt(D.filter_target, 0)}), ` +
      `${Math.max(0, D.probed.length - D.nprobe)} list(s) probed past nprobe` : "");
  $("work").textContent =
    `${fmt(D.coarse_distances, 0)} coarse + ${fmt(D.fine_distances, 0)} fine = ${fmt(total, 0)} distance computations ` +
    `instead of ${fmt(D.rows, 0)} for an exhaustive scan (${fmt((100 * total) / Math.max(1, D.rows), 1)} %).`;
  if (D.exact) {
    const found = D.exact.hits.length - missed.length;
    $("verdict").textContent = missed.length === 0
      ? `Exact search agrees: all ${D.exact.hits.length} true nearest neighbours were returned.`
      : `Exact search: ${found} of ${D.exact.hits.length} true nearest neighbours returned; ${missed.length} missed ` +
        `because their lists were not probed. nprobe ${D.exact.min_nprobe} would have returned the exact top-${D.exact.hits.length}.`;
    $("verdict").className = missed.length === 0 ? "good" : "bad";
  }

  // ---- the coarse map -----------------------------------------------------
  const W = 640, H = 480, M = 36;
  const map = $("map");
  const pts = D.lists.map((l) => [l.x, l.y]).concat([[D.query.x, D.query.y]]);
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of pts) {
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  const span = Math.max(x1 - x0, y1 - y0, 1e-9);
  const sx = (x) => M + ((x - x0) / span) * (W - 2 * M);
  const sy = (y) => H - M - ((y - y0) / span) * (H - 2 * M);
  const maxSize = Math.max(1, ...D.lists.map((l) => l.size));
  const rMax = Math.max(5, Math.min(42, 330 / Math.sqrt(D.lists.length)));
  const radius = (size) => 2 + (rMax - 2) * Math.sqrt(size / maxSize); // area ∝ size
  map.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const gLines = sv("g", { class: "probe-lines" });
  const gClusters = sv("g");
  const gLabels = sv("g", { class: "labels" });
  map.append(gLines, gClusters, gLabels);
  // Unprobed first so the probed ones are drawn on top.
  const order = D.lists.slice().sort((a, b) => (probedBy.has(a.list) ? 1 : 0) - (probedBy.has(b.list) ? 1 : 0));
  for (const l of order) {
    const p = probedBy.get(l.list);
    // A probed list none of whose visible rows passed the filter.
    const none = p && D.filter && p.filtered_out > 0 && p.filtered_out + p.deleted_skipped >= p.size;
    const cls = ["cluster", p ? "probed" : "", none ? "filtered-out" : "",
      missedLists.has(l.list) ? "holds-missed" : ""].join(" ").trim();
    const c = sv("circle", { cx: sx(l.x), cy: sy(l.y), r: radius(l.size), class: cls, "data-list": l.list, tabindex: 0 });
    c.append(sv("title", {}, `list ${l.list}: coarse rank ${l.rank}, ${l.size} rows, centroid distance ${fmt(l.centroid_distance)}`));
    c.addEventListener("click", () => select(l.list));
    c.addEventListener("keydown", (e) => { if (e.key === "Enter") select(l.list); });
    gClusters.append(c);
    if (p) {
      gLines.append(sv("line", { x1: sx(D.query.x), y1: sy(D.query.y), x2: sx(l.x), y2: sy(l.y) }));
      gLabels.append(sv("text", { x: sx(l.x), y: sy(l.y) + 4 }, String(p.order)));
    }
  }
  const qx = sx(D.query.x), qy = sy(D.query.y);
  map.append(sv("path", { d: `M${qx - 7},${qy} L${qx + 7},${qy} M${qx},${qy - 7} L${qx},${qy + 7}`, class: "query" }));
  map.append(sv("text", { x: qx + 9, y: qy - 9, class: "query-label" }, "query"));

  // ---- the selected cluster ---------------------------------------------
  function select(list) {
    for (const c of document.querySelectorAll("#map .cluster")) c.classList.toggle("selected", +c.dataset.list === list);
    const l = D.lists.find((x) => x.list === list);
    const p = probedBy.get(list);
    const panel = $("members");
    panel.replaceChildren();
    $("panel-title").textContent = `List ${list}`;
    const facts = el("p");
    facts.textContent = `coarse rank ${l.rank} · centroid distance ${fmt(l.centroid_distance)} · ${fmt(l.size, 0)} rows · ` +
      (p ? `probed ${p.order}${["st", "nd", "rd"][p.order - 1] || "th"}: ${fmt(p.scanned, 0)} scanned, ${fmt(p.deleted_skipped, 0)} skipped as deleted, ` +
        (D.filter ? `${fmt(p.filtered_out, 0)} filtered out` +
          (p.ruled_out ? " (the list's summaries rule out every row: not tested), " : ", ") : "") +
        `best distance ${fmt(p.best_distance)}, ${p.results} of the results`
         : `not probed (only the ${D.nprobe} nearest lists are)`);
    panel.append(facts);
    const miss = missedLists.get(list);
    if (miss) {
      panel.append(el("p", { class: "bad" }, `Holds ${miss.length} missed neighbour(s): ids ${miss.map((m) => m.id).join(", ")}.`));
    }
    const skipped = D.exact && (D.exact.missed_lists || []).find((m) => m.list === list);
    const samples = p ? p.samples : skipped ? skipped.samples : null;
    if (!samples) {
      panel.append(el("p", { class: "note" }, "Members are sampled for the probed lists and, with --exact, for the lists holding missed neighbours."));
      return;
    }
    panel.append(el("p", { class: "note" }, `The ${samples.length} rows nearest its centroid` + (p ? ":" : " (the search skipped them):")));
    const grid = el("div", { class: "grid" });
    for (const s of samples) {
      const isMissed = missed.some((x) => x.id === s.id);
      const m = el("div", { class: "member" + (hitIds.has(s.id) ? " is-hit" : "") + (isMissed ? " is-missed" : "") });
      m.append(payloadView(s), el("div", { class: "meta" }, `id ${s.id} · ${fmt(s.distance, 1)}`));
      grid.append(m);
    }
    panel.append(grid);
  }

  // ---- the fine stage ---------------------------------------------------
  function drawFine() {
    const svg = $("fine");
    const rows = D.probed.map((p) => ({ list: p.list, rank: p.rank, p }))
      .concat([...missedLists.keys()].filter((l) => !probedBy.has(l))
        .map((l) => ({ list: l, rank: D.lists.find((x) => x.list === l).rank, p: null }))
        .sort((a, b) => a.rank - b.rank));
    const vals = [];
    for (const r of rows) if (r.p && r.p.deciles.length) vals.push(r.p.deciles[0], r.p.deciles[10]);
    for (const h of D.hits) vals.push(h.distance);
    for (const m of missed) vals.push(m.distance);
    const lo = Math.min(...vals, 0), hi = Math.max(...vals, 1e-9);
    const FW = 900, L = 150, R = 110, RH = 26, top = 28;
    const FH = top + rows.length * RH + 30;
    svg.setAttribute("viewBox", `0 0 ${FW} ${FH}`);
    const x = (d) => L + ((d - lo) / (hi - lo || 1)) * (FW - L - R);
    // Axis.
    for (let i = 0; i <= 5; i++) {
      const v = lo + ((hi - lo) * i) / 5;
      svg.append(sv("line", { x1: x(v), x2: x(v), y1: top - 6, y2: FH - 24, class: "grid" }));
      svg.append(sv("text", { x: x(v), y: FH - 8, class: "tick" }, fmt(v, 1)));
    }
    svg.append(sv("text", { x: L, y: 14, class: "axis" }, "distance to the query →"));
    if (D.hits.length) {
      const kth = D.hits[D.hits.length - 1].distance;
      svg.append(sv("line", { x1: x(kth), x2: x(kth), y1: top - 10, y2: FH - 24, class: "kth" }));
      svg.append(sv("text", { x: x(kth) + 4, y: top - 12, class: "kth-label" }, `k-th result ${fmt(kth, 1)}`));
    }
    rows.forEach((r, i) => {
      const y = top + i * RH + RH / 2;
      const g = sv("g", { class: "fine-row" + (r.p ? "" : " unprobed") });
      g.append(sv("text", { x: L - 8, y: y + 4, class: "row-label" }, `list ${r.list} (rank ${r.rank})`));
      if (r.p && r.p.deciles.length) {
        const q = r.p.deciles;
        g.append(sv("line", { x1: x(q[0]), x2: x(q[10]), y1: y, y2: y, class: "whisker" }));
        g.append(sv("rect", { x: x(q[1]), y: y - 7, width: Math.max(1, x(q[9]) - x(q[1])), height: 14, class: "box" }));
        g.append(sv("line", { x1: x(q[5]), x2: x(q[5]), y1: y - 7, y2: y + 7, class: "median" }));
        g.append(sv("text", { x: FW - R + 8, y: y + 4, class: "row-note" }, `${fmt(r.p.scanned, 0)} scanned`));
      } else {
        g.append(sv("text", { x: FW - R + 8, y: y + 4, class: "row-note" }, "not probed"));
      }
      for (const h of D.hits.filter((h) => h.list === r.list)) {
        const c = sv("circle", { cx: x(h.distance), cy: y, r: 4, class: "hit" });
        c.append(sv("title", {}, `result id ${h.id}, distance ${fmt(h.distance)}`));
        g.append(c);
      }
      for (const m of missed.filter((m) => m.list === r.list)) {
        const c = sv("circle", { cx: x(m.distance), cy: y, r: 4.5, class: "missed" });
        c.append(sv("title", {}, `missed id ${m.id}, distance ${fmt(m.distance)}`));
        g.append(c);
      }
      svg.append(g);
    });
  }

  // ---- tables -------------------------------------------------------------
  function table(id, items, status) {
    const body = $(id);
    items.forEach((h, i) => {
      const tr = el("tr", status && status(h) === "missed" ? { class: "missed-row" } : {});
      const pic = el("td");
      pic.append(payloadView(h));
      tr.append(el("td", {}, String(i + 1)), pic, el("td", {}, String(h.id)), el("td", {}, fmt(h.distance)),
        el("td", {}, `${h.list} (rank ${h.list_rank})`));
      if (status) tr.append(el("td", {}, status(h)));
      body.append(tr);
    });
  }

  drawFine();
  table("hits", D.hits);
  if (D.exact) {
    $("exact-section").hidden = false;
    table("exact-hits", D.exact.hits, (h) => (hitIds.has(h.id) ? "returned" : "missed"));
  }
  if (D.probed.length) select(D.probed[0].list);

  // ---- self-test (used by vdb's browser test: open with #selftest) --------
  if (location.hash === "#selftest") {
    const report = () => {
      const clusters = document.querySelectorAll("#map .cluster").length;
      const probed = document.querySelectorAll("#map .cluster.probed").length;
      const target = [...document.querySelectorAll("#map .cluster.probed")].pop();
      if (target) target.dispatchEvent(new MouseEvent("click", { bubbles: true }));
      const out = {
        clusters, probed,
        clicked: target ? +target.dataset.list : null,
        panel: $("panel-title").textContent,
        members: document.querySelectorAll("#members .member").length,
        pictures: document.querySelectorAll("#members canvas, #members img").length,
        hits: document.querySelectorAll("#hits tr").length,
        missed_rows: document.querySelectorAll("#exact-hits tr.missed-row").length,
        resources: performance.getEntriesByType("resource").length,
        violations,
      };
      const pre = $("selftest");
      pre.textContent = JSON.stringify(out);
      pre.hidden = false;
    };
    setTimeout(report, 50);
  }
})();
