/** A tiny element builder: text always goes in as text, never as HTML. */
export type Child = Node | string | number | null | undefined | false | Child[];
type AttrValue = string | number | boolean | null | undefined | ((event: Event) => void);

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, AttrValue> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.slice(2).toLowerCase(), value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/** A <table> with a caption for screen readers and a header row. */
export function table(
  label: string,
  headers: string[],
  rows: HTMLTableRowElement[],
  empty = 'Nothing yet',
): HTMLElement {
  return h(
    'table',
    { class: 'grid', 'aria-label': label },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headers.map((x) => h('th', { scope: 'col' }, x)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.length ? rows : h('tr', { class: 'empty' }, h('td', { colspan: headers.length }, empty)),
    ),
  );
}

export function badge(
  text: string,
  tone: 'ok' | 'warn' | 'bad' | 'muted' | 'info',
  title?: string,
): HTMLElement {
  return h('span', { class: `badge ${tone}`, title }, text);
}

/** A <dl> of label/value pairs that wraps across the width (each pair kept together). */
export function pairs(label: string, items: [string, Child][]): HTMLElement {
  return h(
    'dl',
    { class: 'stats wide', 'aria-label': label },
    items.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))),
  );
}
