import { getJson, query, type SpanRecord, type TraceSummary, type TraceView } from '../api.js';
import { badge, fill, h, pairs, table } from '../dom.js';
import * as fmt from '../format.js';
import type { ViewContext, ViewFactory } from '../view.js';

function chip(service: string, color = fmt.serviceColor(service)): HTMLElement {
  return h('span', { class: 'chip', style: `--c: ${color}` }, service);
}

function attrValue(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export const tracesView: ViewFactory = (root, ctx) =>
  ctx.params[0] ? waterfall(root, ctx.params[0]) : traceList(root, ctx);

function traceList(root: HTMLElement, ctx: ViewContext) {
  const service = h(
    'select',
    { name: 'service', 'aria-label': 'Service' },
    h('option', { value: '' }, 'All services'),
  );
  const lookback = h(
    'select',
    { name: 'lookback', 'aria-label': 'Look back' },
    ['5m', '15m', '1h', '6h', '24h'].map((v) => h('option', { value: v }, `last ${v}`)),
  );
  const minDuration = h('input', {
    name: 'minDuration',
    'aria-label': 'Minimum duration',
    placeholder: 'min duration, e.g. 100ms',
    size: 18,
  });
  const limit = h(
    'select',
    { name: 'limit', 'aria-label': 'Limit' },
    ['20', '50', '100', '200'].map((v) => h('option', { value: v }, `${v} traces`)),
  );
  service.value = ctx.search.get('service') ?? '';
  lookback.value = ctx.search.get('lookback') ?? '1h';
  minDuration.value = ctx.search.get('minDuration') ?? '';
  limit.value = ctx.search.get('limit') ?? '50';
  const status = h('span', { class: 'muted', role: 'status' });
  const results = h('div', {});
  let refreshNow: () => void = () => {};
  const form = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      'aria-label': 'Find traces',
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        const q = query({
          service: service.value,
          lookback: lookback.value,
          minDuration: minDuration.value,
          limit: limit.value,
        });
        history.replaceState(null, '', `#/traces${q}`);
        refreshNow();
      },
    },
    service,
    lookback,
    minDuration,
    limit,
    h('button', { type: 'submit' }, 'Search'),
    status,
  );
  for (const el of [service, lookback, limit]) el.addEventListener('change', () => form.requestSubmit());
  fill(root, h('section', { class: 'card' }, h('h1', {}, 'Traces'), form, results));

  const render = (traces: TraceSummary[]) => {
    const longest = Math.max(1, ...traces.map((t) => t.durationUs));
    fill(
      results,
      table(
        'Traces',
        ['Started', 'Trace', 'Duration', 'Spans', 'Services', 'Errors'],
        traces.map((t) =>
          h(
            'tr',
            {
              class: `clickable ${t.errorCount ? 'failure' : ''}`,
              tabindex: 0,
              'data-trace-id': t.traceId,
              onclick: () => ctx.navigate(`#/traces/${t.traceId}`),
              onkeydown: (ev: Event) => {
                if ((ev as KeyboardEvent).key === 'Enter') ctx.navigate(`#/traces/${t.traceId}`);
              },
            },
            h('td', { class: 'mono' }, fmt.clock(t.startUs / 1000)),
            h(
              'td',
              {},
              h('a', { href: `#/traces/${t.traceId}` }, `${t.rootService}: ${t.rootName}`),
              h('div', { class: 'mono muted small' }, t.traceId),
            ),
            h(
              'td',
              { class: 'num' },
              h(
                'div',
                { class: 'duration-bar', 'aria-hidden': 'true' },
                h('span', { style: `width: ${Math.max(2, (100 * t.durationUs) / longest)}%` }),
              ),
              fmt.micros(t.durationUs),
            ),
            h('td', { class: 'num' }, String(t.spanCount)),
            h(
              'td',
              {},
              t.services.map((x) => chip(x)),
            ),
            h('td', { class: 'num' }, t.errorCount ? badge(String(t.errorCount), 'bad') : '0'),
          ),
        ),
        'No traces in this range. Proxies and apps send spans to the collector over OTLP (:4318 HTTP, :4317 gRPC).',
      ),
    );
  };

  const view = {
    intervalMs: 5000,
    async refresh(signal: AbortSignal) {
      const [services, found] = await Promise.all([
        getJson<{ services: string[] }>('/api/trace-services', signal),
        getJson<{ traces: TraceSummary[] }>(
          `/api/traces${query({
            service: service.value,
            lookback: lookback.value,
            minDuration: minDuration.value.trim(),
            limit: limit.value,
          })}`,
          signal,
        ).catch((err: Error) => {
          if (err.name === 'AbortError') throw err;
          fill(status, h('span', { class: 'error' }, err.message));
          return undefined;
        }),
      ]);
      const current = service.value;
      const names = [...new Set([...services.services, ...(current ? [current] : [])])].sort();
      fill(
        service,
        h('option', { value: '' }, 'All services'),
        names.map((n) => h('option', { value: n }, n)),
      );
      service.value = current;
      if (found) {
        fill(status, `${found.traces.length} traces · updated ${fmt.clock(Date.now())}`);
        render(found.traces);
      }
    },
  };
  refreshNow = () => {
    const controller = new AbortController();
    void view.refresh(controller.signal);
  };
  return view;
}

