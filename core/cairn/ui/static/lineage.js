// The lineage graph: cytoscape draws it, dagre lays it out left to right (data flows that
// way). A node showing fewer neighbours than it has is "collapsed" (dashed): clicking it
// fetches its neighbours. Many runs (or versions) hanging off one node alone are grouped
// into one node: clicking the group shows them. Double-click opens a node's page.
"use strict";

(function () {
  const GROUP_MIN = 6; // at first, more siblings than this around a node become a group
  const GROUP_MIN_EXPANDED = 12; // after an expansion, the threshold is higher
  const container = document.getElementById("graph");
  if (!container || typeof cytoscape === "undefined") return;
  const data = JSON.parse(document.getElementById("lineage-data").textContent);
  const conf = JSON.parse(document.getElementById("lineage-conf").textContent);
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  const font = getComputedStyle(document.body).fontFamily;
  const groups = new Map(); // group node id -> the element JSON it stands for

  const measure = document.createElement("canvas").getContext("2d");
  function box(lines) {
    measure.font = `12px ${font}`;
    let width = 0;
    for (const line of lines) width = Math.max(width, measure.measureText(line).width);
    return { w: Math.ceil(width) + 28, h: 16 * lines.length + 16 };
  }

  function label(d) {
    const lines = [d.name || d.label];
    if (d.subtitle) lines.push(d.subtitle);
    if (d.hidden > 0) lines.push(`+${d.hidden} more`);
    return lines;
  }

  function nodeData(n) {
    const d = { ...n };
    const lines = label(d);
    const size = box(lines);
    return { ...d, text: lines.join("\n"), w: size.w, h: size.h };
  }

  const cy = cytoscape({
    container,
    minZoom: 0.15,
    maxZoom: 2.5,
    style: [
      {
        selector: "node",
        style: {
          label: "data(text)",
          "text-wrap": "wrap",
          "text-valign": "center",
          "text-halign": "center",
          "font-family": font,
          "font-size": 12,
          color: color("--text"),
          width: "data(w)",
          height: "data(h)",
          shape: "round-rectangle",
          "background-color": color("--version-soft"),
          "border-width": 1.5,
          "border-color": color("--version"),
        },
      },
      {
        selector: 'node[kind = "run"]',
        style: {
          "background-color": color("--run-soft"),
          "border-color": color("--run"),
          shape: "round-rectangle",
          "corner-radius": 16,
        },
      },
      {
        selector: 'node[kind = "group"]',
        style: {
          "background-color": color("--panel-2"),
          "border-color": color("--muted"),
          "border-style": "dotted",
          "border-width": 2,
          "font-weight": 600,
        },
      },
      { selector: "node.collapsed", style: { "border-style": "dashed", "border-width": 2 } },
      { selector: "node[?root]", style: { "border-width": 3.5 } },
      {
        selector: "node:selected",
        style: { "border-color": color("--accent"), "border-width": 3.5, "overlay-opacity": 0 },
      },
      {
        selector: "edge",
        style: {
          width: 1.6,
          "curve-style": "bezier",
          "target-arrow-shape": "triangle",
          "arrow-scale": 0.9,
          "line-color": "#8b96a1",
          "target-arrow-color": "#8b96a1",
          label: "data(kind_label)",
          "font-size": 9.5,
          "font-family": font,
          color: color("--muted"),
          "text-background-color": color("--panel"),
          "text-background-opacity": 1,
          "text-background-padding": 2,
          "text-rotation": "autorotate",
        },
      },
      {
        selector: 'edge[kind = "logged"]',
        style: { "line-color": "#0e9384", "target-arrow-color": "#0e9384" },
      },
      {
        selector: 'edge[kind = "contributed"]',
        style: { "line-color": "#d97706", "target-arrow-color": "#d97706", "line-style": "dashed" },
      },
    ],
  });

  const EDGE_LABEL = { logged: "logged", used: "used", contributed: "part" };

  function add(graph) {
    for (const n of graph.nodes) {
      const holder = groupOf(n.id); // a node about to get new edges leaves its group
      if (holder) unfold(cy.getElementById(holder));
    }
    const fresh = [];
    for (const n of graph.nodes) {
      if (cy.getElementById(n.id).length) continue;
      fresh.push({ group: "nodes", data: nodeData(n) });
    }
    for (const e of graph.edges) {
      if (cy.getElementById(e.id).length) continue;
      fresh.push({ group: "edges", data: { ...e, kind_label: EDGE_LABEL[e.kind] || e.kind } });
    }
    cy.add(fresh);
  }

  function groupOf(id) {
    for (const [gid, stash] of groups) {
      if (stash.nodes.some((n) => n.data.id === id)) return gid;
    }
    return null;
  }

  // hidden neighbours: degree (from the server) minus the distinct neighbours shown,
  // counting the members of a group as shown
  function refresh() {
    cy.nodes().forEach((node) => {
      const d = node.data();
      if (d.kind === "group" || d.degree === undefined) return;
      const shown = new Set();
      node.neighborhood("node").forEach((other) => {
        if (other.data("kind") === "group") {
          for (const m of groups.get(other.id()).nodes) shown.add(m.data.id);
        } else shown.add(other.id());
      });
      const hidden = Math.max(0, d.degree - shown.size);
      if (hidden !== d.hidden) {
        const next = nodeData({ ...d, hidden });
        node.data(next);
      }
      node.toggleClass("collapsed", hidden > 0);
    });
    container.dataset.nodes = String(cy.nodes().length);
    if (count) count.textContent = `${cy.nodes().length} nodes`;
  }

  // what hangs off `hub` through `start` alone: `start` and the few nodes behind it that
  // touch nothing else (a run and the version it logged); null if it reaches further
  function branch(start, hub) {
    const seen = new Set([start.id()]);
    const queue = [start];
    while (queue.length) {
      const node = queue.shift();
      for (const other of node.neighborhood("node")) {
        if (other.id() === hub.id()) {
          if (node.id() !== start.id()) return null; // a second way back to the hub
          continue;
        }
        if (seen.has(other.id())) continue;
        if (other.data("root") || other.data("kind") === "group") return null;
        seen.add(other.id());
        if (seen.size > 4) return null;
        queue.push(other);
      }
    }
    return cy.collection([...seen].map((id) => cy.getElementById(id)));
  }

  // siblings of one kind and family (runs of one job type, versions of one collection)
  // around a node, each with what hangs off it alone, fold into one group node when
  // there are more than `min` of them
  function group(min, except) {
    cy.nodes().forEach((hub) => {
      if (hub.removed() || hub.data("kind") === "group") return;
      const buckets = new Map();
      hub.connectedEdges().forEach((edge) => {
        const out = edge.source().id() === hub.id();
        const other = out ? edge.target() : edge.source();
        if (other.data("root") || other.data("kind") === "group" || except.has(other.id())) return;
        const nodes = branch(other, hub);
        if (!nodes) return;
        const key = `${out ? "out" : "in"}:${edge.data("kind")}:${other.data("kind")}:${other.data("family")}`;
        if (!buckets.has(key)) buckets.set(key, []);
        buckets.get(key).push({ other, edge, nodes, out });
      });
      for (const [key, members] of buckets) {
        if (members.length <= min) continue;
        const id = `group:${hub.id()}:${key}`;
        let all = cy.collection();
        for (const m of members) all = all.union(m.nodes);
        const edges = all.connectedEdges();
        groups.set(id, { nodes: all.jsons(), edges: edges.jsons() });
        cy.remove(all);
        const first = members[0];
        const noun = first.other.data("kind") === "run" ? "runs" : "versions";
        cy.add({
          group: "nodes",
          data: nodeData({ id, kind: "group", name: `${members.length} ${noun}`, subtitle: first.other.data("family") }),
        });
        const ekind = first.edge.data("kind");
        const [source, target] = first.out ? [hub.id(), id] : [id, hub.id()];
        cy.add({ group: "edges", data: { id: `${id}:edge`, source, target, kind: ekind, kind_label: EDGE_LABEL[ekind] } });
      }
    });
  }

  function unfold(node) {
    const stash = groups.get(node.id());
    groups.delete(node.id());
    cy.remove(node);
    cy.add([...stash.nodes, ...stash.edges.filter((e) => !cy.getElementById(e.data.id).length)]);
  }

  function explode(node) {
    unfold(node);
    refresh();
    layout();
  }

  let running = null;
  function layout() {
    if (running) running.stop();
    container.dataset.ready = "0";
    running = cy.layout({
      name: "dagre",
      rankDir: "LR",
      nodeSep: 18,
      rankSep: 56,
      edgeSep: 8,
      fit: true,
      padding: 28,
      animate: cy.nodes().length < 120,
      animationDuration: 250,
      stop: () => {
        // readable first: not larger than life, not smaller than 60% (Fit shows it all)
        if (cy.zoom() > 1.2) { cy.zoom(1.2); cy.center(); }
        if (cy.zoom() < 0.6) {
          cy.zoom(0.6);
          const root = cy.getElementById(data.root);
          cy.center(root.length ? root : undefined);
        }
        container.dataset.ready = "1";
      },
    });
    running.run();
  }

  const kicker = document.getElementById("node-kind");
  const title = document.getElementById("node-title");
  const detail = document.getElementById("node-detail");
  const open = document.getElementById("node-open");
  const expandButton = document.getElementById("node-expand");
  const count = document.getElementById("graph-count");
  let selected = null;

  function show(node) {
    selected = node;
    const d = node.data();
    kicker.textContent = d.kind;
    title.textContent = d.ref || d.name || d.label;
    const bits = [];
    if (d.subtitle) bits.push(d.subtitle);
    if (d.hidden > 0) bits.push(`${d.hidden} more not shown`);
    if (d.kind === "group") bits.push("click it to show them");
    detail.textContent = bits.join(" · ");
    if (d.url) {
      open.hidden = false;
      open.href = conf.base + d.url;
    } else open.hidden = true;
    expandButton.hidden = !(d.hidden > 0);
  }

  async function expand(node) {
    const d = node.data();
    const query = d.kind === "version" ? `version=${encodeURIComponent(d.ref)}` : `run=${encodeURIComponent(d.run_id)}`;
    container.dataset.ready = "0";
    const response = await fetch(`${conf.expand}?${query}`, { credentials: "same-origin" });
    if (!response.ok) {
      detail.textContent = `could not expand: ${response.status}`;
      container.dataset.ready = "1";
      return;
    }
    const around = await response.json();
    add(around);
    group(GROUP_MIN_EXPANDED, new Set([node.id()]));
    refresh();
    layout();
    if (selected && selected.id() === node.id()) show(node);
  }

  cy.on("tap", "node", (evt) => {
    const node = evt.target;
    if (node.data("kind") === "group") return explode(node);
    show(node);
    if (node.hasClass("collapsed")) expand(node);
  });
  cy.on("dbltap", "node", (evt) => {
    const url = evt.target.data("url");
    if (url) window.location.href = conf.base + url;
  });
  expandButton.addEventListener("click", () => { if (selected) expand(selected); });
  document.getElementById("fit").addEventListener("click", () => cy.fit(undefined, 28));

  add(data);
  group(GROUP_MIN, new Set());
  refresh();
  layout();
  const root = cy.getElementById(data.root);
  if (root.length) { root.select(); show(root); }

  // for people and tests poking at the page from the console
  window.cairnLineage = { cy, expand, explode, groups };
})();
