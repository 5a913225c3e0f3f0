// Sextant's operator page: the service graph, its golden signals, traces and what changed.
// Plain JavaScript drawing SVG; every number comes from the query API on the same origin.
"use strict";

(() => {
  // ---------------------------------------------------------------------------------------------
  // Small helpers

  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  /** An HTML element: el("p", {class: "x"}, "text", child, ...). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  /** An SVG element, same calling convention as el(). */
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  // (A large graph calls these some 20,000 times: plain loops, no intermediate arrays.)
  function setAttrs(node, attrs) {
    if (!attrs) return;
    for (const key in attrs) {
      const value = attrs[key];
      if (value === undefined || value === null || value === false) continue;
      if (typeof value === "function" && key.startsWith("on")) {
        node.addEventListener(key.slice(2), value);
      } else {
        node.setAttribute(key, value === true ? "" : String(value));
      }
    }
  }

  function append(node, children) {
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      if (Array.isArray(child)) append(node, child);
      else node.append(child instanceof Node ? child : String(child));
    }
  }

  function clear(node) {
    node.replaceChildren();
  }

  // ---------------------------------------------------------------------------------------------
  // Number formats (the e2e test mirrors these: Tests/e2e/test_page.py)

  /** Requests (or connections) per second: 3 decimals below 1, 2 below 10, 1 below 100, then none. */
  function fmtRate(v) {
    if (!Number.isFinite(v)) return "—";
    if (v >= 100) return v.toFixed(0);
    if (v >= 10) return v.toFixed(1);
    if (v >= 1) return v.toFixed(2);
    return v.toFixed(3);
  }

  /** A ratio (0.138) as a percentage with one decimal ("13.8%"). */
  function fmtPct(ratio) {
    if (!Number.isFinite(ratio)) return "—";
    return (ratio * 100).toFixed(1) + "%";
  }

  /** Milliseconds: 2 decimals below 10, 1 below 100, then none. */
  function fmtMs(v) {
    if (!Number.isFinite(v)) return "—";
    if (v >= 100) return v.toFixed(0);
    if (v >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }

  /** A duration in microseconds, in the unit that suits it. */
  function fmtMicros(us) {
    if (!Number.isFinite(us)) return "—";
    if (us < 1000) return `${Math.round(us)} µs`;
    if (us < 1e6) return `${fmtMs(us / 1000)} ms`;
    return `${(us / 1e6).toFixed(us < 1e7 ? 2 : 1)} s`;
  }

  function fmtCount(n) {
    return Number.isFinite(n) ? String(n) : "—";
  }

  function pad(n, width = 2) {
    return String(n).padStart(width, "0");
  }

  /** Local wall-clock time of unix seconds, with the date when it is not today. */
  function fmtTime(unixSeconds, withMillis = false) {
    const d = new Date(unixSeconds * 1000);
    const now = new Date();
    let text = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    if (withMillis) text += "." + pad(d.getMilliseconds(), 3);
    if (d.toDateString() !== now.toDateString()) {
      text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${text}`;
    }
    return text;
  }

  /** Seconds of a Prometheus duration such as 5m, 1h30m, 250ms (NaN when it does not parse). */
  function parseDuration(text) {
    const units = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
    const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/gy;
    let total = 0;
    let matched = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      total += parseFloat(m[1]) * units[m[2]];
      matched = re.lastIndex;
    }
    return text && matched === text.length ? total : NaN;
  }

  // ---------------------------------------------------------------------------------------------
  // The query API, with the query token asked for once per tab

  const TOKEN_KEY = "sextant.queryToken";

  class ApiError extends Error {
    constructor(status, message, url) {
      super(message);
      this.status = status;
      this.url = url;
    }
  }

  let tokenRequest = null;

  /** Shows the token form; resolves once a token was entered. */
  function askForToken(refused) {
    if (tokenRequest) return tokenRequest;
    const dialog = $("token-dialog");
    const form = $("token-form");
    const input = $("token-input");
    $("token-error").hidden = !refused;
    input.value = "";
    tokenRequest = new Promise((resolve) => {
      const submit = (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        sessionStorage.setItem(TOKEN_KEY, token);
        form.removeEventListener("submit", submit);
        dialog.close();
        tokenRequest = null;
        resolve();
      };
      form.addEventListener("submit", submit);
    });
    if (!dialog.open) dialog.showModal();
    input.focus();
    return tokenRequest;
  }

  // The form cannot be dismissed: without the token nothing can be shown.
  function guardTokenDialog() {
    $("token-dialog").addEventListener("cancel", (event) => event.preventDefault());
  }

  /** GET an API path (relative, so the page works under any origin, TLS included) as JSON. */
  async function api(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
    }
    const qs = query.toString();
    const url = `api/v1/${path}${qs ? "?" + qs : ""}`;
    for (let attempt = 0; ; attempt++) {
      const token = sessionStorage.getItem(TOKEN_KEY);
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      let response;
      try {
        response = await fetch(url, { headers, cache: "no-store" });
      } catch (err) {
        throw new ApiError(0, `Sextant does not answer (${err.message})`, url);
      }
      if (response.status === 401 && attempt < 20) {
        if (token && sessionStorage.getItem(TOKEN_KEY) === token) sessionStorage.removeItem(TOKEN_KEY);
        await askForToken(Boolean(token));
        continue;
      }
      if (!response.ok) {
        let message = response.statusText;
        try {
          const body = await response.json();
          if (body && body.error && body.error.message) message = body.error.message;
        } catch (_) {
          // not JSON: keep the status text
        }
        throw new ApiError(response.status, message, url);
      }
      return response.json();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Status line and error banner

  function setStatus(text) {
    $("status").textContent = text;
  }

  function showError(err) {
    const banner = $("banner");
    banner.textContent = err ? `${err.message}${err.url ? ` (${err.url})` : ""}` : "";
    banner.hidden = !err;
  }

  // ---------------------------------------------------------------------------------------------
  // Routing: #/graph?…, #/diff?…, #/traces?…, #/trace/<id>

  const GRAPH_DEFAULTS = { type: "workload", window: "5m", ns: "", labels: "rps" };

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [pathPart, queryPart = ""] = raw.split("?");
    const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
    const params = Object.fromEntries(new URLSearchParams(queryPart));
    let view = parts[0] || "graph";
    if (!["graph", "diff", "traces", "trace"].includes(view)) view = "graph";
    return { view, id: parts[1] || "", params };
  }

  function hashFor(view, params, id) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value === undefined || value === null || value === "" || value === false) continue;
      if (view === "graph" || view === "diff") {
        if (GRAPH_DEFAULTS[key] === value) continue;
      }
      query.set(key, value === true ? "1" : String(value));
    }
    const text = [...query].length ? `?${query}` : "";
    return `#/${view}${id ? "/" + encodeURIComponent(id) : ""}${text}`;
  }

  /** Rewrites the hash of the current view without a new history entry. */
  function replaceHash(hash) {
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  let route = parseHash();
  let navigations = 0; // hash changes in this document: Back stays on the page when there were some

  function onRoute() {
    route = parseHash();
    for (const link of document.querySelectorAll("nav.views a")) {
      const active = link.dataset.view === route.view || (link.dataset.view === "traces" && route.view === "trace");
      if (active) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    $("view-graph").hidden = !(route.view === "graph" || route.view === "diff");
    $("view-traces").hidden = route.view !== "traces";
    $("view-trace").hidden = route.view !== "trace";
    document.body.classList.toggle("mode-diff", route.view === "diff");
    showError(null);
    if (route.view === "graph" || route.view === "diff") graphView.enter(route);
    else graphView.leave();
    if (route.view === "traces") traceSearch.enter(route.params);
    if (route.view === "trace") waterfall.enter(route.id);
    const titles = { graph: "Graph", diff: "What changed", traces: "Traces", trace: "Trace" };
    document.title = `${titles[route.view]} · Sextant`;
  }

  // ---------------------------------------------------------------------------------------------
  // Graph model: health, channels, node names

  const SPAN_CHANNELS = new Set(["spans", "zipkin", "otlp", "otlptraces"]);
  const LOG_CHANNELS = new Set(["accesslog", "als", "otlplogs"]);
  const CHANNEL_NAMES = {
    spans: "spans (Zipkin, OpenTelemetry traces)",
    zipkin: "Zipkin spans",
    otlp: "OpenTelemetry traces",
    accesslog: "Envoy access-log files",
    als: "Envoy gRPC access log service",
    otlplogs: "OpenTelemetry access logs",
  };

  /** "spans", "logs" or "both" (or "" when unknown) from an edge's sources. */
  function channelKind(sources) {
    const list = sources || [];
    if (!list.length) return "";
    if (list.every((s) => SPAN_CHANNELS.has(s))) return "spans";
    if (list.every((s) => LOG_CHANNELS.has(s))) return "logs";
    return "both";
  }

  /** Share of 4xx and 5xx answers; gRPC errors without such a code count as 5xx. */
  function errorShares(t) {
    let c4 = 0;
    let c5 = 0;
    for (const [code, n] of Object.entries(t.byCode || {})) {
      const c = Number(code);
      if (c >= 400 && c < 500) c4 += n;
      else if (c >= 500 && c < 600) c5 += n;
    }
    c5 = Math.max(c5, t.serverErrors || 0, (t.errors || 0) - c4);
    return { r4: t.requests ? c4 / t.requests : 0, r5: t.requests ? c5 / t.requests : 0 };
  }

  /** Health as in Kiali: degraded from 0.1 % 5xx or 10 % 4xx, failing above 10 % 5xx or 20 % 4xx. */
  function healthOf(t) {
    if (!t || !t.requests || t.protocol === "tcp") return "ok";
    const { r4, r5 } = errorShares(t);
    if (r5 > 0.1 || r4 > 0.2) return "failing";
    if (r5 >= 0.001 || r4 >= 0.1) return "degraded";
    return "ok";
  }

  /** Node fields from an id, for nodes known only from the diff (traffic that vanished). */
  function nodeFromId(id) {
    const parts = id.split(":");
    switch (parts[0]) {
      case "workload":
        return { id, type: "workload", namespace: parts[1], workload: parts.slice(2).join(":") };
      case "app":
        return { id, type: "app", namespace: parts[1], app: parts.slice(2).join(":") };
      case "versionedApp":
        return { id, type: "app", namespace: parts[1], app: parts[2], version: parts.slice(3).join(":") };
      case "service": {
        const host = parts.slice(1).join(":");
        const labels = host.split(".");
        return { id, type: "service", namespace: labels[1] || "", service: labels[0] };
      }
      default:
        return { id, type: "unknown", namespace: "unknown", workload: "unknown" };
    }
  }

  /** Name, second line and kind of a node. */
  function describeNode(n) {
    const kind = n.type === "unknown" || n.id === "unknown" ? "unknown" : n.type;
    if (kind === "unknown") return { name: "unknown", sub: "caller without sidecar", kind };
    if (kind === "service") {
      const host = n.id.startsWith("service:") ? n.id.slice(8) : n.service;
      return { name: n.service || host, sub: `${n.namespace || "?"} · service`, kind, host };
    }
    if (kind === "app") {
      const versioned = n.id.startsWith("versionedApp:");
      return { name: versioned ? `${n.app} ${n.version}` : n.app, sub: n.namespace, kind };
    }
    return { name: n.workload || n.id, sub: n.namespace, kind };
  }

  function edgeKey(e) {
    return `${e.source} ${e.target} ${e.protocol}`;
  }

  function edgeLabel(e, mode) {
    if (e.ghost && !e.requests) return "no traffic";
    if (mode === "errors") return e.protocol === "tcp" ? "TCP" : fmtPct(e.errorRate);
    if (mode === "latency") {
      const l = e.latencyMs;
      return l ? `${fmtMs(l.p50)} / ${fmtMs(l.p99)} ms` : "—";
    }
    return `${fmtRate(e.rps)} ${e.protocol === "tcp" ? "conn/s" : "rps"}`;
  }

  /** Nodes and edges to draw: the graph, plus in the diff view what vanished since the baseline. */
  function buildModel(graph, diff, graphType) {
    const nodes = new Map();
    for (const n of graph.nodes) nodes.set(n.id, { ...n, ghost: false });
    const edges = graph.edges.map((e) => ({ ...e, key: edgeKey(e), ghost: false }));
    const byKey = new Map(edges.map((e) => [e.key, e]));
    if (diff) {
      diff.edges.forEach((d, rank) => {
        const key = edgeKey(d);
        let e = byKey.get(key);
        if (!e) {
          for (const id of [d.source, d.target]) {
            if (!nodes.has(id)) nodes.set(id, { ...nodeFromId(id), ghost: true });
          }
          // Not in the graph: traffic that vanished, or calls the graph no longer counts on this edge
          // (the diff was read a moment earlier). Drawn dashed grey with the diff's figures.
          const now = d.current || {};
          e = {
            source: d.source, target: d.target, protocol: d.protocol, key, ghost: true,
            requests: now.requests || 0, errors: now.errors || 0, serverErrors: 0, byCode: {}, rps: now.rps || 0,
            errorRate: now.errorRate || 0, sources: [],
          };
          edges.push(e);
          byKey.set(key, e);
        }
        e.diff = d;
        e.rank = rank + 1;
      });
      diff.nodes.forEach((d, rank) => {
        const n = nodes.get(d.id);
        if (n) {
          n.diff = d;
          n.rank = rank + 1;
        }
      });
    }
    // A node's health is that of the requests it received (TCP aside).
    const inbound = new Map();
    for (const e of edges) {
      if (e.ghost || e.protocol === "tcp") continue;
      const t = inbound.get(e.target) || { requests: 0, errors: 0, serverErrors: 0, byCode: {} };
      t.requests += e.requests;
      t.errors += e.errors;
      t.serverErrors += e.serverErrors;
      for (const [code, n] of Object.entries(e.byCode || {})) t.byCode[code] = (t.byCode[code] || 0) + n;
      inbound.set(e.target, t);
    }
    for (const n of nodes.values()) {
      const t = inbound.get(n.id);
      n.health = n.ghost ? "none" : t ? healthOf(t) : "none";
      n.display = describeNode(n);
      // Service nodes in a workload or app graph are calls whose workload is not known.
      n.virtual = n.display.kind === "unknown" || (n.display.kind === "service" && graphType !== "service");
    }
    for (const e of edges) {
      e.health = e.ghost ? "ok" : healthOf(e);
      e.channels = channelKind(e.sources);
    }
    return { nodes, edges, byKey };
  }

  // ---------------------------------------------------------------------------------------------
  // Text measuring (canvas, so that laying out 500 nodes needs no DOM reflow)

  const measureCanvas = document.createElement("canvas").getContext("2d");
  let fontFamily = "sans-serif";
  let measureFont = "";
  const widths = new Map(); // "font|text" -> width: a large graph repeats its labels

  function textWidth(text, font) {
    const key = `${font}|${text}`;
    let width = widths.get(key);
    if (width === undefined) {
      if (measureFont !== font) {
        measureCanvas.font = `${font} ${fontFamily}`;
        measureFont = font;
      }
      width = measureCanvas.measureText(text).width;
      if (widths.size >= 20000) widths.clear();
      widths.set(key, width);
    }
    return width;
  }

  function truncate(text, font, max) {
    if (textWidth(text, font) <= max) return text;
    let lo = 0;
    let hi = text.length;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (textWidth(text.slice(0, mid) + "…", font) <= max) lo = mid;
      else hi = mid - 1;
    }
    return text.slice(0, lo) + "…";
  }

  const NAME_FONT = "600 13px";
  const SUB_FONT = "11px";
  const LABEL_FONT = "11px";
  const NODE_H = 42;
  const NODE_MAX_TEXT = 200;
  const LAYER_GAP = 136;
  const NODE_GAP = 26;
  const DUMMY_H = 14;
  const DUMMY_GAP = 8;
  const MARGIN = 40;
  const DUMMY_BUDGET = 6000;
  const LABEL_MIN_SCALE = 0.5; // edge labels (11 px) are hidden below this zoom
  const MIN_SCALE = 0.02; // Fit shows a graph of a hundred layers whole

  // ---------------------------------------------------------------------------------------------
  // Layered layout (left to right)
  //
  // 1. Cycles are broken where each strongly connected component is entered (breadth first): the
  //    other edges of a cycle are drawn backwards.
  // 2. Longest-path layering: callers left of callees; nodes without callers (the unknown caller,
  //    ingress) in the first layer; nodes that call nobody (databases, external services) in the last.
  // 3. Edges longer than one layer get a dummy node per layer they cross (within a budget: on very
  //    large graphs the longest edges are drawn straight instead).
  // 4. Barycenter sweeps order each layer (fewer crossings); the order of nodes seen in the previous
  //    layout is the starting point and is kept when the sweeps do not do better.
  // 5. Vertical positions: each node pulled towards its neighbours, order and gaps kept, so that no
  //    two boxes overlap.

  function layoutGraph(model, memory) {
    const ids = [...model.nodes.keys()].sort((a, b) => (a === "unknown" ? -1 : b === "unknown" ? 1 : a < b ? -1 : a > b ? 1 : 0));
    const out = new Map(ids.map((id) => [id, []]));
    const inc = new Map(ids.map((id) => [id, []]));
    const pairs = new Map(); // "a\0b" of the original direction -> edges
    for (const e of model.edges) {
      if (e.source === e.target) continue;
      const k = `${e.source} ${e.target}`;
      if (!pairs.has(k)) {
        pairs.set(k, []);
        out.get(e.source).push(e.target);
        inc.get(e.target).push(e.source);
      }
      pairs.get(k).push(e);
    }
    for (const list of out.values()) list.sort();

    // 1. Constraints: every edge between two strongly connected components, and inside a component
    //    (services calling each other in a cycle) the edges that lead away from where the component
    //    is entered (breadth-first ranks). The other edges of a cycle are drawn backwards (or
    //    within a column), and a cyclic mesh stays as shallow as its call depth.
    const comp = components(ids, out);
    const size = new Map();
    for (const c of comp.values()) size.set(c, (size.get(c) || 0) + 1);
    const depth = new Map();
    const members = new Map();
    for (const id of ids) {
      if (size.get(comp.get(id)) < 2) continue;
      if (!members.has(comp.get(id))) members.set(comp.get(id), []);
      members.get(comp.get(id)).push(id);
    }
    for (const list of members.values()) {
      const c = comp.get(list[0]);
      let frontier = list.filter((id) => inc.get(id).some((u) => comp.get(u) !== c));
      if (!frontier.length) frontier = [list[0]];
      for (const id of frontier) depth.set(id, 0);
      while (frontier.length) {
        const next = [];
        for (const u of frontier) {
          for (const v of out.get(u)) {
            if (comp.get(v) === c && !depth.has(v)) {
              depth.set(v, depth.get(u) + 1);
              next.push(v);
            }
          }
        }
        frontier = next;
      }
    }
    const constraintOut = new Map(ids.map((id) => [id, []]));
    const constraintIn = new Map(ids.map((id) => [id, 0]));
    for (const k of pairs.keys()) {
      const [a, b] = k.split(" ");
      if (comp.get(a) !== comp.get(b) || depth.get(a) < depth.get(b)) {
        constraintOut.get(a).push(b);
        constraintIn.set(b, constraintIn.get(b) + 1);
      }
    }

    // 2. Longest path from the sources (Kahn's order, ties by id); callees of nobody last.
    const layer = new Map(ids.map((id) => [id, 0]));
    const remaining = new Map(constraintIn);
    const queue = ids.filter((id) => remaining.get(id) === 0);
    for (let i = 0; i < queue.length; i++) {
      const u = queue[i];
      for (const v of constraintOut.get(u)) {
        layer.set(v, Math.max(layer.get(v), layer.get(u) + 1));
        remaining.set(v, remaining.get(v) - 1);
        if (remaining.get(v) === 0) queue.push(v);
      }
    }
    let maxLayer = 0;
    for (const l of layer.values()) maxLayer = Math.max(maxLayer, l);
    for (const id of ids) {
      if (out.get(id).length === 0 && inc.get(id).length > 0) layer.set(id, maxLayer);
    }
    // Pairs oriented from the lower layer to the higher; pairs within one layer apart.
    const dagPairs = new Map(); // "a b", layer(a) < layer(b) -> edges
    const flatPairs = new Map(); // "a b" of the original direction, same layer -> edges
    for (const [k, list] of pairs) {
      let [a, b] = k.split(" ");
      if (layer.get(a) === layer.get(b)) {
        flatPairs.set(k, list);
        continue;
      }
      if (layer.get(a) > layer.get(b)) [a, b] = [b, a];
      const dk = `${a} ${b}`;
      if (!dagPairs.has(dk)) dagPairs.set(dk, []);
      dagPairs.get(dk).push(...list);
    }

    // 3. Dummy nodes.
    const layers = Array.from({ length: maxLayer + 1 }, () => []);
    const items = new Map(); // id -> {id, layer, dummy, w, h, up: [], down: []}
    for (const id of ids) {
      const n = model.nodes.get(id);
      const item = { id, layer: layer.get(id), dummy: false, w: nodeWidth(n), h: NODE_H, up: [], down: [] };
      items.set(id, item);
      layers[item.layer].push(item);
    }
    const chains = new Map(); // dag pair -> [item ids]
    const span = (dk) => {
      const [a, b] = dk.split(" ");
      return layer.get(b) - layer.get(a) - 1;
    };
    const withDummies = new Set();
    let budget = DUMMY_BUDGET;
    for (const dk of [...dagPairs.keys()].sort((p, q) => span(p) - span(q) || (p < q ? -1 : 1))) {
      if (span(dk) > budget) break;
      budget -= span(dk);
      withDummies.add(dk);
    }
    for (const dk of [...dagPairs.keys()].sort()) {
      const [a, b] = dk.split(" ");
      const chain = [a];
      for (let l = layer.get(a) + 1; withDummies.has(dk) && l < layer.get(b); l++) {
        const id = `dummy ${dk} ${l}`;
        const item = { id, layer: l, dummy: true, w: 0, h: DUMMY_H, up: [], down: [] };
        items.set(id, item);
        layers[l].push(item);
        chain.push(id);
      }
      chain.push(b);
      for (let i = 0; i + 1 < chain.length; i++) {
        items.get(chain[i]).down.push(items.get(chain[i + 1]));
        items.get(chain[i + 1]).up.push(items.get(chain[i]));
      }
      chains.set(dk, chain);
    }

    // 4. Order within layers.
    const signature = layers.map((l) => l.map((it) => it.id).sort().join("\u0001")).join("\u0002") +
      "\u0003" + [...dagPairs.keys()].sort().join("\u0001");
    const remembered = memory && memory.order;
    let order;
    if (remembered && memory.signature === signature) {
      order = layers.map((l) => [...l].sort((p, q) => remembered.get(p.id) - remembered.get(q.id)));
    } else {
      order = initialOrder(layers, remembered);
      const start = order.map((l) => [...l]);
      const swept = sweep(order, items.size > 4000 ? 4 : 12);
      order = crossings(swept) < crossings(start) ? swept : start;
    }
    order.forEach((l) => l.forEach((it, i) => (it.index = i)));

    // 5. Coordinates.
    const layerX = [];
    const layerW = [];
    let x = MARGIN;
    for (const l of order) {
      const w = Math.max(0, ...l.map((it) => it.w));
      layerX.push(x);
      layerW.push(w);
      x += w + LAYER_GAP;
    }
    for (const l of order) {
      let y = 0;
      for (const it of l) {
        it.y = y + it.h / 2;
        y += it.h + (it.dummy ? DUMMY_GAP : NODE_GAP);
      }
    }
    const centre = (list) => list.reduce((s, it) => s + it.y, 0) / list.length;
    for (let pass = 0; pass < 8; pass++) {
      const down = pass % 2 === 0;
      const seq = down ? order : [...order].reverse();
      for (const l of seq) {
        const desired = l.map((it) => {
          const near = down ? it.up : it.down;
          return near.length ? centre(near) : it.y;
        });
        place(l, desired);
      }
    }
    let minY = Infinity;
    let maxY = -Infinity;
    for (const it of items.values()) {
      minY = Math.min(minY, it.y - it.h / 2);
      maxY = Math.max(maxY, it.y + it.h / 2);
    }
    const shift = MARGIN - (Number.isFinite(minY) ? minY : 0);
    const positions = new Map();
    for (const it of items.values()) {
      it.y += shift;
      const lx = layerX[it.layer];
      // Nodes are centred in their layer's column.
      it.x = it.dummy ? lx : lx + (layerW[it.layer] - it.w) / 2;
      if (!it.dummy) positions.set(it.id, { x: it.x, y: it.y - it.h / 2, w: it.w, h: it.h, layer: it.layer });
    }

    // Routes: points along each chain, drawn in the original direction.
    const routes = new Map();
    const chainPoints = new Map();
    for (const [dk, chain] of chains) {
      const pts = [];
      chain.forEach((id, i) => {
        const it = items.get(id);
        if (it.dummy) {
          pts.push([layerX[it.layer], it.y], [layerX[it.layer] + layerW[it.layer], it.y]);
        } else if (i === 0) {
          pts.push([it.x + it.w, it.y]);
        } else {
          pts.push([it.x, it.y]);
        }
      });
      chainPoints.set(dk, pts);
    }
    // Ports: the edges leaving (entering) a node are spread over its right (left) side, in the
    // order of where they go (come from), so that arrows do not pile up on one point.
    const starts = new Map();
    const ends = new Map();
    for (const [dk, pts] of chainPoints) {
      const [a, b] = dk.split(" ");
      if (!starts.has(a)) starts.set(a, []);
      if (!ends.has(b)) ends.set(b, []);
      starts.get(a).push(pts);
      ends.get(b).push(pts);
    }
    const spread = (list, pick, neighbour) => {
      if (list.length < 2) return;
      list.sort((p, q) => neighbour(p)[1] - neighbour(q)[1] || neighbour(p)[0] - neighbour(q)[0]);
      const step = Math.min(8, (NODE_H - 14) / (list.length - 1));
      list.forEach((pts, i) => (pick(pts)[1] += (i - (list.length - 1) / 2) * step));
    };
    for (const list of starts.values()) spread(list, (pts) => pts[0], (pts) => pts[1]);
    for (const list of ends.values()) spread(list, (pts) => pts[pts.length - 1], (pts) => pts[pts.length - 2]);
    for (const [dk, pts] of chainPoints) {
      for (const e of dagPairs.get(dk)) {
        const forward = dk.split(" ")[0] === e.source;
        routes.set(e.key, forward ? pts : [...pts].reverse());
      }
    }
    // Calls between two nodes of one layer: a bracket on the right of the column.
    for (const [k, list] of flatPairs) {
      const [a, b] = k.split(" ");
      const pa = positions.get(a);
      const pb = positions.get(b);
      for (const e of list) {
        routes.set(e.key, [[pa.x + pa.w, pa.y + pa.h / 2], [pb.x + pb.w, pb.y + pb.h / 2]]);
        e.flat = true;
      }
    }
    // Calls of a node to itself: a loop above its box.
    for (const e of model.edges) {
      if (e.source !== e.target) continue;
      const p = positions.get(e.source);
      routes.set(e.key, [[p.x + p.w * 0.65, p.y], [p.x + p.w * 0.35, p.y]]);
      e.selfLoop = true;
    }

    const newOrder = new Map();
    for (const l of order) for (const it of l) newOrder.set(it.id, it.y);
    return {
      positions, routes,
      width: x - LAYER_GAP + MARGIN,
      height: (Number.isFinite(maxY) ? maxY - minY : 0) + 2 * MARGIN,
      memory: { signature, order: newOrder },
    };
  }

  function nodeWidth(n) {
    const d = n.display;
    const nameW = Math.min(NODE_MAX_TEXT, textWidth(d.name, NAME_FONT));
    const subW = Math.min(NODE_MAX_TEXT, textWidth(d.sub, SUB_FONT));
    return Math.ceil(Math.max(110, Math.max(nameW, subW) + 30));
  }

  /** Strongly connected components (Tarjan, without recursion): id -> component number. */
  function components(ids, out) {
    const index = new Map();
    const low = new Map();
    const onStack = new Set();
    const stack = [];
    const comp = new Map();
    let counter = 0;
    let count = 0;
    for (const root of ids) {
      if (index.has(root)) continue;
      const visit = (v) => {
        index.set(v, counter);
        low.set(v, counter);
        counter++;
        stack.push(v);
        onStack.add(v);
      };
      visit(root);
      const work = [[root, 0]];
      while (work.length) {
        const frame = work[work.length - 1];
        const v = frame[0];
        const next = out.get(v)[frame[1]++];
        if (next !== undefined) {
          if (!index.has(next)) {
            visit(next);
            work.push([next, 0]);
          } else if (onStack.has(next)) {
            low.set(v, Math.min(low.get(v), index.get(next)));
          }
          continue;
        }
        work.pop();
        if (work.length) {
          const u = work[work.length - 1][0];
          low.set(u, Math.min(low.get(u), low.get(v)));
        }
        if (low.get(v) === index.get(v)) {
          let w;
          do {
            w = stack.pop();
            onStack.delete(w);
            comp.set(w, count);
          } while (w !== v);
          count++;
        }
      }
    }
    return comp;
  }

  /** First order of each layer: previously seen nodes as they were, new ones by their callers. */
  function initialOrder(layers, remembered) {
    const order = [];
    layers.forEach((l, li) => {
      const keyed = l.map((it, i) => {
        let key;
        if (remembered && remembered.has(it.id)) key = remembered.get(it.id);
        else if (li > 0 && it.up.length) key = it.up.reduce((s, u) => s + u.index, 0) / it.up.length * 1000 + 0.5;
        else key = 1e9 + i;
        return { it, key };
      });
      if (remembered) {
        // Remembered keys are y positions; new nodes' keys are positions in the layer above: put
        // both on one scale by placing new nodes after the remembered neighbour they follow.
        const known = keyed.filter((k) => remembered.has(k.it.id)).sort((a, b) => a.key - b.key);
        const fresh = keyed.filter((k) => !remembered.has(k.it.id));
        const result = known.map((k) => k.it);
        for (const f of fresh.sort((a, b) => a.key - b.key)) {
          const target = f.it.up.length ? f.it.up.reduce((s, u) => s + u.index, 0) / f.it.up.length : Infinity;
          let at = result.length;
          for (let i = 0; i < result.length; i++) {
            const ups = result[i].up;
            const bc = ups.length ? ups.reduce((s, u) => s + u.index, 0) / ups.length : i;
            if (bc > target) {
              at = i;
              break;
            }
          }
          result.splice(at, 0, f.it);
        }
        order.push(result);
      } else {
        order.push(keyed.sort((a, b) => a.key - b.key).map((k) => k.it));
      }
      order[li].forEach((it, i) => (it.index = i));
    });
    return order;
  }

  /** Barycenter sweeps, down and up; returns the order with the fewest crossings met. */
  function sweep(start, iterations) {
    let order = start.map((l) => [...l]);
    order.forEach((l) => l.forEach((it, i) => (it.index = i)));
    let best = order.map((l) => [...l]);
    let bestCount = crossings(best);
    for (let iter = 0; iter < iterations && bestCount > 0; iter++) {
      const down = iter % 2 === 0;
      const range = down ? order.map((_, i) => i).slice(1) : order.map((_, i) => i).reverse().slice(1);
      for (const li of range) {
        const l = order[li];
        const bary = l.map((it) => {
          const near = down ? it.up : it.down;
          return near.length ? near.reduce((s, n) => s + n.index, 0) / near.length : it.index;
        });
        const idx = l.map((_, i) => i).sort((a, b) => bary[a] - bary[b] || a - b);
        order[li] = idx.map((i) => l[i]);
        order[li].forEach((it, i) => (it.index = i));
      }
      const count = crossings(order);
      if (count < bestCount) {
        bestCount = count;
        best = order.map((l) => [...l]);
      }
    }
    best.forEach((l) => l.forEach((it, i) => (it.index = i)));
    return best;
  }

  /** Edge crossings between consecutive layers (inversions counted with a Fenwick tree). */
  function crossings(order) {
    const pos = new Map();
    order.forEach((l) => l.forEach((it, i) => pos.set(it, i)));
    let total = 0;
    for (let li = 0; li + 1 < order.length; li++) {
      const pairs = [];
      for (const it of order[li]) for (const d of it.down) if (d.layer === li + 1) pairs.push([pos.get(it), pos.get(d)]);
      pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const size = order[li + 1].length + 1;
      const tree = new Array(size + 1).fill(0);
      let seen = 0;
      for (const [, b] of pairs) {
        // pairs seen so far with a lower position >= b + 1 cross this one
        let le = 0;
        for (let i = b + 1; i > 0; i -= i & -i) le += tree[i];
        total += seen - le;
        for (let i = b + 1; i <= size; i += i & -i) tree[i] += 1;
        seen++;
      }
    }
    return total;
  }

  /** Places the items of one layer as near as possible to `desired`, in order, without overlap. */
  function place(list, desired) {
    const gap = (a, b) => a.h / 2 + (a.dummy || b.dummy ? DUMMY_GAP : NODE_GAP) + b.h / 2;
    const blocks = [];
    list.forEach((it, i) => {
      blocks.push({ first: i, last: i, offsets: [0], sum: desired[i], count: 1 });
      while (blocks.length > 1) {
        const cur = blocks[blocks.length - 1];
        const prev = blocks[blocks.length - 2];
        const prevSpan = prev.offsets[prev.offsets.length - 1];
        const g = gap(list[prev.last], list[cur.first]);
        if (cur.sum / cur.count >= prev.sum / prev.count + prevSpan + g) break;
        const shiftBy = prevSpan + g;
        for (const o of cur.offsets) prev.offsets.push(o + shiftBy);
        prev.sum += cur.sum - cur.count * shiftBy;
        prev.count += cur.count;
        prev.last = cur.last;
        blocks.pop();
      }
    });
    for (const b of blocks) {
      const p = b.sum / b.count;
      for (let i = b.first; i <= b.last; i++) list[i].y = p + b.offsets[i - b.first];
    }
  }

  /** SVG path through route points: horizontal-tangent curves between columns. */
  function pathOf(points, shape) {
    if (shape === "loop") {
      const [[x1, y1], [x2, y2]] = points;
      return `M${x1} ${y1}C${x1} ${y1 - 40} ${x2} ${y2 - 40} ${x2} ${y2}`;
    }
    if (shape === "flat") {
      const [[x1, y1], [x2, y2]] = points;
      const bulge = 30 + Math.min(60, Math.abs(y2 - y1) / 4);
      return `M${x1} ${y1}C${x1 + bulge} ${y1} ${x2 + bulge} ${y2} ${x2} ${y2}`;
    }
    let d = `M${points[0][0].toFixed(1)} ${points[0][1].toFixed(1)}`;
    for (let i = 1; i < points.length; i++) {
      const [x1, y1] = points[i - 1];
      const [x2, y2] = points[i];
      if (y1 === y2) {
        d += `L${x2.toFixed(1)} ${y2.toFixed(1)}`;
      } else {
        const mx = (x2 - x1) / 2;
        d += `C${(x1 + mx).toFixed(1)} ${y1.toFixed(1)} ${(x2 - mx).toFixed(1)} ${y2.toFixed(1)} ${x2.toFixed(1)} ${y2.toFixed(1)}`;
      }
    }
    return d;
  }

  /**
   * Where an edge's label sits: on the middle straight run of a long edge (where it passes other
   * layers, away from the crowd near nodes), else in the middle of the curve.
   */
  function labelPoint(points, shape) {
    if (shape === "loop") return [(points[0][0] + points[1][0]) / 2, points[0][1] - 34];
    if (shape === "flat") {
      const bulge = 30 + Math.min(60, Math.abs(points[1][1] - points[0][1]) / 4);
      return [Math.max(points[0][0], points[1][0]) + bulge * 0.75, (points[0][1] + points[1][1]) / 2];
    }
    const straight = [];
    for (let i = 2; i < points.length - 1; i += 2) straight.push(i);
    const i = straight.length ? straight[Math.floor((straight.length - 1) / 2)] : Math.ceil((points.length - 1) / 2);
    return [(points[i - 1][0] + points[i][0]) / 2, (points[i - 1][1] + points[i][1]) / 2];
  }

  // ---------------------------------------------------------------------------------------------
  // The graph view

  const graphView = (() => {
    let params = { ...GRAPH_DEFAULTS };
    let mode = "graph"; // or "diff"
    let model = null;
    let graph = null;
    let diff = null;
    let layout = null;
    let memories = new Map(); // graph type -> layout memory
    let namespaces = new Set();
    let selection = null; // {kind: "edge", key} | {kind: "node", id}
    let timer = null;
    let loadSeq = 0;
    let active = false;
    const view = { k: 1, x: 0, y: 0, moved: false };
    // Edge labels are drawn for the edges in view, from the scale where they can be read on (those
    // of changed edges always): the edges still without one ({g, edge, at}), and the drawn labels
    // whose backgrounds are still to be fitted to their text.
    let unlabelled = [];
    let unfitted = [];

    function controls() {
      return {
        type: $("graph-type"), ns: $("namespace"), window: $("window"), labels: $("labels"),
        baseline: $("baseline"), auto: $("auto-refresh"),
      };
    }

    function ensureOption(select, value, text) {
      if (![...select.options].some((o) => o.value === value)) select.append(el("option", { value }, text || value));
    }

    function syncControls() {
      const c = controls();
      c.type.value = params.type;
      ensureOption(c.window, params.window);
      c.window.value = params.window;
      ensureOption(c.ns, params.ns);
      c.ns.value = params.ns;
      c.labels.value = params.labels;
      c.baseline.value = params.baseline || "previous";
      c.auto.checked = Boolean(params.auto);
    }

    function currentHash() {
      const p = { ...params };
      if (selection && selection.kind === "edge") {
        const [src, dst, proto] = selection.key.split(" ");
        Object.assign(p, { src, dst, proto });
      } else if (selection && selection.kind === "node") {
        p.node = selection.id;
      }
      return hashFor(mode, p);
    }

    function readParams(r) {
      const p = r.params;
      const next = {
        type: ["workload", "app", "versionedApp", "service"].includes(p.type) ? p.type : GRAPH_DEFAULTS.type,
        window: p.window && Number.isFinite(parseDuration(p.window)) ? p.window : GRAPH_DEFAULTS.window,
        ns: p.ns || "",
        labels: ["rps", "errors", "latency"].includes(p.labels) ? p.labels : GRAPH_DEFAULTS.labels,
        auto: p.auto === "1",
        end: p.end || "",
        baseline: p.baseline === "day" ? "day" : "",
        baselineEnd: p.baselineEnd || "",
        min: p.min || "",
      };
      let sel = null;
      if (p.src && p.dst) sel = { kind: "edge", key: `${p.src} ${p.dst} ${p.proto || "http"}` };
      else if (p.node) sel = { kind: "node", id: p.node };
      return { next, sel };
    }

    async function enter(r) {
      const { next, sel } = readParams(r);
      const newMode = r.view;
      const dataChanged = !active || newMode !== mode ||
        ["type", "window", "ns", "end", "baseline", "baselineEnd", "min"].some((k) => next[k] !== params[k]);
      const labelsChanged = next.labels !== params.labels;
      params = next;
      mode = newMode;
      active = true;
      selection = sel;
      syncControls();
      setTimer();
      if (dataChanged) {
        await load();
      } else {
        if (labelsChanged) render();
        applySelection(false);
      }
    }

    function leave() {
      active = false;
      setTimer();
    }

    function setTimer() {
      if (timer) clearInterval(timer);
      timer = null;
      if (active && params.auto) {
        timer = setInterval(() => {
          if (!document.hidden) load(true);
        }, 10000);
      }
    }

    async function load(quiet) {
      const seq = ++loadSeq;
      if (!quiet) setStatus("Loading…");
      const requested = performance.now();
      try {
        let d = null;
        let end = params.end;
        if (mode === "diff") {
          d = await api("diff", {
            graphType: params.type, window: params.window, namespace: params.ns, end: params.end,
            baseline: params.baseline || undefined, baselineEnd: params.baselineEnd, minRequests: params.min,
          });
          end = d.current && d.current.endUnixSeconds;
        }
        const g = await api("graph", { graphType: params.type, window: params.window, namespace: params.ns, end });
        if (seq !== loadSeq || !active) return;
        const received = performance.now();
        graph = g;
        diff = d;
        showError(null);
        render();
        if (mode === "diff") renderDiffList();
        setStatus(`${g.nodes.length} nodes, ${g.edges.length} edges · ${fmtTime(g.endUnixSeconds)}`);
        applySelection(false, quiet);
        markDrawn(seq, requested, received);
      } catch (err) {
        if (seq !== loadSeq) return;
        setStatus("");
        showError(err);
      }
    }

    /**
     * User Timing entries of the load that put the graph on screen, for benchmarks and the browser's
     * performance tools: marks "sextant-graph-requested", "-received" (the answers parsed) and
     * "-drawn" (after the frame that paints the graph; its detail holds the drawn node and edge
     * counts), measures "sextant-graph" (asked to drawn) and "sextant-graph-draw" (received to
     * drawn: layout, SVG, style and paint). Only the latest load's entries are kept.
     */
    function markDrawn(seq, requested, received) {
      const counts = { nodes: model.nodes.size, edges: model.edges.length };
      requestAnimationFrame(() => setTimeout(() => {
        if (seq !== loadSeq) return;
        const drawn = performance.now();
        for (const name of ["sextant-graph-requested", "sextant-graph-received", "sextant-graph-drawn"]) performance.clearMarks(name);
        for (const name of ["sextant-graph", "sextant-graph-draw"]) performance.clearMeasures(name);
        performance.mark("sextant-graph-requested", { startTime: requested });
        performance.mark("sextant-graph-received", { startTime: received });
        performance.mark("sextant-graph-drawn", { startTime: drawn, detail: counts });
        performance.measure("sextant-graph", { start: requested, end: drawn, detail: counts });
        performance.measure("sextant-graph-draw", { start: received, end: drawn, detail: counts });
      }, 0));
    }

    function render() {
      if (!graph) return;
      for (const n of graph.nodes) if (n.namespace && n.id !== "unknown") namespaces.add(n.namespace);
      const nsSelect = $("namespace");
      for (const ns of [...namespaces].sort()) ensureOption(nsSelect, ns);
      nsSelect.value = params.ns;

      model = buildModel(graph, diff, params.type);
      const memKey = `${params.type}|${params.ns}|${mode}`;
      layout = layoutGraph(model, memories.get(memKey));
      memories.set(memKey, layout.memory);

      const viewport = $("graph-viewport");
      const focusedKey = document.activeElement && document.activeElement.closest && document.activeElement.closest("#graph-viewport .node, #graph-viewport .edge");
      const refocus = focusedKey ? (focusedKey.dataset.id ? `node:${focusedKey.dataset.id}` : `edge:${focusedKey.dataset.key}`) : null;
      clear(viewport);
      // The scale first (the area's size does not depend on what it shows): it decides which edges
      // get their labels now, and far out the new elements are then laid out once, in the frame
      // that paints them.
      unlabelled = [];
      unfitted = [];
      if (!view.moved) fit();
      else applyView();
      const nodeLayer = svg("g", { class: "nodes" });
      const edgeLayer = svg("g", { class: "edges" });
      const sortedNodes = [...model.nodes.values()].sort((a, b) => {
        const pa = layout.positions.get(a.id);
        const pb = layout.positions.get(b.id);
        return pa.layer - pb.layer || pa.y - pb.y;
      });
      for (const n of sortedNodes) nodeLayer.append(drawNode(n, layout.positions.get(n.id)));
      const sortedEdges = [...model.edges].sort((a, b) => {
        const pa = layout.positions.get(a.source);
        const pb = layout.positions.get(b.source);
        return pa.layer - pb.layer || pa.y - pb.y || layout.positions.get(a.target).y - layout.positions.get(b.target).y;
      });
      // Parallel edges of one pair (several protocols, or both directions) are drawn side by side.
      const siblings = new Map();
      for (const e of sortedEdges) {
        const k = [e.source, e.target].sort().join(" ");
        if (!siblings.has(k)) siblings.set(k, []);
        siblings.get(k).push(e);
      }
      for (const e of sortedEdges) {
        const group = siblings.get([e.source, e.target].sort().join(" "));
        const offset = (group.indexOf(e) - (group.length - 1) / 2) * 8;
        edgeLayer.append(drawEdge(e, layout.routes.get(e.key), offset));
      }
      viewport.append(nodeLayer, edgeLayer);
      labelEdgesInView();
      fitLabels();

      const empty = $("graph-empty");
      empty.hidden = model.nodes.size > 0;
      empty.textContent = mode === "diff"
        ? `Nothing changed between the two windows of ${params.window}.`
        : `No traffic in the last ${params.window}${params.ns ? ` in namespace ${params.ns}` : ""}.`;
      if (refocus) {
        const again = refocus.startsWith("node:")
          ? viewport.querySelector(`.node[data-id="${CSS.escape(refocus.slice(5))}"]`)
          : viewport.querySelector(`.edge[data-key="${CSS.escape(refocus.slice(5))}"]`);
        if (again) again.focus({ preventScroll: true });
      }
    }

    function drawNode(n, p) {
      const d = n.display;
      const changed = Boolean(n.diff);
      const g = svg("g", {
        class: `node kind-${d.kind} health-${n.health}${n.virtual ? " virtual" : ""}${n.ghost ? " ghost" : ""}${changed ? " changed" : ""}`,
        "data-id": n.id,
        "data-kind": d.kind,
        "data-health": n.health,
        "data-changed": changed ? "true" : undefined,
        "data-rank": changed ? n.rank : undefined,
        transform: `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`,
        tabindex: 0,
        role: "button",
        "aria-label": `${d.kind} ${d.name}${d.kind === "unknown" ? "" : ` in ${n.namespace}`}` +
          `${n.health !== "none" ? `, ${n.health}` : ""}${changed ? ", changed" : ""}`,
      });
      g.append(svg("title", null, n.id));
      if (changed) g.append(svg("rect", { class: "node-halo", x: -5, y: -5, width: p.w + 10, height: p.h + 10, rx: 11 }));
      g.append(svg("rect", { class: "node-box", x: 0, y: 0, width: p.w, height: p.h, rx: d.kind === "service" || d.kind === "unknown" ? 21 : 6 }));
      if (n.health !== "none") g.append(svg("rect", { class: "node-health", x: 0, y: 0, width: 6, height: p.h, rx: 3 }));
      g.append(svg("text", { class: "node-name", x: p.w / 2, y: 18 }, truncate(d.name, NAME_FONT, NODE_MAX_TEXT)));
      g.append(svg("text", { class: "node-sub", x: p.w / 2, y: 33 }, truncate(d.sub, SUB_FONT, NODE_MAX_TEXT)));
      if (changed) {
        g.append(svg("circle", { class: "rank-dot", cx: p.w, cy: 0, r: 9 }),
          svg("text", { class: "rank-text", x: p.w, y: 4 }, n.rank));
      }
      return g;
    }

    function drawEdge(e, points, offset) {
      const shape = e.selfLoop ? "loop" : e.flat ? "flat" : "";
      const pts = points.map(([x, y], i) => [x, y + (shape ? 0 : offset * (i === 0 || i === points.length - 1 ? 0.6 : 1))]);
      const d = pathOf(pts, shape);
      const changed = Boolean(e.diff);
      const tcp = e.protocol === "tcp";
      const g = svg("g", {
        class: `edge proto-${e.protocol} health-${e.health}${e.ghost ? " ghost" : ""}${changed ? " changed" : ""}`,
        "data-source": e.source,
        "data-target": e.target,
        "data-protocol": e.protocol,
        "data-health": e.health,
        "data-key": e.key,
        "data-channels": e.channels || undefined,
        "data-changed": changed ? "true" : undefined,
        "data-rank": changed ? e.rank : undefined,
        "data-ghost": e.ghost ? "true" : undefined,
        tabindex: 0,
        role: "button",
        "aria-label": `${e.protocol} calls from ${model.nodes.get(e.source).display.name} to ${model.nodes.get(e.target).display.name}: ` +
          `${edgeLabel(e, params.labels)}${tcp ? "" : `, ${e.health}`}${changed ? ", changed" : ""}`,
      });
      if (changed) g.append(svg("path", { class: "edge-halo", d }));
      g.append(svg("path", { class: "edge-hit", d }));
      const arrow = e.ghost ? "ghost" : tcp ? "tcp" : e.health;
      g.append(svg("path", { class: "edge-line", d, "marker-end": `url(#arrow-${arrow})` }));
      g.append(svg("title", null, `${e.source} → ${e.target} (${e.protocol})`));
      const at = labelPoint(pts, shape);
      if (changed) g.append(drawLabel(e, at));
      else unlabelled.push({ g, e, at });
      return g;
    }

    /** An edge's label at `at`: its figure, the diff's rank, a badge for one channel only. */
    function drawLabel(e, [lx, ly]) {
      const changed = Boolean(e.diff);
      const tag = svg("g", { class: "edge-tag", transform: `translate(${lx.toFixed(1)},${ly.toFixed(1)})` });
      const text = edgeLabel(e, params.labels);
      const badge = e.channels === "spans" ? "S" : e.channels === "logs" ? "L" : "";
      const tw = textWidth(text, LABEL_FONT);
      const total = tw + (badge ? 18 : 0) + (changed ? 20 : 0);
      let left = -total / 2;
      tag.append(svg("rect", { class: "edge-label-bg", x: (left - 4).toFixed(1), y: -9, width: (total + 8).toFixed(1), height: 18, rx: 4 }));
      if (changed) {
        tag.append(svg("circle", { class: "rank-dot", cx: left + 8, cy: 0, r: 8 }),
          svg("text", { class: "rank-text", x: left + 8, y: 4 }, e.rank));
        left += 20;
      }
      tag.append(svg("text", { class: "edge-label", x: (left + tw / 2).toFixed(1), y: 4 }, text));
      if (badge) {
        const bx = left + tw + 11;
        tag.append(svg("g", { class: "edge-badge" },
          svg("title", null, badge === "S" ? "seen in spans only" : "seen in access logs only"),
          svg("circle", { class: "badge-dot", cx: bx.toFixed(1), cy: 0, r: 7 }),
          svg("text", { class: "badge-text", x: bx.toFixed(1), y: 3.5 }, badge)));
      }
      unfitted.push(tag);
      return tag;
    }

    /** Labels the edges whose label falls in view (or near it) once the view is near enough to read them. */
    function labelEdgesInView() {
      if (!unlabelled.length || view.k < LABEL_MIN_SCALE) return;
      const area = $("graph-svg").getBoundingClientRect();
      const margin = 200 / view.k;
      const x0 = -view.x / view.k - margin;
      const y0 = -view.y / view.k - margin;
      const x1 = (area.width - view.x) / view.k + margin;
      const y1 = (area.height - view.y) / view.k + margin;
      const rest = [];
      for (const item of unlabelled) {
        const [x, y] = item.at;
        if (x >= x0 && x <= x1 && y >= y0 && y <= y1) item.g.append(drawLabel(item.e, item.at));
        else rest.push(item);
      }
      unlabelled = rest;
    }

    // Labels are measured on a canvas; the rendered font may differ a little, so the background is
    // fitted to the real text once it is in the document.
    function fitLabels() {
      if (!unfitted.length) return;
      const tags = unfitted;
      unfitted = [];
      // All reads first, then all writes: one layout, not one per label.
      const boxes = tags.map((tag) => {
        try {
          return tag.querySelector(".edge-label").getBBox();
        } catch (_) {
          return null;
        }
      });
      tags.forEach((tag, i) => {
        const box = boxes[i];
        if (!box || !box.width) return;
        const bg = tag.querySelector(".edge-label-bg");
        let left = Math.min(box.x, Number(bg.getAttribute("x")) + 4);
        let right = box.x + box.width;
        const badge = tag.querySelector(".badge-dot");
        if (badge) right = Math.max(right, Number(badge.getAttribute("cx")) + 7);
        const rank = tag.querySelector(".rank-dot");
        if (rank) left = Math.min(left, Number(rank.getAttribute("cx")) - 8);
        bg.setAttribute("x", (left - 4).toFixed(1));
        bg.setAttribute("width", (right - left + 8).toFixed(1));
      });
    }

    // -- zoom and pan --

    function applyView() {
      $("graph-viewport").setAttribute("transform", `translate(${view.x.toFixed(1)},${view.y.toFixed(1)}) scale(${view.k.toFixed(4)})`);
      // Edge labels from the scale where they can be read on: farther out, a large graph is its
      // boxes and lines, without thousands of labels to build, lay out and paint.
      $("graph-svg").classList.toggle("far", view.k < LABEL_MIN_SCALE);
      labelEdgesInView();
      fitLabels();
    }

    /**
     * Shows the whole graph; a graph too large to read that way is shown from its left (the callers)
     * at a readable scale unless `whole` (the Fit button).
     */
    function fit(whole) {
      if (!layout) return;
      const area = $("graph-svg").getBoundingClientRect();
      if (!area.width || !area.height) return;
      let k = Math.min(1.25, area.width / layout.width, area.height / layout.height);
      if (whole !== true) k = Math.max(k, Math.min(0.4, area.height / layout.height));
      view.k = Math.max(MIN_SCALE, k);
      view.x = Math.max(0, (area.width - layout.width * view.k) / 2);
      view.y = Math.max(0, (area.height - layout.height * view.k) / 2);
      view.moved = false;
      applyView();
    }

    function zoomBy(factor, cx, cy) {
      const area = $("graph-svg").getBoundingClientRect();
      const px = cx === undefined ? area.width / 2 : cx;
      const py = cy === undefined ? area.height / 2 : cy;
      const k = Math.min(4, Math.max(MIN_SCALE, view.k * factor));
      view.x = px - ((px - view.x) * k) / view.k;
      view.y = py - ((py - view.y) * k) / view.k;
      view.k = k;
      view.moved = true;
      applyView();
    }

    function setupZoom() {
      const area = $("graph-svg");
      area.addEventListener("wheel", (event) => {
        event.preventDefault();
        const r = area.getBoundingClientRect();
        zoomBy(Math.exp(-Math.max(-100, Math.min(100, event.deltaY)) * 0.0015), event.clientX - r.left, event.clientY - r.top);
      }, { passive: false });
      let drag = null;
      area.addEventListener("pointerdown", (event) => {
        if (event.button !== 0 || event.target.closest(".node, .edge")) return;
        drag = { x: event.clientX, y: event.clientY, vx: view.x, vy: view.y };
        area.setPointerCapture(event.pointerId);
        area.classList.add("panning");
      });
      area.addEventListener("pointermove", (event) => {
        if (!drag) return;
        view.x = drag.vx + event.clientX - drag.x;
        view.y = drag.vy + event.clientY - drag.y;
        if (Math.abs(event.clientX - drag.x) + Math.abs(event.clientY - drag.y) > 3) view.moved = true;
        applyView();
      });
      const end = (event) => {
        if (!drag) return;
        drag = null;
        area.classList.remove("panning");
        if (area.hasPointerCapture(event.pointerId)) area.releasePointerCapture(event.pointerId);
      };
      area.addEventListener("pointerup", end);
      area.addEventListener("pointercancel", end);
      $("zoom-in").addEventListener("click", () => zoomBy(1.25));
      $("zoom-out").addEventListener("click", () => zoomBy(0.8));
      $("zoom-fit").addEventListener("click", () => fit(true));
      let resizeTimer = null;
      window.addEventListener("resize", () => {
        clearTimeout(resizeTimer);
        resizeTimer = setTimeout(refit, 100);
      });
    }

    // -- selection and the side panel --

    /** Opens the panel of a node or edge; the selection is kept in the hash (links, Back). */
    function select(sel) {
      selection = sel;
      replaceHash(currentHash());
      applySelection(true);
    }

    function applySelection(focusPanel, quiet) {
      const viewport = $("graph-viewport");
      for (const elx of viewport.querySelectorAll(".selected")) elx.classList.remove("selected");
      if (!selection || !model) {
        panel.close();
        return;
      }
      if (selection.kind === "edge") {
        const e = model.byKey.get(selection.key);
        const g = viewport.querySelector(`.edge[data-key="${CSS.escape(selection.key)}"]`);
        if (!e || !g) {
          panel.showMissing(selection);
          return;
        }
        g.classList.add("selected");
        panel.showEdge(e, model, graph, params, quiet);
      } else {
        const n = model.nodes.get(selection.id);
        const g = viewport.querySelector(`.node[data-id="${CSS.escape(selection.id)}"]`);
        if (!n || !g) {
          panel.showMissing(selection);
          return;
        }
        g.classList.add("selected");
        panel.showNode(n, model, graph, params, quiet);
      }
      if (focusPanel) panel.focus();
    }

    function closeSelection() {
      const previous = selection;
      selection = null;
      replaceHash(currentHash());
      applySelection(false);
      if (previous) {
        const target = previous.kind === "edge"
          ? $("graph-viewport").querySelector(`.edge[data-key="${CSS.escape(previous.key)}"]`)
          : $("graph-viewport").querySelector(`.node[data-id="${CSS.escape(previous.id)}"]`);
        if (target) target.focus({ preventScroll: true });
      }
    }

    function selectionFromElement(target) {
      const g = target.closest("#graph-viewport .node, #graph-viewport .edge");
      if (!g) return null;
      return g.classList.contains("node") ? { kind: "node", id: g.dataset.id } : { kind: "edge", key: g.dataset.key };
    }

    function setupInteraction() {
      const viewport = $("graph-viewport");
      viewport.addEventListener("click", (event) => {
        const sel = selectionFromElement(event.target);
        if (sel) select(sel);
      });
      viewport.addEventListener("keydown", (event) => {
        if (event.key !== "Enter" && event.key !== " ") return;
        const sel = selectionFromElement(event.target);
        if (!sel) return;
        event.preventDefault();
        select(sel);
      });
      $("panel-close").addEventListener("click", closeSelection);
      document.addEventListener("keydown", (event) => {
        if (event.key === "Escape" && active && selection && !$("token-dialog").open) {
          event.preventDefault();
          closeSelection();
        }
      });

      const c = controls();
      const update = () => {
        const next = {
          ...params, type: c.type.value, ns: c.ns.value, window: c.window.value, labels: c.labels.value,
          baseline: c.baseline.value === "day" ? "day" : "", auto: c.auto.checked,
        };
        if (next.type !== params.type) selection = null;
        const hashParams = { ...next };
        if (selection && selection.kind === "edge") {
          const [src, dst, proto] = selection.key.split(" ");
          Object.assign(hashParams, { src, dst, proto });
        } else if (selection && selection.kind === "node") hashParams.node = selection.id;
        replaceHash(hashFor(mode, hashParams));
        enter(parseHash());
      };
      for (const control of Object.values(c)) control.addEventListener("change", update);
      $("refresh").addEventListener("click", () => load());
      $("graph-controls").addEventListener("submit", (event) => event.preventDefault());
    }

    // -- the ranked changes of the diff view --

    function renderDiffList() {
      const list = $("diff-items");
      clear(list);
      if (!diff) return;
      const c = diff.current;
      const b = diff.baseline;
      $("diff-range").textContent = c && b
        ? `${fmtTime(c.startUnixSeconds)}–${fmtTime(c.endUnixSeconds)} against ${fmtTime(b.startUnixSeconds)}–${fmtTime(b.endUnixSeconds)}` +
          (diff.minRequests ? ` · at least ${diff.minRequests} requests` : "")
        : "";
      const name = (id) => (model.nodes.get(id) ? model.nodes.get(id).display.name : describeNode(nodeFromId(id)).name);
      const items = [
        ...diff.edges.map((d, i) => ({ d, rank: i + 1, kind: "edge", title: `${name(d.source)} → ${name(d.target)}`, proto: d.protocol })),
        ...diff.nodes.map((d, i) => ({ d, rank: i + 1, kind: "node", title: name(d.id) })),
      ];
      if (!items.length) {
        list.append(el("li", { class: "diff-none" }, "Nothing got worse."));
        return;
      }
      let heading = null;
      for (const item of items) {
        if (item.kind !== heading) {
          heading = item.kind;
          list.append(el("li", { class: "diff-heading", role: "presentation" }, item.kind === "edge" ? "Edges" : "Nodes"));
        }
        const d = item.d;
        const attrs = item.kind === "edge"
          ? { "data-source": d.source, "data-target": d.target, "data-protocol": d.protocol }
          : { "data-id": d.id };
        const button = el("button", { type: "button", class: "diff-item-button" },
          el("span", { class: "rank" }, item.rank),
          el("span", { class: "diff-what" }, item.title, item.proto && item.proto !== "http" ? el("span", { class: "muted" }, ` ${item.proto}`) : null),
          el("span", { class: "diff-kinds" }, d.changes.map((ch) => el("span", { class: `chip chip-${ch.kind}` }, CHANGE_NAMES[ch.kind] || ch.kind))),
          el("span", { class: "diff-desc" }, d.changes.map((ch) => ch.description).join("; ")));
        button.addEventListener("click", () => {
          select(item.kind === "edge" ? { kind: "edge", key: edgeKey(d) } : { kind: "node", id: d.id });
        });
        list.append(el("li", { class: `diff-item diff-${item.kind}`, ...attrs }, button));
      }
    }

    /** After the graph area changed size: the whole graph again, or labels for what came into view. */
    function refit() {
      if (!active) return;
      if (!view.moved) fit();
      else applyView();
    }

    return { enter, leave, select, setupZoom, setupInteraction, refit };
  })();

  const CHANGE_NAMES = {
    newErrors: "new errors",
    errorRateIncrease: "error rate ↑",
    latencyIncrease: "p99 ↑",
    trafficVanished: "traffic vanished",
    appeared: "appeared",
  };

  // ---------------------------------------------------------------------------------------------
  // Small line charts

  /**
   * A chart of series over time: series = [{name, cls, values: [[unixSeconds, value|null], ...]}].
   * Gaps (null) break the line.
   */
  function lineChart(title, series, format, startS, endS) {
    const W = 320;
    const H = 96;
    const left = 44;
    const right = 8;
    const top = 8;
    const bottom = 20;
    const all = series.flatMap((s) => s.values.map((v) => v[1]).filter((v) => v !== null && Number.isFinite(v)));
    const max = niceMax(all.length ? Math.max(...all) : 0);
    const xOf = (t) => left + ((t - startS) / Math.max(1, endS - startS)) * (W - left - right);
    const yOf = (v) => top + (1 - v / max) * (H - top - bottom);
    const chart = svg("svg", { class: "chart-svg", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title} over the window` });
    chart.append(
      svg("line", { class: "chart-axis", x1: left, y1: yOf(0), x2: W - right, y2: yOf(0) }),
      svg("line", { class: "chart-grid", x1: left, y1: yOf(max), x2: W - right, y2: yOf(max) }),
      svg("line", { class: "chart-grid", x1: left, y1: yOf(max / 2), x2: W - right, y2: yOf(max / 2) }),
      svg("text", { class: "chart-tick", x: left - 4, y: yOf(max) + 4, "text-anchor": "end" }, format(max)),
      svg("text", { class: "chart-tick", x: left - 4, y: yOf(0) + 4, "text-anchor": "end" }, "0"),
      svg("text", { class: "chart-tick", x: left, y: H - 4 }, fmtTime(startS)),
      svg("text", { class: "chart-tick", x: W - right, y: H - 4, "text-anchor": "end" }, fmtTime(endS)));
    for (const s of series) {
      let run = [];
      const flush = () => {
        if (run.length === 1) {
          chart.append(svg("circle", { class: `chart-dot ${s.cls}`, cx: run[0][0].toFixed(1), cy: run[0][1].toFixed(1), r: 2 }));
        } else if (run.length > 1) {
          chart.append(svg("polyline", { class: `chart-line ${s.cls}`, points: run.map((p) => `${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(" ") }));
        }
        run = [];
      };
      for (const [t, v] of s.values) {
        if (v === null || !Number.isFinite(v)) flush();
        else run.push([xOf(t), yOf(v)]);
      }
      flush();
    }
    const last = series.map((s) => {
      const values = s.values.filter((v) => v[1] !== null && Number.isFinite(v[1]));
      return values.length ? `${s.name} ${format(values[values.length - 1][1])}` : null;
    }).filter(Boolean);
    const legend = series.length > 1
      ? el("span", { class: "chart-legend" }, series.map((s) => el("span", { class: `key ${s.cls}` }, s.name)))
      : null;
    return el("figure", { class: "chart" },
      el("figcaption", null, el("span", { class: "chart-title" }, title), legend,
        el("span", { class: "chart-last muted" }, last.length ? `last: ${last.join(", ")}` : "no data")),
      chart);
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const exp = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= v) return m * exp;
    return 10 * exp;
  }

  // ---------------------------------------------------------------------------------------------
  // The side panel

  const panel = (() => {
    let seq = 0;
    let shownKey = null;

    function open(title) {
      const wasHidden = $("panel").hidden;
      $("panel").hidden = false;
      if (wasHidden) graphView.refit();
      $("panel-title").textContent = title;
      document.body.classList.add("panel-open");
    }

    function close() {
      seq++;
      shownKey = null;
      const wasOpen = !$("panel").hidden;
      $("panel").hidden = true;
      document.body.classList.remove("panel-open");
      if (wasOpen) graphView.refit();
    }

    function focus() {
      $("panel").focus({ preventScroll: true });
    }

    function showMissing(sel) {
      open(sel.kind === "edge" ? "Edge not in this graph" : "Node not in this graph");
      const body = $("panel-body");
      clear(body);
      body.append(el("p", { class: "muted" }, "It had no traffic in this window, or belongs to another graph type or namespace."));
    }

    function totalsList(fields) {
      return el("dl", { class: "totals" }, fields.map(([label, field, value]) => [
        el("dt", null, label),
        el("dd", { "data-field": field }, value),
      ]));
    }

    function codesTable(byCode, requests) {
      const rows = Object.entries(byCode || {}).sort((a, b) => Number(a[0]) - Number(b[0]));
      if (!rows.length) return el("p", { class: "muted" }, "No response codes.");
      return el("table", { class: "codes" },
        el("thead", null, el("tr", null, el("th", { scope: "col" }, "Code"), el("th", { scope: "col" }, "Requests"), el("th", { scope: "col" }, "Share"))),
        el("tbody", null, rows.map(([code, n]) => {
          const c = Number(code);
          const cls = c >= 500 ? "code-5xx" : c >= 400 ? "code-4xx" : c === 0 ? "code-none" : "code-ok";
          return el("tr", { class: cls, "data-code": code },
            el("td", null, code === "0" ? "0 (no HTTP status)" : code),
            el("td", { class: "num" }, n),
            el("td", { class: "num" }, fmtPct(requests ? n / requests : 0)));
        })));
    }

    function sourcesList(sources) {
      if (!sources || !sources.length) return el("p", { class: "muted" }, "None.");
      return el("ul", { class: "sources" }, sources.map((s) => el("li", { "data-source": s }, el("code", null, s), " ", el("span", { class: "muted" }, CHANNEL_NAMES[s] || ""))));
    }

    function traceLinks(examples) {
      const links = [];
      for (const ex of examples) {
        if (ex.slowest) {
          links.push(el("li", null, el("a", { class: "trace-link", href: `#/trace/${encodeURIComponent(ex.slowest)}`, "data-trace-id": ex.slowest },
            `Slowest traced call${ex.slowestMs !== undefined ? ` (${fmtMs(ex.slowestMs)} ms)` : ""}`), ex.label ? el("span", { class: "muted" }, ` ${ex.label}`) : null));
        }
        if (ex.error) {
          links.push(el("li", null, el("a", { class: "trace-link trace-link-error", href: `#/trace/${encodeURIComponent(ex.error)}`, "data-trace-id": ex.error },
            "Newest failed call"), ex.label ? el("span", { class: "muted" }, ` ${ex.label}`) : null));
        }
      }
      return links.length ? el("ul", { class: "trace-links" }, links) : el("p", { class: "muted" }, "No traced calls in this window.");
    }

    function section(title, ...content) {
      return el("section", { class: "panel-section" }, el("h3", null, title), content);
    }

    function chartsPlaceholder() {
      return el("div", { class: "charts" }, el("p", { class: "muted" }, "Loading the signals over the window…"));
    }

    async function loadCharts(holder, query, params, graph, mySeq) {
      try {
        const windowS = graph.windowSeconds;
        const r = await api("signals/range", { graphType: params.type, window: params.window, end: graph.endUnixSeconds, ...query });
        if (mySeq !== seq) return;
        clear(holder);
        const pts = r.points || [];
        const startS = r.endUnixSeconds - (r.windowSeconds || windowS);
        const mid = (p) => (p.startUnixSeconds + p.endUnixSeconds) / 2;
        const latency = (q) => pts.map((p) => [mid(p), p.latencyMs ? p.latencyMs[q] : null]);
        holder.append(
          lineChart(query.protocol === "tcp" ? "Connections/s" : "Requests/s", [{ name: "rps", cls: "s-rps", values: pts.map((p) => [mid(p), p.rps]) }], fmtRate, startS, r.endUnixSeconds),
          lineChart("Error rate", [{ name: "errors", cls: "s-err", values: pts.map((p) => [mid(p), p.requests ? p.errorRate : null]) }], fmtPct, startS, r.endUnixSeconds),
          lineChart("Latency (ms)", [
            { name: "p50", cls: "s-p50", values: latency("p50") },
            { name: "p90", cls: "s-p90", values: latency("p90") },
            { name: "p99", cls: "s-p99", values: latency("p99") },
          ], fmtMs, startS, r.endUnixSeconds));
        holder.dataset.points = String(pts.length);
      } catch (err) {
        if (mySeq !== seq) return;
        clear(holder);
        holder.append(el("p", { class: "error" }, `Signals over time unavailable: ${err.message}`));
      }
    }

    function showEdge(e, model, graph, params, quiet) {
      const key = `edge|${e.key}|${graph.endUnixSeconds}|${params.labels}`;
      if (quiet && key === shownKey) return;
      shownKey = key;
      const mySeq = ++seq;
      const src = model.nodes.get(e.source).display.name;
      const dst = model.nodes.get(e.target).display.name;
      open(`${src} → ${dst}`);
      const body = $("panel-body");
      clear(body);
      body.dataset.kind = "edge";
      body.dataset.source = e.source;
      body.dataset.target = e.target;
      body.dataset.protocol = e.protocol;
      const tcp = e.protocol === "tcp";
      const l = e.latencyMs;
      body.append(el("p", { class: "panel-sub" },
        el("span", { class: `pill health-${tcp ? "tcp" : e.health}`, "data-health": e.health }, tcp ? "TCP" : e.health),
        " ", e.protocol, " · last ", params.window),
        el("p", { class: "panel-ids" }, el("code", null, e.source), " → ", el("code", null, e.target)));
      if (e.diff) body.append(diffSection(e.diff));
      if (e.ghost) {
        body.append(el("p", { class: "muted" }, e.requests
          ? `Not in the graph of this window; the comparison counted ${e.requests} calls on it.`
          : "No traffic on this edge in the current window."));
        return;
      }
      body.append(section("Totals", totalsList([
        [tcp ? "Connections" : "Requests", "requests", fmtCount(e.requests)],
        [tcp ? "Connections/s" : "Requests/s", "rps", fmtRate(e.rps)],
        ["Error rate", "errorRate", tcp ? "—" : fmtPct(e.errorRate)],
        ["Errors (5xx)", "errors", tcp ? "—" : `${e.errors} (${e.serverErrors})`],
        ["p50", "p50", l ? `${fmtMs(l.p50)} ms` : "—"],
        ["p90", "p90", l ? `${fmtMs(l.p90)} ms` : "—"],
        ["p99", "p99", l ? `${fmtMs(l.p99)} ms` : "—"],
        ["Bytes sent / received", "bytes", `${e.requestBytes ?? "—"} / ${e.responseBytes ?? "—"}`],
      ])));
      const charts = chartsPlaceholder();
      body.append(section("Over the window", charts));
      body.append(section(tcp ? "Connections" : "Response codes", codesTable(e.byCode, e.requests)));
      body.append(section("Seen by", sourcesList(e.sources)));
      body.append(section("Example traces", traceLinks(e.exampleTraces ? [e.exampleTraces] : [])));
      loadCharts(charts, { source: e.source, target: e.target, protocol: e.protocol }, params, graph, mySeq);
    }

    function showNode(n, model, graph, params, quiet) {
      const key = `node|${n.id}|${graph.endUnixSeconds}`;
      if (quiet && key === shownKey) return;
      shownKey = key;
      const mySeq = ++seq;
      const d = n.display;
      open(d.name);
      const body = $("panel-body");
      clear(body);
      body.dataset.kind = "node";
      body.dataset.id = n.id;
      const inbound = model.edges.filter((e) => e.target === n.id && !e.ghost);
      const outbound = model.edges.filter((e) => e.source === n.id && !e.ghost);
      const calls = inbound.filter((e) => e.protocol !== "tcp");
      const t = { requests: 0, errors: 0, serverErrors: 0, rps: 0, byCode: {}, sources: new Set() };
      for (const e of calls) {
        t.requests += e.requests;
        t.errors += e.errors;
        t.serverErrors += e.serverErrors;
        t.rps += e.rps;
        for (const [c, k] of Object.entries(e.byCode || {})) t.byCode[c] = (t.byCode[c] || 0) + k;
      }
      for (const e of [...inbound, ...outbound]) for (const s of e.sources || []) t.sources.add(s);
      body.append(el("p", { class: "panel-sub" },
        n.health !== "none" ? el("span", { class: `pill health-${n.health}`, "data-health": n.health }, n.health) : null,
        " ", d.kind, d.kind === "unknown" ? "" : ` in ${n.namespace}`),
        el("p", { class: "panel-ids" }, el("code", null, n.id)));
      if (n.diff) body.append(diffSection(n.diff));
      const facts = [];
      if (n.workload && d.kind !== "unknown") facts.push(["Workload", n.workload]);
      if (n.app && d.kind !== "unknown") facts.push(["App", n.app]);
      if (n.version) facts.push(["Version", n.version]);
      if (n.service) facts.push(["Service", d.host || n.service]);
      if (facts.length) {
        body.append(el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", null, k), el("dd", null, v)])));
      }
      if (calls.length) {
        body.append(section("Requests received", totalsList([
          ["Requests", "requests", fmtCount(t.requests)],
          ["Requests/s", "rps", fmtRate(Math.round(t.rps * 1000) / 1000)],
          ["Error rate", "errorRate", fmtPct(t.requests ? t.errors / t.requests : 0)],
          ["Errors (5xx)", "errors", `${t.errors} (${t.serverErrors})`],
        ])));
      }
      const signalsHolder = el("div", { class: "signals" });
      if (d.kind === "workload" || d.kind === "service") body.append(section("Latency and saturation", signalsHolder));
      const charts = chartsPlaceholder();
      body.append(section("Over the window", charts));
      if (calls.length) body.append(section("Response codes", codesTable(t.byCode, t.requests)));
      body.append(section("Seen by", sourcesList([...t.sources])));
      const edgeList = (list, dir) => list.length
        ? el("ul", { class: "edge-list" }, list.map((e) => {
          const other = model.nodes.get(dir === "in" ? e.source : e.target).display.name;
          const b = el("button", { type: "button", class: "link-button" }, `${dir === "in" ? "from" : "to"} ${other}`,
            el("span", { class: "muted" }, ` ${e.protocol} · ${edgeLabel(e, "rps")}`));
          b.addEventListener("click", () => graphView.select({ kind: "edge", key: e.key }));
          return el("li", null, b);
        }))
        : el("p", { class: "muted" }, "None.");
      body.append(section("Callers", edgeList(inbound, "in")), section("Calls", edgeList(outbound, "out")));
      const examples = inbound.filter((e) => e.exampleTraces).map((e) => ({ ...e.exampleTraces, label: `from ${model.nodes.get(e.source).display.name}` }));
      body.append(section("Example traces", traceLinks(examples)));
      const direction = inbound.length ? "inbound" : "outbound";
      loadCharts(charts, { node: n.id, direction }, params, graph, mySeq);
      if (d.kind === "workload" || d.kind === "service") loadSignals(signalsHolder, n, d, params, graph, mySeq);
    }

    async function loadSignals(holder, n, d, params, graph, mySeq) {
      holder.append(el("p", { class: "muted" }, "Loading…"));
      try {
        const by = d.kind === "workload" ? "workload" : "service";
        const name = d.kind === "workload" ? n.workload : d.host || n.service;
        const r = await api("signals", { by, name, window: params.window, end: graph.endUnixSeconds });
        if (mySeq !== seq) return;
        clear(holder);
        const item = (r.items || []).find((i) => (i.namespace === n.namespace || !n.namespace) && (i.name === name || i.name === n.service));
        if (!item) {
          holder.append(el("p", { class: "muted" }, "No requests received in this window."));
          return;
        }
        const l = item.latencyMs;
        const s = item.saturation || {};
        const rows = [
          ["p50 / p90 / p99", "latency", l ? `${fmtMs(l.p50)} / ${fmtMs(l.p90)} / ${fmtMs(l.p99)} ms` : "—"],
          ["In flight (average)", "inFlight", s.inFlight !== undefined ? String(s.inFlight) : "—"],
          ["Shed by circuit breakers", "overflowRequests", fmtCount(s.overflowRequests)],
          ["Rate limited", "rateLimitedRequests", fmtCount(s.rateLimitedRequests)],
        ];
        if (s.proxy) {
          rows.push(
            ["Proxy: active requests", "activeRequests", String(s.proxy.activeRequests)],
            ["Proxy: pending requests", "pendingRequests", String(s.proxy.pendingRequests)],
            ["Proxy: open connections", "activeConnections", String(s.proxy.activeConnections)],
            ["Proxy: overflows", "overflows", String(s.proxy.overflows)]);
        }
        holder.append(el("dl", { class: "totals saturation" }, rows.map(([k, f, v]) => [el("dt", null, k), el("dd", { "data-field": f }, v)])));
      } catch (err) {
        if (mySeq !== seq) return;
        clear(holder);
        holder.append(el("p", { class: "error" }, `Signals unavailable: ${err.message}`));
      }
    }

    function diffSection(d) {
      return el("section", { class: "panel-section panel-diff" },
        el("h3", null, "What changed"),
        el("ul", { class: "changes" }, d.changes.map((ch) => el("li", null,
          el("span", { class: `chip chip-${ch.kind}` }, CHANGE_NAMES[ch.kind] || ch.kind), " ", ch.description))),
        d.current && d.baseline ? totalsCompare(d) : null);
    }

    function totalsCompare(d) {
      const row = (label, f) => el("tr", null, el("th", { scope: "row" }, label), el("td", { class: "num" }, f(d.baseline)), el("td", { class: "num" }, f(d.current)));
      return el("table", { class: "compare" },
        el("thead", null, el("tr", null, el("td"), el("th", { scope: "col" }, "Baseline"), el("th", { scope: "col" }, "Now"))),
        el("tbody", null,
          row("Requests", (x) => fmtCount(x.requests)),
          row("Requests/s", (x) => fmtRate(x.rps)),
          row("Error rate", (x) => fmtPct(x.errorRate)),
          row("p99", (x) => (x.p99Ms !== undefined && x.p99Ms !== null ? `${fmtMs(x.p99Ms)} ms` : "—"))));
    }

    return { showEdge, showNode, showMissing, close, focus };
  })();

  // ---------------------------------------------------------------------------------------------
  // Trace search

  const traceSearch = (() => {
    let seq = 0;
    const services = new Set();

    function fill(p) {
      $("trace-service").value = p.service || "";
      $("trace-min").value = p.minDuration || "";
      $("trace-errors").checked = p.errors === "1";
      const w = $("trace-window");
      if (p.window && ![...w.options].some((o) => o.value === p.window)) w.append(el("option", { value: p.window }, p.window));
      w.value = p.window || "1h";
      const l = $("trace-limit");
      l.value = ["20", "50", "100", "500"].includes(p.limit) ? p.limit : "20";
    }

    async function enter(p) {
      fill(p);
      const mySeq = ++seq;
      const results = $("trace-results");
      setStatus("Searching…");
      try {
        const r = await api("traces", {
          service: p.service, minDuration: p.minDuration, status: p.errors === "1" ? "error" : undefined,
          window: p.window || "1h", limit: p.limit || 20,
        });
        if (mySeq !== seq) return;
        clear(results);
        const traces = r.traces || [];
        setStatus(`${traces.length} trace${traces.length === 1 ? "" : "s"}`);
        for (const t of traces) for (const s of t.services || []) services.add(s);
        const list = $("trace-services");
        clear(list);
        for (const s of [...services].sort()) list.append(el("option", { value: s }));
        if (!traces.length) {
          results.append(el("p", { class: "muted empty-note" }, "No trace matches."));
          return;
        }
        results.append(el("table", { class: "trace-table" },
          el("thead", null, el("tr", null, ["Start", "Root", "Duration", "Spans", "Errors", "Services"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", null, traces.map((t) => el("tr", { class: `trace-row${t.errorCount ? " has-error" : ""}`, "data-trace-id": t.traceId },
            el("td", null, fmtTime(t.startUnixMicros / 1e6, true)),
            el("td", null, el("a", { href: `#/trace/${encodeURIComponent(t.traceId)}`, class: "trace-link" }, `${t.rootService}: ${t.rootName}`)),
            el("td", { class: "num" }, fmtMicros(t.durationMicros)),
            el("td", { class: "num" }, t.spanCount),
            el("td", { class: `num${t.errorCount ? " error-text" : ""}` }, t.errorCount),
            el("td", { class: "services" }, (t.services || []).join(", ")))))));
      } catch (err) {
        if (mySeq !== seq) return;
        setStatus("");
        showError(err);
      }
    }

    function setup() {
      $("trace-search").addEventListener("submit", (event) => {
        event.preventDefault();
        const min = $("trace-min").value.trim();
        const hash = hashFor("traces", {
          service: $("trace-service").value.trim(),
          minDuration: min,
          errors: $("trace-errors").checked,
          window: $("trace-window").value === "1h" ? "" : $("trace-window").value,
          limit: $("trace-limit").value === "20" ? "" : $("trace-limit").value,
        });
        // The same search again: no hash change, so search from here.
        if (location.hash === hash) enter(parseHash().params);
        else location.hash = hash;
      });
    }

    return { enter, setup };
  })();

  // ---------------------------------------------------------------------------------------------
  // The waterfall of one trace

  const waterfall = (() => {
    let seq = 0;
    let trace = null;
    let rows = [];
    let selected = -1;

    /** Spans in tree order (depth first, children by start), each with its depth. */
    function order(spans) {
      const byId = new Map();
      spans.forEach((s, i) => {
        if (!byId.has(s.spanId)) byId.set(s.spanId, []);
        byId.get(s.spanId).push(i);
      });
      const parentOf = spans.map((s, i) => {
        // A shared span (Zipkin's server half of a client span) hangs under its client half.
        if (s.shared) {
          const twin = (byId.get(s.spanId) || []).find((j) => j !== i && !spans[j].shared);
          if (twin !== undefined) return twin;
        }
        if (s.parentId) {
          const candidates = byId.get(s.parentId) || [];
          const p = candidates.find((j) => j !== i && !spans[j].shared) ?? candidates.find((j) => j !== i);
          if (p !== undefined) return p;
        }
        return -1;
      });
      const children = spans.map(() => []);
      const roots = [];
      parentOf.forEach((p, i) => (p >= 0 ? children[p].push(i) : roots.push(i)));
      const byStart = (a, b) => spans[a].startUnixMicros - spans[b].startUnixMicros || a - b;
      const result = [];
      const seen = new Set();
      const visit = (i, depth) => {
        if (seen.has(i)) return;
        seen.add(i);
        result.push({ span: spans[i], depth });
        for (const c of children[i].sort(byStart)) visit(c, depth + 1);
      };
      for (const r of roots.sort(byStart)) visit(r, 0);
      // Spans caught in a parent cycle: shown at the top level.
      spans.forEach((_, i) => visit(i, 0));
      return result;
    }

    async function enter(id) {
      const mySeq = ++seq;
      $("trace-title").textContent = `Trace ${id}`;
      $("trace-facts").textContent = "";
      clear($("waterfall"));
      clear($("span-details"));
      setStatus("Loading the trace…");
      try {
        const t = await api(`traces/${encodeURIComponent(id)}`);
        if (mySeq !== seq) return;
        trace = t;
        rows = order(t.spans || []);
        selected = -1;
        const services = [...new Set(rows.map((r) => r.span.service))];
        const errors = rows.filter((r) => r.span.error).length;
        $("trace-facts").textContent = `${fmtTime(t.startUnixMicros / 1e6, true)} · ${fmtMicros(t.durationMicros)} · ` +
          `${rows.length} span${rows.length === 1 ? "" : "s"} · ${services.length} service${services.length === 1 ? "" : "s"}` +
          (errors ? ` · ${errors} with errors` : "");
        setStatus("");
        draw();
        $("span-details").append(el("p", { class: "muted" }, "Select a span to see its tags."));
      } catch (err) {
        if (mySeq !== seq) return;
        setStatus("");
        showError(err);
      }
    }

    function draw() {
      const holder = $("waterfall");
      clear(holder);
      if (!trace) return;
      const width = Math.max(640, holder.clientWidth || 900);
      const rowH = 24;
      const head = 28;
      const labelW = Math.min(420, Math.round(width * 0.38));
      const barX = labelW + 10;
      const barW = width - barX - 70;
      const t0 = trace.startUnixMicros;
      const total = Math.max(1, trace.durationMicros, ...rows.map((r) => r.span.startUnixMicros + r.span.durationMicros - t0));
      const services = [...new Set(rows.map((r) => r.span.service))];
      const colour = (s) => `svc-${services.indexOf(s) % 10}`;
      const height = head + rows.length * rowH + 8;
      const root = svg("svg", { class: "waterfall-svg", viewBox: `0 0 ${width} ${height}`, width, height, role: "list", "aria-label": `Spans of trace ${trace.traceId}` });
      for (let i = 0; i <= 4; i++) {
        const x = barX + (barW * i) / 4;
        root.append(svg("line", { class: "wf-grid", x1: x, y1: head - 6, x2: x, y2: height }),
          svg("text", { class: "wf-tick", x, y: head - 10, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, i === 0 ? "0" : fmtMicros((total * i) / 4)));
      }
      rows.forEach((r, i) => {
        const s = r.span;
        const y = head + i * rowH;
        const x = barX + ((s.startUnixMicros - t0) / total) * barW;
        const w = Math.max(2, (s.durationMicros / total) * barW);
        const g = svg("g", {
          class: `span ${colour(s.service)}${s.error ? " error" : ""}${i === selected ? " selected" : ""}`,
          "data-span-id": s.spanId, "data-index": i, tabindex: 0, role: "listitem",
          "aria-label": `${s.service} ${s.name}, ${fmtMicros(s.durationMicros)}${s.error ? ", error" : ""}`,
        });
        g.append(svg("rect", { class: "span-row", x: 0, y, width, height: rowH }));
        const indent = 8 + r.depth * 14;
        const label = `${s.service}  ${s.name}`;
        g.append(svg("text", { class: "span-label", x: indent, y: y + 16 },
          svg("tspan", { class: "span-service" }, truncate(s.service, "600 12px", labelW - indent - 10)),
          svg("tspan", { class: "span-name", dx: 6 }, truncate(s.name, "12px", Math.max(20, labelW - indent - 16 - textWidth(s.service, "600 12px"))))));
        g.append(svg("rect", { class: "span-bar", x: x.toFixed(1), y: y + 5, width: w.toFixed(1), height: rowH - 10, rx: 2 }));
        const durText = fmtMicros(s.durationMicros) + (s.error ? "  error" : "");
        const after = x + w + 6;
        g.append(svg("text", { class: `span-dur${s.error ? " error-text" : ""}`, x: after + 60 > width ? x - 6 : after, y: y + 16, "text-anchor": after + 60 > width ? "end" : "start" }, durText));
        g.append(svg("title", null, `${label}\n${fmtMicros(s.durationMicros)} from +${fmtMicros(s.startUnixMicros - t0)}${s.error ? "\nerror" : ""}`));
        root.append(g);
      });
      holder.append(root);
    }

    function showSpan(i) {
      selected = i;
      for (const g of $("waterfall").querySelectorAll(".span")) g.classList.toggle("selected", Number(g.dataset.index) === i);
      const s = rows[i].span;
      const box = $("span-details");
      clear(box);
      const tags = Object.entries(s.tags || {}).sort((a, b) => (a[0] < b[0] ? -1 : 1));
      box.append(
        el("h3", null, s.name),
        el("dl", { class: "facts" }, [
          ["Service", s.service], ["Kind", s.kind], ["Start", `+${fmtMicros(s.startUnixMicros - trace.startUnixMicros)}`],
          ["Duration", fmtMicros(s.durationMicros)], ["Error", s.error ? "yes" : "no"], ["Span id", s.spanId],
          ["Parent id", s.parentId || "—"],
          s.remoteService ? ["Remote service", s.remoteService] : null,
          s.reporter ? ["Reported by", `${s.reporter.workload} (${s.reporter.role})`] : null,
          s.edge ? ["Graph edge", `${s.edge.source} → ${s.edge.target} (${s.edge.protocol}, ${s.edge.responseCode})`] : null,
        ].filter(Boolean).map(([k, v]) => [el("dt", null, k), el("dd", null, v)])),
        el("h4", null, "Tags"),
        tags.length
          ? el("table", { class: "tags" }, el("tbody", null, tags.map(([k, v]) => el("tr", null, el("th", { scope: "row" }, k), el("td", null, v)))))
          : el("p", { class: "muted" }, "No tags."),
        (s.annotations || []).length
          ? [el("h4", null, "Annotations"), el("ul", null, s.annotations.map((a) => el("li", null, `+${fmtMicros(a.timestamp - trace.startUnixMicros)} ${a.value}`)))]
          : null);
    }

    function setup() {
      const holder = $("waterfall");
      holder.addEventListener("click", (event) => {
        const g = event.target.closest(".span");
        if (g) showSpan(Number(g.dataset.index));
      });
      holder.addEventListener("keydown", (event) => {
        const g = event.target.closest(".span");
        if (!g) return;
        const i = Number(g.dataset.index);
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          showSpan(i);
        } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          event.preventDefault();
          const next = holder.querySelector(`.span[data-index="${i + (event.key === "ArrowDown" ? 1 : -1)}"]`);
          if (next) next.focus();
        }
      });
      let resizeTimer = null;
      window.addEventListener("resize", () => {
        clearTimeout(resizeTimer);
        resizeTimer = setTimeout(() => {
          if (route.view === "trace" && trace) {
            draw();
            if (selected >= 0) showSpan(selected);
          }
        }, 100);
      });
      $("trace-back").addEventListener("click", (event) => {
        // Back to where the trace was opened from when that was this page (the panel, the list).
        if (navigations > 0) {
          event.preventDefault();
          history.back();
        }
      });
    }

    return { enter, setup };
  })();

  // ---------------------------------------------------------------------------------------------
  // Start

  function start() {
    fontFamily = getComputedStyle(document.body).fontFamily || "sans-serif";
    guardTokenDialog();
    graphView.setupZoom();
    graphView.setupInteraction();
    traceSearch.setup();
    waterfall.setup();
    window.addEventListener("hashchange", () => {
      navigations++;
      onRoute();
    });
    if (!location.hash) history.replaceState(null, "", "#/graph");
    onRoute();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
