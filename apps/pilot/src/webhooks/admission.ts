import { isKind, parseConfig, type ValidationIssue } from '@mizzen/api';
import type { PatchOperation } from '@mizzen/inject';

/** The parts of an admission.k8s.io/v1 AdmissionReview the webhooks read. */
export interface AdmissionReview {
  apiVersion?: string;
  kind?: string;
  request?: {
    uid: string;
    kind?: { group?: string; version?: string; kind?: string };
    resource?: { group?: string; version?: string; resource?: string };
    name?: string;
    namespace?: string;
    operation?: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
    object?: Record<string, unknown> & { metadata?: Record<string, unknown> };
    oldObject?: unknown;
    dryRun?: boolean;
  };
}

export interface AdmissionResult {
  allowed: boolean;
  patch?: PatchOperation[];
  status?: { code: number; message: string; reason?: string };
  warnings?: string[];
}

/** The AdmissionReview answer: same apiVersion and uid, a base64 JSONPatch when there is one. */
export function admissionResponse(review: AdmissionReview, result: AdmissionResult) {
  return {
    apiVersion: review.apiVersion ?? 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid: review.request?.uid ?? '',
      allowed: result.allowed,
      ...(result.patch && result.patch.length > 0
        ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(result.patch)).toString('base64') }
        : {}),
      ...(result.status ? { status: result.status } : {}),
      ...(result.warnings && result.warnings.length > 0 ? { warnings: result.warnings } : {}),
    },
  };
}

/**
 * One issue as `mizzen apply` words it, without the file and document an
 * admission request does not have: `VirtualService default/reviews:
 * spec.http[0].route[0].weight: must be between 0 and 100, got 120`.
 */
export function issueText(i: ValidationIssue): string {
  const resource = i.kind && i.name ? `${i.kind} ${i.namespace ?? 'default'}/${i.name}: ` : '';
  return `${resource}${i.path ? `${i.path}: ` : ''}${i.message}`;
}

/**
 * The validating webhook's decision for an Istio resource: parsed and checked
 * exactly as `mizzen apply` checks a document; errors deny with Istio's
 * "configuration is invalid" message, warnings are returned as warnings.
 * Deletes, and kinds Mizzen does not know, are allowed.
 */
export function validateAdmission(request: NonNullable<AdmissionReview['request']>): AdmissionResult {
  if (request.operation === 'DELETE' || !request.object) return { allowed: true };
  const kind = (request.object.kind as string | undefined) ?? request.kind?.kind;
  if (!isKind(kind)) return { allowed: true };
  const metadata = { ...(request.object.metadata ?? {}) };
  metadata.namespace ??= request.namespace ?? 'default';
  const apiVersion =
    (request.object.apiVersion as string | undefined) ??
    (request.kind?.group ? `${request.kind.group}/${request.kind.version}` : undefined);
  const { issues } = parseConfig(
    JSON.stringify({ ...request.object, apiVersion, kind, metadata }),
    `${kind} ${String(metadata.namespace)}/${String(metadata.name ?? request.name ?? '')}`,
  );
  const errors = issues.filter((i) => i.severity === 'error');
  const warnings = issues.filter((i) => i.severity === 'warning').map(issueText);
  if (errors.length === 0) return { allowed: true, warnings };
  return {
    allowed: false,
    status: {
      code: 400,
      reason: 'BadRequest',
      message: `configuration is invalid: ${errors.map(issueText).join('; ')}`,
    },
    warnings,
  };
}
