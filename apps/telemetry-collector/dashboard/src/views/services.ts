import uPlot from 'uplot';
import { type GraphNode, getJson, query, type SeriesResponse, type ServiceRow } from '../api.js';
import { badge, fill, h, pairs, table } from '../dom.js';
import * as fmt from '../format.js';
import type { ViewFactory } from '../view.js';

/** `#/services/<ns>/<name>` for a service, `#/services/workload/<ns>/<name>` for a workload (`_` = no namespace). */
export function serviceHash(n: Pick<GraphNode, 'kind' | 'namespace' | 'name'>): string {
  const ns = encodeURIComponent(n.namespace || '_');
  const name = encodeURIComponent(n.name);
  return n.kind === 'workload' ? `#/services/workload/${ns}/${name}` : `#/services/${ns}/${name}`;
}

interface ChartSpec {
  title: string;
  unit: (v: number | null) => string;
  series: { label: string; color: string }[];
  pick: (s: SeriesResponse) => (number | null)[][];
  /** Fixed lower bound of the y axis. */
  min?: number;
}

const CHARTS: ChartSpec[] = [
  {
    title: 'Traffic (requests/s)',
    unit: (v) => fmt.rate(v),
    series: [{ label: 'requests/s', color: '#245c8f' }],
    pick: (s) => [s.requestsPerSecond],
  },
  {
    title: 'Errors (5xx and gRPC errors, % of requests)',
    unit: (v) => (v === null ? '–' : `${v.toFixed(v < 10 ? 1 : 0)}%`),
    series: [{ label: 'error %', color: '#d62828' }],
    pick: (s) => [s.errorRate.map((v) => (v === null ? null : v * 100))],
  },
  {
    title: 'Latency (ms)',
    unit: (v) => fmt.ms(v),
    series: [
      { label: 'p50', color: '#3f8f5f' },
      { label: 'p90', color: '#e08a00' },
      { label: 'p99', color: '#8e44ad' },
    ],
    pick: (s) => [s.p50, s.p90, s.p99],
  },
  {
    title: 'Throughput (bytes/s)',
    unit: (v) => fmt.bytes(v),
    series: [
      { label: 'request bytes/s', color: '#3a6ea5' },
      { label: 'response bytes/s', color: '#16a085' },
    ],
    pick: (s) => [s.requestBytesPerSecond, s.responseBytesPerSecond],
  },
];

class Chart {
  private plot: uPlot;
  private readonly observer: ResizeObserver;

  constructor(
    readonly host: HTMLElement,
    readonly spec: ChartSpec,
  ) {
    const opts: uPlot.Options = {
      width: Math.max(260, host.clientWidth),
      height: 180,
      cursor: { drag: { x: false, y: false } },
      legend: { show: true },
      scales: {
        x: { time: true },
        y: { range: (_u, _min, max) => [spec.min ?? 0, max > 0 ? max * 1.15 : 1] },
      },
      axes: [
        { stroke: '#52606d', grid: { stroke: '#eef1f4' } },
        {
          stroke: '#52606d',
          grid: { stroke: '#eef1f4' },
          size: 70,
          values: (_u, vals) => vals.map((v) => spec.unit(v)),
        },
      ],
      series: [
        {},
        ...spec.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: spec.series.length === 1 ? `${s.color}22` : undefined,
          spanGaps: false,
          points: { show: true, size: 4, fill: s.color },
          value: (_u: uPlot, v: number | null) => spec.unit(v),
        })),
      ],
    };
    this.plot = new uPlot(opts, [[], ...spec.series.map(() => [])], host);
    this.observer = new ResizeObserver(() =>
      this.plot.setSize({ width: Math.max(260, host.clientWidth), height: 180 }),
    );
    this.observer.observe(host);
  }

  update(s: SeriesResponse): void {
    const times = s.times.map((t) => t / 1000);
    this.plot.setData([times, ...this.spec.pick(s)] as uPlot.AlignedData);
  }

  destroy(): void {
    this.observer.disconnect();
    this.plot.destroy();
  }
}

