import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { getJson, type Health } from './api.js';
import { fill, h } from './dom.js';
import type { View, ViewFactory } from './view.js';
import { configView } from './views/config.js';
import { graphView } from './views/graph.js';
import { logsView } from './views/logs.js';
import { proxiesView } from './views/proxies.js';
import { servicesView } from './views/services.js';
import { tracesView } from './views/traces.js';

const VIEWS: Record<string, ViewFactory> = {
  graph: graphView,
  services: servicesView,
  traces: tracesView,
  logs: logsView,
  proxies: proxiesView,
  config: configView,
};

const root = document.getElementById('view') as HTMLElement;
const windowSelect = document.getElementById('window') as HTMLSelectElement;
const liveButton = document.getElementById('live') as HTMLButtonElement;
const healthBadge = document.getElementById('health') as HTMLElement;

let live = true;
let current: { name: string; key: string; view: View } | undefined;
let timer: number | undefined;
let inflight: AbortController | undefined;

const stored = localStorage.getItem('mizzen.window');
if (stored && [...windowSelect.options].some((o) => o.value === stored)) windowSelect.value = stored;

function route(): { name: string; params: string[]; search: URLSearchParams } {
  const hash = location.hash.replace(/^#\/?/, '');
  const at = hash.indexOf('?');
  const path = at >= 0 ? hash.slice(0, at) : hash;
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const name = parts[0] && VIEWS[parts[0]] ? parts[0] : 'graph';
  return { name, params: parts.slice(1), search: new URLSearchParams(at >= 0 ? hash.slice(at + 1) : '') };
}

async function refresh(): Promise<void> {
  if (!current) return;
  inflight?.abort();
  const controller = new AbortController();
  inflight = controller;
  const view = current.view;
  try {
    await view.refresh(controller.signal);
  } catch (err) {
    if ((err as Error).name !== 'AbortError') console.error(err);
  }
}

function schedule(): void {
  if (timer !== undefined) clearTimeout(timer);
  if (!current || !live) return;
  timer = window.setTimeout(async () => {
    if (!document.hidden) await refresh();
    schedule();
  }, current.view.intervalMs);
}

function mount(): void {
  const { name, params, search } = route();
  const key = `${name}/${params.join('/')}?${search.toString()}`;
  if (current?.key === key) return;
  // Same section, new parameters (a trace id, a service): rebuild; views are cheap.
  inflight?.abort();
  current?.view.destroy?.();
  fill(root);
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const view = VIEWS[name]!(root, {
    window: () => windowSelect.value,
    navigate: (hash) => {
      location.hash = hash;
    },
    params,
    search,
  });
  current = { name, key, view };
  document.title = `Mizzen — ${name}`;
  void refresh().then(schedule);
}

async function pollHealth(): Promise<void> {
  try {
    const health = await getJson<Health>('/healthz');
    const backend = health.storage.backend === 'redis' ? 'Redis' : 'memory';
    healthBadge.className = `health ${health.status}`;
    healthBadge.title = health.reasons.join('\n') || `storage: ${backend}`;
    fill(
      healthBadge,
      h('span', { class: 'dot', 'aria-hidden': 'true' }),
      health.status === 'ok' ? `Healthy · ${backend}` : `Degraded · ${health.reasons[0] ?? ''}`,
    );
  } catch (err) {
    healthBadge.className = 'health degraded';
    fill(healthBadge, h('span', { class: 'dot', 'aria-hidden': 'true' }), `Collector unreachable`);
    healthBadge.title = (err as Error).message;
  }
}

windowSelect.addEventListener('change', () => {
  localStorage.setItem('mizzen.window', windowSelect.value);
  void refresh();
});

liveButton.addEventListener('click', () => {
  live = !live;
  liveButton.setAttribute('aria-pressed', String(live));
  liveButton.textContent = live ? '● Live' : '❚❚ Paused';
  if (live) void refresh().then(schedule);
  else if (timer !== undefined) clearTimeout(timer);
});

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && live) void refresh();
});

window.addEventListener('hashchange', mount);
mount();
void pollHealth();
window.setInterval(() => {
  if (!document.hidden) void pollHealth();
}, 5000);
