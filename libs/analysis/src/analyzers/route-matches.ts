import { stableJson } from '@mizzen/api';
import type { AnalysisContext } from '../context.js';
import { type AnalysisMessage, msg, type Origin, originOf, quote } from '../messages.js';

interface Rule {
  name?: string;
  match?: readonly ({ name?: string } | object)[];
}

/** `"named-rule"` or `#2`, as Istio names a rule or a match in its messages. */
function label(item: { name?: string } | object, index: number): string {
  const name = (item as { name?: string }).name;
  return name ? quote(name) : `#${index}`;
}

/**
 * Istio's unreachable-rule check over one list of routes: a rule after one
 * without matches never runs, a match equal (as JSON) to an earlier one is
 * never used (IST0131), and a rule whose every match is is never used (IST0130).
 */
function unreachable(origin: Origin, rules: readonly Rule[]): AnalysisMessage[] {
  const out: AnalysisMessage[] = [];
  const seen = new Map<string, number>();
  let catchAll = -1;
  for (const [i, rule] of rules.entries()) {
    const matches = rule.match ?? [];
    if (matches.length === 0) {
      if (catchAll >= 0)
        out.push(
          msg.virtualServiceUnreachableRule(origin, label(rule, i), 'only the last rule can have no matches'),
        );
      catchAll = i;
      continue;
    }
    if (catchAll >= 0) {
      out.push(
        msg.virtualServiceUnreachableRule(origin, label(rule, i), 'route without matches defined before'),
      );
      continue;
    }
    let duplicates = 0;
    for (const [j, match] of matches.entries()) {
      const key = stableJson(match);
      const earlier = seen.get(key);
      if (earlier === undefined) {
        seen.set(key, i);
        continue;
      }
      duplicates++;
      out.push(
        msg.virtualServiceIneffectiveMatch(
          origin,
          label(rule, i),
          label(match, j),
          label(rules[earlier]!, earlier),
        ),
      );
    }
    if (duplicates === matches.length)
      out.push(msg.virtualServiceUnreachableRule(origin, label(rule, i), 'all matches used by prior rules'));
  }
  return out;
}

/** IST0130 VirtualServiceUnreachableRule and IST0131 VirtualServiceIneffectiveMatch, for http, tcp and tls routes. */
export function analyzeRouteMatches(ctx: AnalysisContext): AnalysisMessage[] {
  return ctx
    .of('VirtualService')
    .flatMap((vs) =>
      [vs.spec.http, vs.spec.tcp, vs.spec.tls].flatMap((rules) => unreachable(originOf(vs), rules ?? [])),
    );
}
