import { getJson, type PilotStatus, type ProxyRow } from '../api.js';
import { badge, fill, h, table } from '../dom.js';
import * as fmt from '../format.js';
import type { ViewFactory } from '../view.js';

const TYPES = ['CDS', 'LDS', 'EDS', 'RDS'];

function syncBadge(state: string | undefined, error: string | undefined): HTMLElement {
  if (!state) return badge('–', 'muted', 'not requested');
  const tone = state === 'ACKED' ? 'ok' : state === 'NACKED' ? 'bad' : state === 'SENT' ? 'info' : 'warn';
  return badge(state, tone, error);
}

export function pilotLine(pilot: PilotStatus | null): HTMLElement {
  if (!pilot) return h('p', { class: 'muted' }, 'No pilot configured (--pilot none).');
  return pilot.reachable
    ? h(
        'p',
        { class: 'muted' },
        'From pilot at ',
        h('span', { class: 'mono' }, pilot.url),
        ` · ${fmt.ago(pilot.lastSuccessMs)}`,
      )
    : h('p', { class: 'error', role: 'alert' }, pilot.error ?? `pilot at ${pilot.url} is unreachable`);
}

export const proxiesView: ViewFactory = (root) => {
  const pilotBox = h('div', {});
  const tableBox = h('div', {});
  fill(root, h('section', { class: 'card' }, h('h1', {}, 'Proxy sync status'), pilotBox, tableBox));
  return {
    intervalMs: 3000,
    async refresh(signal) {
      const { pilot, proxies } = await getJson<{ pilot: PilotStatus | null; proxies: ProxyRow[] }>(
        '/api/proxies',
        signal,
      );
      fill(pilotBox, pilotLine(pilot));
      const nacked = proxies.filter((p) => Object.values(p.sync).includes('NACKED')).length;
      fill(
        tableBox,
        h(
          'p',
          {},
          `${proxies.length} proxies · `,
          nacked ? badge(`${nacked} rejecting config`, 'bad') : badge('all in sync', 'ok'),
        ),
        table(
          'Proxies',
          ['Proxy', 'Kind', 'Workload', ...TYPES, 'Metrics scrape', 'Connected'],
          proxies.map((p) => {
            const errors = Object.entries(p.errors);
            const scrape = p.scrape;
            return h(
              'tr',
              { class: errors.length ? 'failure' : undefined, 'data-proxy-id': p.id },
              h(
                'td',
                { class: 'mono small wrap' },
                p.id,
                errors.map(([type, message]) => h('div', { class: 'error small' }, `${type}: ${message}`)),
              ),
              h('td', {}, p.kind),
              h('td', {}, p.workload, p.namespace ? h('span', { class: 'muted' }, ` .${p.namespace}`) : null),
              TYPES.map((t) => h('td', {}, syncBadge(p.sync[t], p.errors[t]))),
              h(
                'td',
                {},
                !scrape
                  ? badge('–', 'muted')
                  : scrape.state === 'up'
                    ? badge(`up · ${fmt.ago(scrape.lastSuccessMs)}`, 'ok', scrape.url)
                    : scrape.state === 'down'
                      ? badge('down', 'bad', scrape.error)
                      : badge('not scrapeable yet', 'warn', scrape.error),
                scrape?.state === 'down' && scrape.error
                  ? h('div', { class: 'error small' }, scrape.error)
                  : null,
              ),
              h('td', { class: 'small' }, p.connectedAt ? fmt.ago(Date.parse(p.connectedAt)) : '–'),
            );
          }),
          pilot?.reachable ? 'No proxies connected to pilot' : 'Pilot is unreachable',
        ),
      );
    },
  };
};
