import { type ConfigIssue, type ConfigResource, getJson, type PilotStatus } from '../api.js';
import { badge, fill, h, table } from '../dom.js';
import type { ViewFactory } from '../view.js';
import { pilotLine } from './proxies.js';

function issueLine(i: ConfigIssue): HTMLElement {
  return h(
    'li',
    { class: i.severity === 'error' ? 'error' : 'warning' },
    badge(i.severity, i.severity === 'error' ? 'bad' : 'warn'),
    ' ',
    i.message,
  );
}

export const configView: ViewFactory = (root) => {
  const pilotBox = h('div', {});
  const summary = h('p', {});
  const kind = h('select', { 'aria-label': 'Kind' }, h('option', { value: '' }, 'All kinds'));
  const filter = h('input', { 'aria-label': 'Filter by name', placeholder: 'name or namespace', size: 20 });
  const onlyProblems = h('input', { type: 'checkbox', 'aria-label': 'Only resources with problems' });
  const resourcesBox = h('div', {});
  const rejectedBox = h('section', { class: 'card', 'aria-label': 'Rejected documents' });
  const open = new Set<string>();
  let last: { resources: ConfigResource[]; issues: ConfigIssue[] } | undefined;
  for (const el of [kind, filter, onlyProblems]) el.addEventListener('input', () => last && render(last));
  fill(
    root,
    h(
      'section',
      { class: 'card' },
      h('h1', {}, 'Config in force'),
      pilotBox,
      summary,
      h('div', { class: 'filters' }, kind, filter, h('label', {}, onlyProblems, ' only with problems')),
      resourcesBox,
    ),
    rejectedBox,
  );

  const render = (data: { resources: ConfigResource[]; issues: ConfigIssue[] }) => {
    last = data;
    const kinds = [...new Set(data.resources.map((r) => r.kind ?? ''))].sort();
    const selectedKind = kind.value;
    fill(
      kind,
      h('option', { value: '' }, 'All kinds'),
      kinds.map((k) => h('option', { value: k }, k)),
    );
    kind.value = selectedKind;
    const errors = data.resources.filter((r) => r.status === 'error').length;
    const warnings = data.resources.filter((r) => r.status === 'warning').length;
    fill(
      summary,
      `${data.resources.length} resources in force · `,
      errors ? badge(`${errors} with errors`, 'bad') : badge('no errors', 'ok'),
      ' ',
      warnings ? badge(`${warnings} with warnings`, 'warn') : null,
      ' ',
      data.issues.length ? badge(`${data.issues.length} rejected or unattached messages`, 'bad') : null,
    );
    const text = filter.value.trim().toLowerCase();
    const rows = data.resources
      .filter((r) => !kind.value || r.kind === kind.value)
      .filter((r) => !text || `${r.name} ${r.namespace}`.toLowerCase().includes(text))
      .filter((r) => !onlyProblems.checked || r.status !== 'valid')
      .sort((a, b) =>
        `${a.kind}/${a.namespace}/${a.name}`.localeCompare(`${b.kind}/${b.namespace}/${b.name}`),
      )
      .flatMap((r) => {
        const key = `${r.kind}/${r.namespace}/${r.name}`;
        const isOpen = open.has(key);
        const row = h(
          'tr',
          {
            class: `clickable ${r.status === 'error' ? 'failure' : r.status === 'warning' ? 'degraded' : ''}`,
            tabindex: 0,
            'aria-expanded': String(isOpen),
            'data-resource': key,
            onclick: () => {
              if (isOpen) open.delete(key);
              else open.add(key);
              render(data);
            },
          },
          h('td', {}, r.kind ?? ''),
          h('td', {}, r.name, r.namespace ? h('span', { class: 'muted' }, ` .${r.namespace}`) : null),
          h('td', { class: 'mono small wrap' }, r.source ?? ''),
          h(
            'td',
            {},
            r.status === 'valid'
              ? badge('valid', 'ok')
              : badge(r.status, r.status === 'error' ? 'bad' : 'warn'),
            r.issues.length ? h('ul', { class: 'issues' }, r.issues.map(issueLine)) : null,
          ),
        );
        const detail = isOpen
          ? h(
              'tr',
              { class: 'detail' },
              h(
                'td',
                { colspan: 4 },
                h('pre', {}, JSON.stringify({ apiVersion: r.apiVersion, spec: r.spec }, null, 2)),
              ),
            )
          : null;
        return detail ? [row, detail] : [row];
      });
    fill(resourcesBox, table('Resources', ['Kind', 'Name', 'Source', 'Validation'], rows, 'No resources'));
    fill(
      rejectedBox,
      h('h2', {}, 'Rejected documents and other validation messages'),
      data.issues.length
        ? h('ul', { class: 'issues' }, data.issues.map(issueLine))
        : h('p', { class: 'muted' }, 'Every document pilot read was accepted.'),
    );
  };

  return {
    intervalMs: 5000,
    async refresh(signal) {
      const data = await getJson<{
        pilot: PilotStatus | null;
        resources: ConfigResource[];
        issues: ConfigIssue[];
      }>('/api/config', signal);
      fill(pilotBox, pilotLine(data.pilot));
      render(data);
    },
  };
};
