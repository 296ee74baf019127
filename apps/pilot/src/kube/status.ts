import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { MESSAGE_TYPES } from '@mizzen/analysis';
import type { KindInfo, ValidationIssue } from '@mizzen/api';
import type { Logger } from '@mizzen/runtime';
import { statusOf } from './informer.js';
import { MissingPermissions } from './permissions.js';

/** One of Istio's analysis messages (istio.analysis.v1alpha1.AnalysisMessageBase, with its description). */
export interface ValidationMessage {
  type: { code: string; name: string };
  level: 'ERROR' | 'WARNING' | 'INFO';
  description: string;
  documentationUrl: string;
}

/** The part of Istio's `status` (istio.meta.v1alpha1.IstioStatus) pilot writes. */
export interface IstioStatus {
  validationMessages?: ValidationMessage[];
  observedGeneration?: number | string;
  [field: string]: unknown;
}

/** Istio's code for a resource that fails schema validation. */
export const SCHEMA_VALIDATION_ERROR = {
  code: MESSAGE_TYPES.SchemaValidationError.code,
  name: MESSAGE_TYPES.SchemaValidationError.name,
} as const;
const DOC_URL = 'https://istio.io/latest/docs/reference/config/analysis/ist0106/?ref=status-controller';

/** The status a resource should carry for these validation issues. */
export function validationStatus(
  issues: readonly ValidationIssue[],
  object: { metadata?: { generation?: number } },
): { validationMessages: ValidationMessage[]; observedGeneration?: number } {
  return {
    validationMessages: issues.map((i) => ({
      type: { ...SCHEMA_VALIDATION_ERROR },
      level: i.severity === 'error' ? 'ERROR' : 'WARNING',
      description: `${i.path ? `${i.path}: ` : ''}${i.message}`,
      documentationUrl: DOC_URL,
    })),
    ...(object.metadata?.generation !== undefined ? { observedGeneration: object.metadata.generation } : {}),
  };
}

function sameStatus(
  current: IstioStatus | undefined,
  desired: { validationMessages: ValidationMessage[]; observedGeneration?: number },
): boolean {
  const have = current?.validationMessages ?? [];
  if (JSON.stringify(have) !== JSON.stringify(desired.validationMessages)) return false;
  if (desired.observedGeneration === undefined) return true;
  return String(current?.observedGeneration ?? '') === String(desired.observedGeneration);
}

interface Pending {
  info: KindInfo;
  namespace: string;
  name: string;
  desired: { validationMessages: ValidationMessage[]; observedGeneration?: number };
}

/**
 * Writes Istio-style status with JSON merge patches on the `status`
 * subresource, only while enabled (this replica leads). Writes nothing when
 * the object already carries the wanted status, so its own update events do
 * not cause further writes; one write per object is in flight at a time.
 */
export class StatusWriter {
  private readonly api: CustomObjectsApi;
  private enabled = false;
  private readonly inFlight = new Set<string>();
  private readonly queued = new Map<string, Pending>();
  private writes = 0;
  private readonly permissions: MissingPermissions;

  constructor(
    kubeConfig: KubeConfig,
    private readonly logger: Logger,
    permissions?: MissingPermissions,
  ) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
    this.permissions = permissions ?? new MissingPermissions(logger);
  }

  /** How many status patches this replica sent. */
  writeCount(): number {
    return this.writes;
  }

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    if (!enabled) this.queued.clear();
  }

  forget(key: string): void {
    this.queued.delete(key);
  }

  ensure(
    key: string,
    info: KindInfo,
    object: { metadata?: { namespace?: string; name?: string; generation?: number }; status?: IstioStatus },
    desired: { validationMessages: ValidationMessage[]; observedGeneration?: number },
  ): void {
    if (!this.enabled) return;
    if (sameStatus(object.status, desired)) {
      this.queued.delete(key);
      return;
    }
    const pending: Pending = {
      info,
      namespace: object.metadata?.namespace ?? 'default',
      name: object.metadata?.name ?? '',
      desired,
    };
    this.queued.set(key, pending);
    if (!this.inFlight.has(key)) void this.flush(key);
  }

  private async flush(key: string): Promise<void> {
    const pending = this.queued.get(key);
    if (!pending || !this.enabled) return;
    this.queued.delete(key);
    this.inFlight.add(key);
    const { info, namespace, name, desired } = pending;
    const resource = `${info.plural}.${info.group}/status`;
    try {
      this.writes++;
      await this.api.patchNamespacedCustomObjectStatus(
        {
          group: info.group,
          version: info.versions[0]!,
          namespace,
          plural: info.plural,
          name,
          body: {
            status: {
              // null removes the field in a merge patch.
              validationMessages: desired.validationMessages.length > 0 ? desired.validationMessages : null,
              ...(desired.observedGeneration !== undefined
                ? { observedGeneration: desired.observedGeneration }
                : {}),
            },
          },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      this.permissions.granted('patch', resource);
    } catch (err) {
      const status = statusOf(err);
      const object = `${info.kind} ${namespace}/${name}`;
      if (status !== 404 && !this.permissions.forbidden(err, 'patch', resource, { object })) {
        this.logger.warn(
          { resource: object, status, err: (err as Error).message },
          'status write failed; retried on the next resync',
        );
      }
    } finally {
      this.inFlight.delete(key);
      if (this.queued.has(key)) void this.flush(key);
    }
  }
}
