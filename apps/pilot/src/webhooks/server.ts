import fs from 'node:fs';
import type https from 'node:https';
import type { AddressInfo } from 'node:net';
import { type InjectionConfig, injectionPatch, injectPod, type PodLike } from '@mizzen/inject';
import type { Logger } from '@mizzen/runtime';
import Fastify, { type FastifyInstance } from 'fastify';
import { type AdmissionReview, admissionResponse, validateAdmission } from './admission.js';

export interface WebhookOptions {
  /** 15017 in a pod; 0 picks a free port. */
  port: number;
  /** PEM files of the serving certificate (cert-manager's `tls.crt`/`tls.key`); re-read when they change. */
  certFile: string;
  keyFile: string;
  injection: InjectionConfig;
  logger: Logger;
  /** A namespace's labels when pilot watches Kubernetes; undefined leaves the choice to the webhook's namespaceSelector. */
  namespaceLabels?: (namespace: string) => Record<string, string> | undefined;
  /** How often the certificate files are checked for a rotation (cert-manager renews them in place); 5s. */
  certPollMs?: number;
}

/**
 * Pilot's admission webhooks over HTTPS (AdmissionReview v1): `/inject`
 * (mutating: a JSONPatch adding the sidecar) and `/validate` (validating:
 * Istio resources checked with the rules `mizzen apply` uses). A rotated
 * certificate is picked up without a restart.
 */
export class WebhookServer {
  private readonly app: FastifyInstance<https.Server>;
  private watching = false;

  constructor(private readonly options: WebhookOptions) {
    this.app = Fastify({
      logger: false,
      bodyLimit: 8 * 1024 * 1024,
      https: { cert: fs.readFileSync(options.certFile), key: fs.readFileSync(options.keyFile) },
    }) as unknown as FastifyInstance<https.Server>;
    this.app.get('/ready', async () => ({ status: 'ready' }));
    this.app.post('/inject', async (req, reply) => {
      const review = req.body as AdmissionReview;
      if (!review?.request?.uid)
        return reply.code(400).send({ error: 'expected an AdmissionReview with request.uid' });
      return admissionResponse(review, this.inject(review));
    });
    this.app.post('/validate', async (req, reply) => {
      const review = req.body as AdmissionReview;
      if (!review?.request?.uid)
        return reply.code(400).send({ error: 'expected an AdmissionReview with request.uid' });
      const result = validateAdmission(review.request);
      if (!result.allowed) {
        this.options.logger.info(
          { uid: review.request.uid, name: review.request.name, namespace: review.request.namespace },
          `rejected: ${result.status?.message}`,
        );
      }
      return admissionResponse(review, result);
    });
  }

  /** Listens on the configured port; resolves with the port. */
  async listen(host: string): Promise<number> {
    await this.app.listen({ port: this.options.port, host });
    this.watchCertificates();
    return (this.app.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    if (this.watching) {
      fs.unwatchFile(this.options.certFile);
      fs.unwatchFile(this.options.keyFile);
    }
    await this.app.close();
  }

  private inject(review: AdmissionReview) {
    const request = review.request!;
    const pod = request.object as PodLike;
    if (request.kind?.kind && request.kind.kind !== 'Pod') return { allowed: true };
    const namespace = request.namespace ?? pod.metadata?.namespace ?? 'default';
    const result = injectPod(pod, this.options.injection, {
      namespace,
      namespaceLabels: this.options.namespaceLabels?.(namespace),
    });
    const name = pod.metadata?.name ?? `${pod.metadata?.generateName ?? ''}<generated>`;
    if (!result.injected) {
      this.options.logger.debug({ pod: `${namespace}/${name}`, reason: result.reason }, 'not injecting');
      return { allowed: true };
    }
    this.options.logger.info({ pod: `${namespace}/${name}`, reason: result.reason }, 'injecting sidecar');
    return { allowed: true, patch: injectionPatch(pod, result.pod) };
  }

  private watchCertificates(): void {
    this.watching = true;
    const reload = () => {
      try {
        const cert = fs.readFileSync(this.options.certFile);
        const key = fs.readFileSync(this.options.keyFile);
        this.app.server.setSecureContext({ cert, key });
        this.options.logger.info({ certFile: this.options.certFile }, 'webhook certificate reloaded');
      } catch (err) {
        this.options.logger.warn({ err: (err as Error).message }, 'cannot reload the webhook certificate');
      }
    };
    const interval = this.options.certPollMs ?? 5000;
    fs.watchFile(this.options.certFile, { interval, persistent: false }, reload);
    fs.watchFile(this.options.keyFile, { interval, persistent: false }, reload);
  }
}