export const servicesView: ViewFactory = (root, ctx) => {
  // #/services, #/services/<ns>/<name>, #/services/workload/<ns>/<name>
  const isWorkload = ctx.params[0] === 'workload';
  const params = isWorkload ? ctx.params.slice(1) : ctx.params;
  const selected =
    params.length >= 2 ? { namespace: params[0] === '_' ? '' : params[0]!, name: params[1]! } : undefined;
  const listBox = h('section', { class: 'card services-list', 'aria-label': 'Services' });
  const detailBox = h('section', { class: 'card service-detail', 'aria-label': 'Golden signals' });
  fill(
    root,
    h('h1', { class: 'visually-hidden' }, 'Services'),
    h('div', { class: 'services-view' }, listBox, detailBox),
  );

  const charts: Chart[] = [];
  const summaryBox = h('div', {});
  if (selected) {
    const chartGrid = h('div', { class: 'charts' });
    const heading = isWorkload ? 'Workload' : 'Service';
    fill(
      detailBox,
      h(
        'h2',
        {},
        `${heading} `,
        h(
          'span',
          { class: 'mono' },
          selected.namespace ? `${selected.name}.${selected.namespace}` : selected.name,
        ),
      ),
      h(
        'p',
        { class: 'links' },
        h('a', { href: `#/traces?service=${encodeURIComponent(selected.name)}` }, 'Traces'),
        h('a', { href: `#/logs?service=${encodeURIComponent(selected.name)}` }, 'Access logs'),
      ),
      summaryBox,
      chartGrid,
    );
    for (const spec of CHARTS) {
      const host = h('figure', { class: 'chart', 'aria-label': spec.title }, h('figcaption', {}, spec.title));
      chartGrid.appendChild(host);
      charts.push(new Chart(host, spec));
    }
  } else {
    fill(
      detailBox,
      h('h2', {}, 'Golden signals'),
      h(
        'p',
        { class: 'muted' },
        'Pick a service to chart its traffic, errors, latency and throughput over the window.',
      ),
    );
  }

  const renderList = (rows: ServiceRow[], window: string) => {
    fill(
      listBox,
      h('h2', {}, 'Services ', h('span', { class: 'muted' }, `(${window})`)),
      table(
        'Services',
        ['Service', 'Requests/s', 'Errors', 'p99', 'mTLS'],
        rows.map((s) => {
          const current =
            selected && !isWorkload && s.name === selected.name && s.namespace === selected.namespace;
          const state = fmt.health(s.errorRate);
          return h(
            'tr',
            { class: `clickable ${current ? 'current' : ''}`, 'aria-selected': String(Boolean(current)) },
            h(
              'td',
              {},
              h(
                'a',
                { href: serviceHash({ kind: 'service', namespace: s.namespace, name: s.name }) },
                s.name,
              ),
              s.namespace ? h('span', { class: 'muted' }, ` .${s.namespace}`) : null,
            ),
            h('td', { class: 'num' }, fmt.rate(s.requestsPerSecond)),
            h('td', { class: `num ${state}` }, fmt.percent(s.errorRate)),
            h('td', { class: 'num' }, fmt.ms(s.p99)),
            h(
              'td',
              {},
              s.mtls === 'full'
                ? badge('on', 'ok')
                : s.mtls === 'partial'
                  ? badge('partial', 'warn')
                  : s.mtls === 'none'
                    ? badge('off', 'bad')
                    : badge('–', 'muted'),
            ),
          );
        }),
        'No services seen yet',
      ),
    );
  };

  return {
    intervalMs: 5000,
    async refresh(signal) {
      const list = getJson<{ window: string; services: ServiceRow[] }>(
        `/api/services${query({ window: ctx.window() })}`,
        signal,
      );
      if (selected) {
        // Charts show three times the window for context, at least 15 minutes.
        const seconds = Math.max(900, 3 * (parseWindow(ctx.window()) / 1000));
        const s = await getJson<SeriesResponse>(
          `/api/metrics/${isWorkload ? 'workload' : 'service'}${query({
            namespace: selected.namespace,
            name: selected.name,
            window: `${seconds}s`,
          })}`,
          signal,
        );
        for (const c of charts) c.update(s);
        const t = s.summary;
        fill(
          summaryBox,
          pairs('Window totals', [
            ['Requests/s', fmt.rate(t.requestsPerSecond)],
            ['Requests', String(Math.round(t.requests))],
            ['Error rate', fmt.percent(t.errorRate)],
            ['p50', fmt.ms(t.latencyMs.p50)],
            ['p90', fmt.ms(t.latencyMs.p90)],
            ['p99', fmt.ms(t.latencyMs.p99)],
            ['mTLS', t.mtls.percent === null ? '–' : `${Math.round(t.mtls.percent)}%`],
          ]),
        );
      }
      const l = await list;
      renderList(l.services, l.window);
    },
    destroy() {
      for (const c of charts) c.destroy();
    },
  };
};

function parseWindow(w: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(w);
  if (!m) return 300_000;
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
}
