import { parse as parseCel } from '@bufbuild/cel';
import { z } from 'zod';
import type { Checker } from '../validation/checker.js';
import { bool, duration, num, obj, rules, str } from '../validation/schema.js';
import type { KindValidation } from './context.js';
import {
  checkPolicyTargets,
  type LabelSelector,
  labelSelectorSchema,
  type PolicyTargetReference,
  targetRefSchema,
} from './selectors.js';

// ---------------------------------------------------------------------------
// Types: telemetry.istio.io Telemetry (v1 == v1alpha1).
// ---------------------------------------------------------------------------

/** A provider named in MeshConfig `extensionProviders`. */
export interface ProviderRef {
  name: string;
}

export type WorkloadMode = 'CLIENT_AND_SERVER' | 'CLIENT' | 'SERVER';

export interface TracingSelector {
  mode?: WorkloadMode;
}

export interface TracingCustomTag {
  literal?: { value: string };
  environment?: { name: string; defaultValue?: string };
  header?: { name: string; defaultValue?: string };
}

export interface Tracing {
  match?: TracingSelector;
  providers?: ProviderRef[];
  /** 0-100; unset inherits from the less specific scope (or MeshConfig's sampling). */
  randomSamplingPercentage?: number;
  disableSpanReporting?: boolean;
  customTags?: Record<string, TracingCustomTag>;
  useRequestIdForTraceSampling?: boolean;
  enableIstioTags?: boolean;
}

export type MetricName =
  | 'ALL_METRICS'
  | 'REQUEST_COUNT'
  | 'REQUEST_DURATION'
  | 'REQUEST_SIZE'
  | 'RESPONSE_SIZE'
  | 'TCP_OPENED_CONNECTIONS'
  | 'TCP_CLOSED_CONNECTIONS'
  | 'TCP_SENT_BYTES'
  | 'TCP_RECEIVED_BYTES'
  | 'GRPC_REQUEST_MESSAGES'
  | 'GRPC_RESPONSE_MESSAGES';

export interface MetricSelector {
  metric?: MetricName;
  customMetric?: string;
  mode?: WorkloadMode;
}

export interface TagOverride {
  operation?: 'UPSERT' | 'REMOVE';
  /** A CEL expression over request attributes (`request.host`, `request.headers['x-user']`). */
  value?: string;
}

export interface MetricsOverrides {
  match?: MetricSelector;
  disabled?: boolean;
  tagOverrides?: Record<string, TagOverride>;
}

export interface Metrics {
  providers?: ProviderRef[];
  overrides?: MetricsOverrides[];
  reportingInterval?: string;
}

export interface AccessLoggingFilter {
  /** A CEL expression over request attributes (`response.code >= 400`). */
  expression: string;
}

export interface AccessLogging {
  match?: TracingSelector;
  providers?: ProviderRef[];
  disabled?: boolean;
  filter?: AccessLoggingFilter;
}

