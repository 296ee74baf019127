import cytoscape, { type Core, type ElementDefinition, type StylesheetJson } from 'cytoscape';
import { type GraphEdge, type GraphNode, type GraphResponse, getJson, query } from '../api.js';
import { badge, fill, h, table } from '../dom.js';
import * as fmt from '../format.js';
import type { ViewFactory } from '../view.js';
import { serviceHash } from './services.js';

declare global {
  interface Window {
    /** The live cytoscape instance, for debugging and for browser tests that click on the canvas. */
    mizzenGraph?: Core;
  }
}

const COLORS = {
  healthy: '#3f8f5f',
  degraded: '#e08a00',
  failure: '#d62828',
  idle: '#aab4be',
  tcp: '#3a6ea5',
};

/** Whether this browser has a glyph for the lock emoji (headless machines often lack emoji fonts). */
function hasLockGlyph(): boolean {
  const ctx = document.createElement('canvas').getContext('2d');
  if (!ctx) return false;
  ctx.font = '16px sans-serif';
  return ctx.measureText('\u{1F512}').width !== ctx.measureText('\u{10FFFD}').width;
}

const LOCK = hasLockGlyph() ? '\u{1F512} mTLS' : 'mTLS';

export function lockIcon(): SVGSVGElement {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('width', '14');
  svg.setAttribute('height', '14');
  svg.setAttribute('aria-hidden', 'true');
  svg.classList.add('lock');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', 'M4 7V5a4 4 0 0 1 8 0v2h1v8H3V7h1zm2 0h4V5a2 2 0 0 0-4 0v2z');
  path.setAttribute('fill', 'currentColor');
  svg.appendChild(path);
  return svg;
}

function edgeHealth(e: GraphEdge): string {
  if (e.requests === 0 && e.tcp) return 'tcp';
  return fmt.health(e.errorRate);
}

function edgeLabel(e: GraphEdge): string {
  const lines: string[] = [];
  if (e.requests > 0 || e.requestsPerSecond > 0) {
    lines.push(`${fmt.rate(e.requestsPerSecond)} · ${fmt.percent(e.errorRate)} err`);
    lines.push(`p99 ${fmt.ms(e.latencyMs.p99)}`);
  } else if (e.tcp) {
    lines.push(fmt.bytes(e.tcp.sentBytesPerSecond + e.tcp.receivedBytesPerSecond));
  }
  if (e.mtls.status === 'full') lines.push(LOCK);
  else if (e.mtls.status === 'partial') lines.push(`${LOCK} ${Math.round(e.mtls.percent ?? 0)}%`);
  return lines.join('\n');
}

function nodeLabel(n: GraphNode): string {
  if (n.kind === 'unknown') return 'unknown';
  const name =
    n.kind === 'workload' && n.version && !n.name.endsWith(n.version) ? `${n.name} (${n.version})` : n.name;
  return n.namespace ? `${name}\n${n.namespace}` : name;
}

function nodeData(n: GraphNode): Record<string, unknown> {
  return {
    id: n.id,
    label: nodeLabel(n),
    kind: n.kind,
    gateway: n.gateway ?? false,
    meshed: n.meshed,
    health: fmt.health(n.inbound.errorRate),
  };
}

function edgeData(e: GraphEdge): Record<string, unknown> {
  return {
    id: e.id,
    source: e.source,
    target: e.target,
    label: edgeLabel(e),
    health: edgeHealth(e),
    mtls: e.mtls.status === 'full' || e.mtls.status === 'partial',
    width: 1.5 + Math.min(5, Math.log10(1 + e.requestsPerSecond) * 2.5),
  };
}

