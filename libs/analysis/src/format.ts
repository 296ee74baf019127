import type { AnalysisMessage, Level } from './messages.js';

/** The Istio release whose analysis message pages the documentation links point at. */
export const ISTIO_DOCS_VERSION = 'v1.27';

const LEVEL_ORDER: Record<Level, number> = { Error: 0, Warning: 1, Info: 2 };

export const LEVELS: readonly Level[] = ['Info', 'Warning', 'Error'];

/** Is `level` at least as severe as `threshold`? */
export function atOrAbove(level: Level, threshold: Level): boolean {
  return LEVEL_ORDER[level] <= LEVEL_ORDER[threshold];
}

/** `VirtualService default/reviews`, as Istio's FriendlyName. */
export function originText(m: AnalysisMessage): string | undefined {
  return m.origin ? `${m.origin.kind} ${m.origin.namespace}/${m.origin.name}` : undefined;
}

/** `Error [IST0101] (VirtualService default/reviews bookinfo.yaml:12) Referenced host not found: "ratings"`. */
export function formatMessage(m: AnalysisMessage): string {
  const origin = originText(m);
  const where = origin ? ` (${origin}${m.reference ? ` ${m.reference}` : ''})` : '';
  return `${m.type.level} [${m.type.code}]${where} ${m.text}`;
}

export function documentationUrl(code: string): string {
  return `https://istio.io/${ISTIO_DOCS_VERSION}/docs/reference/config/analysis/${code.toLowerCase()}/`;
}

/** A message as `istioctl analyze -o json|yaml` prints it. */
export function messageObject(m: AnalysisMessage): Record<string, string> {
  const origin = originText(m);
  return {
    code: m.type.code,
    level: m.type.level,
    ...(origin ? { origin } : {}),
    ...(m.reference ? { reference: m.reference } : {}),
    message: m.text,
    documentationUrl: documentationUrl(m.type.code),
  };
}

/** Istio's order: by level (errors first), code, origin, then text; identical messages once. */
export function sortMessages(messages: readonly AnalysisMessage[]): AnalysisMessage[] {
  const unique = new Map(messages.map((m) => [formatMessage(m), m]));
  return [...unique.values()].sort((a, b) => {
    if (a.type.level !== b.type.level) return LEVEL_ORDER[a.type.level] - LEVEL_ORDER[b.type.level];
    if (a.type.code !== b.type.code) return a.type.code < b.type.code ? -1 : 1;
    const oa = originText(a) ?? '';
    const ob = originText(b) ?? '';
    if (oa !== ob) return oa < ob ? -1 : 1;
    const sa = formatMessage(a);
    const sb = formatMessage(b);
    return sa < sb ? -1 : sa > sb ? 1 : 0;
  });
}