export interface TelemetrySpec {
  selector?: LabelSelector;
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
  tracing?: Tracing[];
  metrics?: Metrics[];
  accessLogging?: AccessLogging[];
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

const MODES = ['CLIENT_AND_SERVER', 'CLIENT', 'SERVER'] as const;
const METRICS = [
  'ALL_METRICS',
  'REQUEST_COUNT',
  'REQUEST_DURATION',
  'REQUEST_SIZE',
  'RESPONSE_SIZE',
  'TCP_OPENED_CONNECTIONS',
  'TCP_CLOSED_CONNECTIONS',
  'TCP_SENT_BYTES',
  'TCP_RECEIVED_BYTES',
  'GRPC_REQUEST_MESSAGES',
  'GRPC_RESPONSE_MESSAGES',
] as const;

const providers = () => z.array(obj({ name: str() }));
const selector = () => obj({ mode: z.enum(MODES).optional() });

/** A CEL expression that parses (Istio validates them with cel-go; here with @bufbuild/cel). */
const celExpression = () =>
  rules(str(), (s) => {
    if (s.trim() === '') return 'must not be empty';
    try {
      parseCel(s);
      return undefined;
    } catch (err) {
      return `must be a valid CEL expression: ${(err as Error).message}`;
    }
  });

const samplingPercentage = () => num(0, 100);

export const telemetrySchema = obj({
  selector: labelSelectorSchema().optional(),
  targetRef: targetRefSchema().optional(),
  targetRefs: z.array(targetRefSchema()).optional(),
  tracing: z
    .array(
      obj({
        match: selector().optional(),
        providers: providers().optional(),
        randomSamplingPercentage: samplingPercentage().optional(),
        disableSpanReporting: bool().optional(),
        customTags: z
          .record(
            str(),
            obj({
              literal: obj({ value: str() }).optional(),
              environment: obj({ name: str(), defaultValue: str().optional() }).optional(),
              header: obj({ name: str(), defaultValue: str().optional() }).optional(),
            }),
          )
          .optional(),
        useRequestIdForTraceSampling: bool().optional(),
        enableIstioTags: bool().optional(),
      }),
    )
    .optional(),
  metrics: z
    .array(
      obj({
        providers: providers().optional(),
        overrides: z
          .array(
            obj({
              match: obj({
                metric: z.enum(METRICS).optional(),
                customMetric: str().optional(),
                mode: z.enum(MODES).optional(),
              }).optional(),
              disabled: bool().optional(),
              tagOverrides: z
                .record(
                  str(),
                  obj({ operation: z.enum(['UPSERT', 'REMOVE']).optional(), value: str().optional() }),
                )
                .optional(),
            }),
          )
          .optional(),
        reportingInterval: duration().optional(),
      }),
    )
    .optional(),
  accessLogging: z
    .array(
      obj({
        match: selector().optional(),
        providers: providers().optional(),
        disabled: bool().optional(),
        filter: obj({ expression: celExpression() }).optional(),
      }),
    )
    .optional(),
});

// ---------------------------------------------------------------------------
// Semantic checks (Istio's ValidateTelemetry)
// ---------------------------------------------------------------------------

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function checkProviders(list: ProviderRef[] | undefined, at: Checker): void {
  for (const [i, p] of (list ?? []).entries()) {
    if (p.name === '') at.at('providers', i, 'name').error('must not be empty');
  }
}

function checkTelemetry(spec: TelemetrySpec, at: Checker): void {
  checkPolicyTargets(spec, at, 'Telemetry');
  if ((spec.tracing?.length ?? 0) > 1) at.at('tracing').error('multiple tracing is not currently supported');
  for (const [i, t] of (spec.tracing ?? []).entries()) {
    const tAt = at.at('tracing', i);
    checkProviders(t.providers, tAt);
    if ((t.providers?.length ?? 0) > 1)
      tAt.at('providers').error('multiple providers is not currently supported');
    for (const [name, tag] of Object.entries(t.customTags ?? {})) {
      const set = [tag.literal && 'literal', tag.environment && 'environment', tag.header && 'header'].filter(
        Boolean,
      );
      if (set.length !== 1)
        tAt.at('customTags', name).error('must set exactly one of literal, environment or header');
      if (tag.environment?.name === '')
        tAt.at('customTags', name, 'environment', 'name').error('must not be empty');
      if (tag.header?.name === '') tAt.at('customTags', name, 'header', 'name').error('must not be empty');
    }
  }
  for (const [i, m] of (spec.metrics ?? []).entries()) {
    const mAt = at.at('metrics', i);
    checkProviders(m.providers, mAt);
    for (const [j, o] of (m.overrides ?? []).entries()) {
      const oAt = mAt.at('overrides', j);
      if (o.match?.metric && o.match.customMetric)
        oAt.at('match').error('only one of metric or customMetric may be set');
      if (o.match?.customMetric !== undefined && !LABEL_NAME.test(o.match.customMetric))
        oAt.at('match', 'customMetric').error(`"${o.match.customMetric}" is not a valid metric name`);
      for (const [tag, t] of Object.entries(o.tagOverrides ?? {})) {
        const tagAt = oAt.at('tagOverrides', tag);
        if (!LABEL_NAME.test(tag)) tagAt.error(`"${tag}" is not a valid tag name (letters, digits and _)`);
        const op = t.operation ?? 'UPSERT';
        if (op === 'REMOVE' && t.value !== undefined && t.value !== '')
          tagAt.at('value').error('must not be set when the operation is REMOVE');
        if (op === 'UPSERT') {
          if (t.value === undefined || t.value === '')
            tagAt.at('value').error('must be set when the operation is UPSERT');
          else {
            try {
              parseCel(t.value);
            } catch (err) {
              tagAt.at('value').error(`must be a valid CEL expression: ${(err as Error).message}`);
            }
          }
        }
      }
    }
  }
  for (const [i, a] of (spec.accessLogging ?? []).entries())
    checkProviders(a.providers, at.at('accessLogging', i));
}

export const telemetry: KindValidation<TelemetrySpec> = {
  schema: telemetrySchema,
  check: checkTelemetry,
};
