import { getJson, type LogRecord, query } from '../api.js';
import { fill, h, table } from '../dom.js';
import * as fmt from '../format.js';
import type { ViewFactory } from '../view.js';

type Fields = Record<string, unknown>;

/** Envoy's access-log fields: from the JSON body, or from attributes when the body is plain text. */
function fields(log: LogRecord): Fields {
  const body =
    log.body && typeof log.body === 'object' && !Array.isArray(log.body) ? (log.body as Fields) : {};
  return { ...log.attributes, ...body };
}

function text(f: Fields, ...keys: string[]): string {
  for (const k of keys) {
    const v = f[k];
    if (v !== undefined && v !== null && v !== '' && v !== '-') return String(v);
  }
  return '';
}

export const logsView: ViewFactory = (root, ctx) => {
  const service = h('input', { name: 'service', 'aria-label': 'Service', placeholder: 'service', size: 16 });
  const search = h('input', {
    name: 'q',
    'aria-label': 'Text',
    placeholder: 'text, e.g. 503 or /reviews',
    size: 24,
  });
  const lookback = h(
    'select',
    { name: 'lookback', 'aria-label': 'Look back' },
    ['5m', '15m', '1h', '6h', '24h'].map((v) => h('option', { value: v }, `last ${v}`)),
  );
  service.value = ctx.search.get('service') ?? '';
  search.value = ctx.search.get('q') ?? '';
  lookback.value = ctx.search.get('lookback') ?? '15m';
  const traceId = ctx.search.get('traceId') ?? '';
  const status = h('span', { class: 'muted', role: 'status' });
  const results = h('div', {});
  const expanded = new Set<string>();
  let refreshNow = () => {};
  const form = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      'aria-label': 'Filter access logs',
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        history.replaceState(
          null,
          '',
          `#/logs${query({ service: service.value, q: search.value, lookback: lookback.value, traceId })}`,
        );
        refreshNow();
      },
    },
    service,
    search,
    lookback,
    h('button', { type: 'submit' }, 'Filter'),
    traceId ? h('span', { class: 'mono small' }, `trace ${traceId}`) : null,
    status,
  );
  lookback.addEventListener('change', () => form.requestSubmit());
  fill(root, h('section', { class: 'card' }, h('h1', {}, 'Access logs'), form, results));

  const render = (logs: LogRecord[]) => {
    fill(
      results,
      table(
        'Access logs',
        ['Time', 'Service', 'Request', 'Code', 'Flags', 'Duration', 'Upstream', 'Trace'],
        logs.flatMap((log, i) => {
          const f = fields(log);
          const key = `${log.timeUs}-${i}`;
          const code = text(f, 'response_code', 'http.response.status_code');
          const flags = text(f, 'response_flags');
          const open = expanded.has(key);
          const row = h(
            'tr',
            {
              class: `clickable ${code.startsWith('5') ? 'failure' : code.startsWith('4') ? 'degraded' : ''}`,
              tabindex: 0,
              'aria-expanded': String(open),
              onclick: () => {
                if (open) expanded.delete(key);
                else expanded.add(key);
                render(logs);
              },
            },
            h('td', { class: 'mono' }, fmt.clock(log.timeUs / 1000)),
            h('td', {}, log.service),
            h(
              'td',
              { class: 'mono wrap' },
              text(f, 'method', 'http.request.method'),
              ' ',
              text(f, 'authority'),
              text(f, 'path', 'url.path') || (typeof log.body === 'string' ? log.body : ''),
            ),
            h('td', { class: 'num' }, code || '–'),
            h('td', { class: 'mono' }, flags || '–'),
            h('td', { class: 'num' }, text(f, 'duration') ? fmt.ms(Number(text(f, 'duration'))) : '–'),
            h('td', { class: 'mono small wrap' }, text(f, 'upstream_cluster', 'upstream_host') || '–'),
            h(
              'td',
              {},
              log.traceId
                ? h(
                    'a',
                    { href: `#/traces/${log.traceId}`, onclick: (e: Event) => e.stopPropagation() },
                    'trace',
                  )
                : '–',
            ),
          );
          const detail = open
            ? h(
                'tr',
                { class: 'detail' },
                h('td', { colspan: 8 }, h('pre', {}, JSON.stringify({ ...log, body: log.body }, null, 2))),
              )
            : null;
          return detail ? [row, detail] : [row];
        }),
        'No access logs in this range. Proxies send them over OTLP logs when access logging is on.',
      ),
    );
  };

  const view = {
    intervalMs: 3000,
    async refresh(signal: AbortSignal) {
      try {
        const { logs } = await getJson<{ logs: LogRecord[] }>(
          `/api/logs${query({ service: service.value.trim(), q: search.value.trim(), lookback: lookback.value, traceId, limit: 200 })}`,
          signal,
        );
        fill(status, `${logs.length} lines · updated ${fmt.clock(Date.now())}`);
        render(logs);
      } catch (err) {
        if ((err as Error).name === 'AbortError') throw err;
        fill(status, h('span', { class: 'error' }, (err as Error).message));
      }
    },
  };
  refreshNow = () => void view.refresh(new AbortController().signal);
  return view;
};