function waterfall(root: HTMLElement, traceId: string) {
  const expanded = new Set<string>();
  const box = h('section', { class: 'card' });
  fill(root, box);

  const spanDetails = (s: SpanRecord) =>
    h(
      'div',
      { class: 'span-details' },
      pairs('Span', [
        ['Span id', h('span', { class: 'mono' }, s.spanId)],
        ['Parent', h('span', { class: 'mono' }, s.parentSpanId ?? '–')],
        ['Kind', s.kind],
        ['Status', `${s.status.code}${s.status.message ? ` — ${s.status.message}` : ''}`],
        ['Start', fmt.dateTime(s.startUs / 1000)],
        ['Scope', s.scope ?? '–'],
      ]),
      table(
        'Attributes',
        ['Attribute', 'Value'],
        Object.entries(s.attributes)
          .sort((a, b) => a[0].localeCompare(b[0]))
          .map(([k, v]) =>
            h('tr', {}, h('td', { class: 'mono' }, k), h('td', { class: 'mono wrap' }, attrValue(v))),
          ),
        'No attributes',
      ),
      h('h4', {}, 'Resource'),
      table(
        'Resource attributes',
        ['Attribute', 'Value'],
        Object.entries(s.resource)
          .sort((a, b) => a[0].localeCompare(b[0]))
          .map(([k, v]) =>
            h('tr', {}, h('td', { class: 'mono' }, k), h('td', { class: 'mono wrap' }, attrValue(v))),
          ),
        'No resource attributes',
      ),
      s.events.length
        ? [
            h('h4', {}, 'Events'),
            table(
              'Events',
              ['Time', 'Event', 'Attributes'],
              s.events.map((e) =>
                h(
                  'tr',
                  {},
                  h('td', { class: 'mono' }, fmt.micros(e.timeUs - s.startUs)),
                  h('td', {}, e.name),
                  h('td', { class: 'mono wrap' }, JSON.stringify(e.attributes)),
                ),
              ),
            ),
          ]
        : null,
    );

  // Distinct colours within the trace, in the order services first appear.
  const colors = new Map<string, string>();
  const color = (service: string) => colors.get(service) ?? fmt.serviceColor(service);
  const render = (t: TraceView) => {
    for (const s of t.spans)
      if (!colors.has(s.service)) colors.set(s.service, fmt.serviceColor(s.service, colors.size));
    const total = Math.max(1, t.durationUs);
    const root0 = t.spans[0];
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) =>
      h('span', { style: `left: ${f * 100}%` }, fmt.micros(f * t.durationUs)),
    );
    const rows = t.spans.map((s) => {
      const left = (100 * (s.startUs - t.startUs)) / total;
      const width = Math.max(0.3, (100 * s.durationUs) / total);
      const open = expanded.has(s.spanId);
      const label = `${s.service} ${s.name} ${fmt.micros(s.durationUs)}`;
      const toggle = () => {
        if (expanded.has(s.spanId)) expanded.delete(s.spanId);
        else expanded.add(s.spanId);
        render(t);
      };
      return h(
        'li',
        {
          role: 'listitem',
          'aria-label': label,
          'data-service': s.service,
          'data-span-id': s.spanId,
          class: s.status.code === 'error' ? 'error' : undefined,
        },
        h(
          'button',
          { type: 'button', class: 'span-row', 'aria-expanded': String(open), onclick: toggle },
          h(
            'span',
            { class: 'span-name', style: `padding-left: ${s.depth * 14}px` },
            chip(s.service, color(s.service)),
            ' ',
            s.name,
            s.kind === 'server' || s.kind === 'client' ? h('span', { class: 'kind' }, s.kind) : null,
          ),
          h(
            'span',
            { class: 'span-track' },
            h('span', {
              class: 'span-bar',
              style: `left: ${left}%; width: ${width}%; --c: ${color(s.service)}`,
            }),
            h(
              'span',
              { class: 'span-time', style: `left: min(calc(${left + width}% + 4px), calc(100% - 64px))` },
              fmt.micros(s.durationUs),
            ),
          ),
        ),
        open ? spanDetails(s) : null,
      );
    });
    fill(
      box,
      h('p', {}, h('a', { href: '#/traces' }, '← Traces')),
      h('h1', {}, root0 ? `${root0.service}: ${root0.name}` : 'Trace'),
      pairs('Trace summary', [
        ['Trace id', h('span', { class: 'mono' }, t.traceId)],
        ['Started', fmt.dateTime(t.startUs / 1000)],
        ['Duration', fmt.micros(t.durationUs)],
        ['Spans', String(t.spans.length)],
        [
          'Services',
          h(
            'span',
            { 'aria-label': `${t.services.length} services` },
            `${t.services.length} `,
            t.services.map((x) => chip(x, color(x))),
          ),
        ],
      ]),
      h(
        'div',
        { class: 'waterfall-head', 'aria-hidden': 'true' },
        h('span', {}, 'Span'),
        h('span', { class: 'ruler' }, ticks),
      ),
      h('ol', { class: 'waterfall', role: 'list', 'aria-label': 'Trace waterfall' }, rows),
    );
  };

  return {
    intervalMs: 5000,
    async refresh(signal: AbortSignal) {
      try {
        render(await getJson<TraceView>(`/api/traces/${encodeURIComponent(traceId)}`, signal));
      } catch (err) {
        if ((err as Error).name === 'AbortError') throw err;
        fill(
          box,
          h('p', {}, h('a', { href: '#/traces' }, '← Traces')),
          h('h1', {}, 'Trace'),
          h('p', { class: 'error', role: 'alert' }, (err as Error).message),
        );
      }
    },
  };
}