const STYLE: StylesheetJson = [
  {
    selector: 'node',
    style: {
      label: 'data(label)',
      'text-valign': 'bottom',
      'text-halign': 'center',
      'text-margin-y': 5,
      'text-wrap': 'wrap',
      'text-max-width': '140px',
      'font-size': 11,
      'font-family': 'system-ui, -apple-system, "Segoe UI", sans-serif',
      color: '#1f2933',
      'background-color': '#ffffff',
      'border-width': 2,
      'border-color': '#52606d',
      width: 30,
      height: 30,
    },
  },
  { selector: 'node[kind = "workload"]', style: { shape: 'ellipse' } },
  { selector: 'node[kind = "service"]', style: { shape: 'round-triangle', 'background-color': '#e8f0fa' } },
  {
    selector: 'node[kind = "unknown"]',
    style: { shape: 'diamond', 'border-style': 'dashed', 'border-color': '#9aa5b1', color: '#616e7c' },
  },
  {
    selector: 'node[?gateway]',
    style: { shape: 'round-pentagon', 'background-color': '#f3ecfb', width: 34, height: 34 },
  },
  { selector: 'node[health = "degraded"]', style: { 'border-color': COLORS.degraded, 'border-width': 3 } },
  { selector: 'node[health = "failure"]', style: { 'border-color': COLORS.failure, 'border-width': 3 } },
  {
    selector: 'node:selected',
    style: { 'overlay-color': '#245c8f', 'overlay-opacity': 0.18, 'overlay-padding': 6 },
  },
  {
    selector: 'edge',
    style: {
      width: 'data(width)',
      'curve-style': 'bezier',
      'target-arrow-shape': 'triangle',
      'arrow-scale': 0.9,
      'line-color': COLORS.healthy,
      'target-arrow-color': COLORS.healthy,
      label: 'data(label)',
      'text-wrap': 'wrap',
      'font-size': 9.5,
      'font-family': 'system-ui, -apple-system, "Segoe UI", sans-serif',
      color: '#323f4b',
      'text-background-color': '#ffffff',
      'text-background-opacity': 0.9,
      'text-background-padding': '2px',
      'text-background-shape': 'roundrectangle',
    },
  },
  {
    selector: 'edge[health = "idle"]',
    style: { 'line-color': COLORS.idle, 'target-arrow-color': COLORS.idle },
  },
  { selector: 'edge[health = "tcp"]', style: { 'line-color': COLORS.tcp, 'target-arrow-color': COLORS.tcp } },
  {
    selector: 'edge[health = "degraded"]',
    style: { 'line-color': COLORS.degraded, 'target-arrow-color': COLORS.degraded },
  },
  {
    selector: 'edge[health = "failure"]',
    style: { 'line-color': COLORS.failure, 'target-arrow-color': COLORS.failure, color: COLORS.failure },
  },
  {
    selector: 'edge:selected',
    style: { 'overlay-color': '#245c8f', 'overlay-opacity': 0.2, 'overlay-padding': 5 },
  },
];

function statRow(label: string, value: Node | string): HTMLElement[] {
  return [h('dt', {}, label), h('dd', {}, value)];
}

function mtlsText(e: { mtls: GraphEdge['mtls'] }): HTMLElement {
  switch (e.mtls.status) {
    case 'full':
      return h('span', { class: 'mtls on' }, lockIcon(), ' mutual TLS');
    case 'partial':
      return h(
        'span',
        { class: 'mtls partial' },
        lockIcon(),
        ` ${Math.round(e.mtls.percent ?? 0)}% mutual TLS`,
      );
    case 'none':
      return h('span', { class: 'mtls off' }, 'plaintext');
    default:
      return h('span', { class: 'muted' }, 'unknown (source-reported)');
  }
}

function breakdown(label: string, counts: Record<string, number>, total: number): HTMLElement | null {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return null;
  return h(
    'div',
    {},
    h('h3', {}, label),
    table(
      label,
      [label === 'Response codes' ? 'Code' : 'Flags', 'Requests', 'Share'],
      entries.map(([k, n]) =>
        h(
          'tr',
          { class: k.startsWith('5') ? 'bad' : undefined },
          h('td', {}, k),
          h('td', { class: 'num' }, String(Math.round(n))),
          h('td', { class: 'num' }, fmt.percent(total ? n / total : null)),
        ),
      ),
    ),
  );
}

function describeNode(nodes: Map<string, GraphNode>, id: string): string {
  const n = nodes.get(id);
  if (!n) return id;
  return n.kind === 'unknown' ? 'unknown' : n.name;
}

export const graphView: ViewFactory = (root, ctx) => {
  const canvas = h('div', { class: 'graph-canvas', role: 'img', 'aria-label': 'Service graph' });
  const empty = h('div', { class: 'graph-empty', hidden: true });
  const updated = h('span', { class: 'muted', 'aria-live': 'off' });
  const details = h('aside', { class: 'side', role: 'region', 'aria-label': 'Selection details' });
  const edgesBox = h('section', { class: 'card', 'aria-label': 'Edges' });
  const legend = h(
    'div',
    { class: 'legend', 'aria-label': 'Legend' },
    h('span', {}, h('i', { class: 'shape circle' }), 'workload'),
    h('span', {}, h('i', { class: 'shape triangle' }), 'service'),
    h('span', {}, h('i', { class: 'shape pentagon' }), 'gateway'),
    h('span', {}, h('i', { class: 'line healthy' }), 'OK'),
    h('span', {}, h('i', { class: 'line degraded' }), 'some errors'),
    h('span', {}, h('i', { class: 'line failure' }), `≥ ${fmt.ERROR_FAILURE * 100}% errors`),
    h('span', {}, lockIcon(), 'mTLS'),
  );
  const fitButton = h('button', { type: 'button', onclick: () => cy.fit(undefined, 40) }, 'Fit');
  const relayout = h('button', { type: 'button', onclick: () => layout(true) }, 'Re-layout');
  fill(
    root,
    h('h1', { class: 'visually-hidden' }, 'Service graph'),
    h(
      'section',
      { class: 'graph-view' },
      h(
        'div',
        { class: 'graph-main card' },
        h('div', { class: 'toolbar' }, legend, h('span', { class: 'spacer' }), updated, fitButton, relayout),
        h('div', { class: 'graph-stage' }, canvas, empty),
      ),
      details,
    ),
    edgesBox,
  );

  const cy = cytoscape({
    container: canvas,
    style: STYLE,
    wheelSensitivity: 0.3,
    minZoom: 0.2,
    maxZoom: 3,
    boxSelectionEnabled: false,
    selectionType: 'single',
  });
  window.mizzenGraph = cy;

  let data: GraphResponse | undefined;
  let selected: string | undefined;
  let laidOut = false;

  const layout = (fit: boolean) => {
    if (cy.nodes().empty()) return;
    const roots = cy.nodes().filter((n) => n.indegree(false) === 0);
    cy.layout({
      name: 'breadthfirst',
      directed: true,
      roots: roots.nonempty() ? roots.map((n) => n.id()) : undefined,
      spacingFactor: 1.1,
      padding: 30,
      animate: false,
      fit,
      // Breadth-first lays levels top to bottom; traffic reads better left to right.
      transform: (_node, pos) => ({ x: pos.y * 2.2, y: pos.x * 0.7 }),
    }).run();
    if (fit) cy.fit(undefined, 40);
    laidOut = true;
  };

  const select = (id: string | undefined) => {
    selected = id;
    cy.elements().unselect();
    if (id) cy.getElementById(id).select();
    renderDetails();
    for (const row of edgesBox.querySelectorAll<HTMLTableRowElement>('tr[data-edge-id]')) {
      row.setAttribute('aria-selected', String(row.dataset.edgeId === id));
    }
  };

  cy.on('tap', 'edge', (evt) => select(evt.target.id()));
  cy.on('tap', 'node', (evt) => select(evt.target.id()));
  cy.on('tap', (evt) => {
    if (evt.target === cy) select(undefined);
  });

  const renderDetails = () => {
    if (!data || !selected) {
      fill(
        details,
        h('h2', {}, 'Details'),
        h(
          'p',
          { class: 'muted' },
          'Select an edge or a node in the graph (or a row in the edge table) to see its traffic.',
        ),
        data ? summary(data) : null,
      );
      return;
    }
    const nodes = new Map(data.nodes.map((n) => [n.id, n]));
    const edge = data.edges.find((e) => e.id === selected);
    if (edge) {
      fill(details, edgeDetails(edge, nodes));
      return;
    }
    const node = nodes.get(selected);
    if (node) fill(details, nodeDetails(node, data));
    else
      fill(
        details,
        h('h2', {}, 'Details'),
        h('p', { class: 'muted' }, 'No traffic for the selection in this window.'),
      );
  };

  const summary = (g: GraphResponse) => {
    const failing = g.edges.filter((e) => fmt.health(e.errorRate) === 'failure');
    const mtls = g.edges.filter((e) => e.mtls.status === 'full').length;
    return h(
      'dl',
      { class: 'stats' },
      statRow('Nodes', String(g.nodes.length)),
      statRow('Edges', String(g.edges.length)),
      statRow('Failing edges', failing.length ? badge(String(failing.length), 'bad') : '0'),
      statRow('Edges with mTLS', `${mtls} of ${g.edges.length}`),
    );
  };

  const edgeDetails = (e: GraphEdge, nodes: Map<string, GraphNode>) => {
    const target = nodes.get(e.target);
    const serviceLink =
      target?.kind === 'service'
        ? h('a', { href: serviceHash(target) }, 'Golden signals of ', target.name)
        : target?.kind === 'workload'
          ? h('a', { href: serviceHash(target) }, 'Golden signals of ', target.name)
          : null;
    const health = fmt.health(e.errorRate);
    return h(
      'div',
      { 'data-edge': e.id },
      h('h2', {}, describeNode(nodes, e.source), ' → ', describeNode(nodes, e.target)),
      h(
        'p',
        {},
        health === 'failure'
          ? badge('failing', 'bad')
          : health === 'degraded'
            ? badge('degraded', 'warn')
            : health === 'healthy'
              ? badge('healthy', 'ok')
              : badge('no requests', 'muted'),
        ' ',
        e.protocols.map((p) => badge(p, 'info')),
      ),
      h(
        'dl',
        { class: 'stats', 'aria-label': 'Edge metrics' },
        statRow('Requests/s', fmt.rate(e.requestsPerSecond)),
        // The rate is over the time the proxies were observed, which is less than the window after a (re)start.
        statRow('Requests', `${Math.round(e.requests)} in ${fmt.seconds(e.observedSeconds)} observed`),
        statRow('Error rate', fmt.percent(e.errorRate)),
        statRow('Latency p50', fmt.ms(e.latencyMs.p50)),
        statRow('Latency p90', fmt.ms(e.latencyMs.p90)),
        statRow('Latency p99', fmt.ms(e.latencyMs.p99)),
        statRow('Mean latency', fmt.ms(e.latencyMs.mean)),
        statRow('Security', mtlsText(e)),
        statRow('Request bytes', fmt.bytes(e.requestBytesPerSecond)),
        statRow('Response bytes', fmt.bytes(e.responseBytesPerSecond)),
        e.tcp ? statRow('TCP sent', fmt.bytes(e.tcp.sentBytesPerSecond)) : null,
        e.tcp ? statRow('TCP received', fmt.bytes(e.tcp.receivedBytesPerSecond)) : null,
        e.tcp ? statRow('TCP connections', fmt.rate(e.tcp.connectionsOpenedPerSecond)) : null,
        statRow('Reported by', e.reporters.join(', ') || '–'),
      ),
      breakdown('Response codes', e.responseCodes, e.requests),
      breakdown('Response flags', e.responseFlags, e.requests),
      h('p', { class: 'links' }, serviceLink),
    );
  };

  const nodeDetails = (n: GraphNode, g: GraphResponse) => {
    const incoming = g.edges.filter((e) => e.target === n.id);
    const outgoing = g.edges.filter((e) => e.source === n.id);
    const nodes = new Map(g.nodes.map((x) => [x.id, x]));
    const metricsHref = n.kind === 'unknown' ? undefined : serviceHash(n);
    const traceService = n.app ?? n.name;
    return h(
      'div',
      { 'data-node': n.id },
      h('h2', {}, n.kind === 'unknown' ? 'Unknown source' : n.name),
      h(
        'p',
        {},
        badge(n.gateway ? 'gateway' : n.kind, 'info'),
        ' ',
        n.namespace ? badge(`ns ${n.namespace}`, 'muted') : null,
        ' ',
        n.kind === 'workload' ? (n.meshed ? badge('sidecar', 'ok') : badge('no sidecar', 'warn')) : null,
        n.version ? [' ', badge(n.version, 'muted')] : null,
      ),
      h(
        'dl',
        { class: 'stats', 'aria-label': 'Node metrics' },
        n.host ? statRow('Host', n.host) : null,
        statRow('Inbound requests/s', fmt.rate(n.inbound.requestsPerSecond)),
        statRow('Inbound error rate', fmt.percent(n.inbound.errorRate)),
        statRow('Inbound p99', fmt.ms(n.inbound.latencyMs.p99)),
        statRow('Outbound requests/s', fmt.rate(n.outboundRequestsPerSecond)),
        statRow('Callers', incoming.map((e) => describeNode(nodes, e.source)).join(', ') || '–'),
        statRow('Calls', outgoing.map((e) => describeNode(nodes, e.target)).join(', ') || '–'),
      ),
      h(
        'p',
        { class: 'links' },
        metricsHref ? h('a', { href: metricsHref }, 'Golden signals') : null,
        n.kind !== 'unknown'
          ? h('a', { href: `#/traces?service=${encodeURIComponent(traceService)}` }, 'Traces')
          : null,
      ),
    );
  };

  const renderEdges = (g: GraphResponse) => {
    const nodes = new Map(g.nodes.map((n) => [n.id, n]));
    const rows = [...g.edges]
      .sort((a, b) => b.requestsPerSecond - a.requestsPerSecond)
      .map((e) => {
        const healthState = fmt.health(e.errorRate);
        const row = h(
          'tr',
          {
            'data-edge-id': e.id,
            'data-health': healthState,
            tabindex: 0,
            'aria-selected': String(e.id === selected),
            class: `clickable ${healthState}`,
            onclick: () => select(e.id),
            onkeydown: (ev: Event) => {
              if ((ev as KeyboardEvent).key === 'Enter' || (ev as KeyboardEvent).key === ' ') {
                ev.preventDefault();
                select(e.id);
              }
            },
          },
          h('td', {}, describeNode(nodes, e.source)),
          h('td', {}, describeNode(nodes, e.target)),
          h('td', { class: 'num' }, fmt.rate(e.requestsPerSecond)),
          h('td', { class: `num ${healthState}` }, fmt.percent(e.errorRate)),
          h('td', { class: 'num' }, fmt.ms(e.latencyMs.p99)),
          h('td', {}, e.mtls.status === 'full' || e.mtls.status === 'partial' ? mtlsText(e) : e.mtls.status),
        );
        return row;
      });
    fill(
      edgesBox,
      h('h2', {}, 'Edges ', h('span', { class: 'muted' }, `(${g.window} window)`)),
      table(
        'Edges',
        ['From', 'To', 'Requests/s', 'Errors', 'p99', 'Security'],
        rows,
        'No traffic in this window',
      ),
    );
  };

  return {
    intervalMs: 2000,
    async refresh(signal) {
      let g: GraphResponse;
      try {
        g = await getJson<GraphResponse>(`/api/graph${query({ window: ctx.window() })}`, signal);
      } catch (err) {
        if ((err as Error).name === 'AbortError') throw err;
        fill(updated, h('span', { class: 'error' }, (err as Error).message));
        return;
      }
      data = g;
      const ids = new Set<string>([...g.nodes.map((n) => n.id), ...g.edges.map((e) => e.id)]);
      let changed = false;
      cy.batch(() => {
        cy.elements().forEach((el) => {
          if (!ids.has(el.id())) {
            el.remove();
            changed = true;
          }
        });
        const add: ElementDefinition[] = [];
        for (const n of g.nodes) {
          const el = cy.getElementById(n.id);
          if (el.empty()) add.push({ group: 'nodes', data: nodeData(n) });
          else el.data(nodeData(n));
        }
        if (add.length) {
          cy.add(add);
          changed = true;
        }
        const edges: ElementDefinition[] = [];
        for (const e of g.edges) {
          const el = cy.getElementById(e.id);
          if (el.empty()) edges.push({ group: 'edges', data: edgeData(e) });
          else el.data(edgeData(e));
        }
        if (edges.length) {
          cy.add(edges);
          changed = true;
        }
      });
      if (changed) layout(!laidOut || cy.nodes().length < 40);
      canvas.setAttribute(
        'aria-label',
        `Service graph over ${g.window}: ${g.nodes.length} nodes, ${g.edges.length} edges`,
      );
      empty.hidden = g.nodes.length > 0;
      fill(
        empty,
        h('strong', {}, 'No mesh traffic yet.'),
        h(
          'p',
          {},
          `Nothing was reported in the last ${g.window}. The graph fills in after two scrapes of each proxy's /stats/prometheus.`,
        ),
      );
      fill(updated, `Updated ${fmt.clock(g.toMs)}`);
      if (selected && !ids.has(selected)) selected = undefined;
      if (selected) cy.getElementById(selected).select();
      renderDetails();
      renderEdges(g);
    },
    destroy() {
      cy.destroy();
      if (window.mizzenGraph === cy) window.mizzenGraph = undefined;
    },
  };
};
