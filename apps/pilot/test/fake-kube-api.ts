import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Server } from 'node:net';
import { KINDS } from '@mizzen/api';

/**
 * A fake Kubernetes API server — no cluster runs on this machine — that speaks
 * the real REST and watch protocol for the resources pilot uses: lists with a
 * collection resourceVersion, `?watch=true&resourceVersion=N` streaming one
 * JSON event per line (ADDED/MODIFIED/DELETED, and ERROR with a 410 Status once
 * the history a client asks for is compacted, as the watch cache answers),
 * field and label selectors, create/replace with optimistic concurrency
 * (409 on a stale resourceVersion), JSON merge and JSON patches, the `status`
 * subresource, generation bumps on spec changes, Lease objects, and
 * TokenReviews for the tokens a test registers. Plain HTTP on 127.0.0.1, or
 * HTTPS on a listening socket the test hands it (an API server inside a test
 * network namespace, reached at the in-cluster address pods use).
 */

type Obj = {
  apiVersion?: string;
  kind?: string;
  metadata: Record<string, unknown> & { name: string; namespace?: string; resourceVersion?: string };
  [field: string]: unknown;
};

interface ResourceType {
  group: string;
  versions: string[];
  plural: string;
  kind: string;
  namespaced: boolean;
  /** Custom resources: list items keep apiVersion/kind, status is a subresource. */
  custom: boolean;
}

const BUILTIN: ResourceType[] = [
  { group: '', versions: ['v1'], plural: 'namespaces', kind: 'Namespace', namespaced: false, custom: false },
  { group: '', versions: ['v1'], plural: 'nodes', kind: 'Node', namespaced: false, custom: false },
  { group: '', versions: ['v1'], plural: 'pods', kind: 'Pod', namespaced: true, custom: false },
  { group: '', versions: ['v1'], plural: 'services', kind: 'Service', namespaced: true, custom: false },
  { group: '', versions: ['v1'], plural: 'secrets', kind: 'Secret', namespaced: true, custom: false },
  { group: '', versions: ['v1'], plural: 'configmaps', kind: 'ConfigMap', namespaced: true, custom: false },
  {
    group: 'discovery.k8s.io',
    versions: ['v1'],
    plural: 'endpointslices',
    kind: 'EndpointSlice',
    namespaced: true,
    custom: false,
  },
  {
    group: 'coordination.k8s.io',
    versions: ['v1'],
    plural: 'leases',
    kind: 'Lease',
    namespaced: true,
    custom: false,
  },
];

const TYPES: ResourceType[] = [
  ...BUILTIN,
  ...Object.values(KINDS).map((k) => ({
    group: k.group,
    versions: [...k.versions],
    plural: k.plural,
    kind: k.kind,
    namespaced: true,
    custom: true,
  })),
];

interface Event {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: ResourceType;
  object: Obj;
}

interface Watcher {
  resource: ResourceType;
  version: string;
  namespace?: string;
  matches: (o: Obj) => boolean;
  res: http.ServerResponse;
}

export interface WriteRecord {
  method: string;
  path: string;
  /** The bearer token of the client: tells pilot replicas apart. */
  token: string;
  kind: string;
}

function statusBody(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

function fieldValue(o: Obj, field: string): string | undefined {
  let v: unknown = o;
  for (const part of field.split('.')) v = (v as Record<string, unknown> | undefined)?.[part];
  return v === undefined ? undefined : String(v);
}

/** `a=b,c!=d` over fields, or over labels with `labels` set; `k` alone means the label exists. */
function selector(expr: string | null, labels: boolean): (o: Obj) => boolean {
  if (!expr) return () => true;
  const terms = expr.split(',').map((t) => t.trim());
  return (o) =>
    terms.every((t) => {
      const neq = t.indexOf('!=');
      const eq = neq >= 0 ? -1 : t.indexOf('=');
      const key = (neq >= 0 ? t.slice(0, neq) : eq >= 0 ? t.slice(0, eq) : t).trim();
      const value = neq >= 0 ? t.slice(neq + 2) : eq >= 0 ? t.slice(eq + 1).replace(/^=/, '') : undefined;
      const actual = labels
        ? (o.metadata.labels as Record<string, string> | undefined)?.[key]
        : fieldValue(o, key);
      if (value === undefined) return actual !== undefined;
      return neq >= 0 ? actual !== value : actual === value;
    });
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function jsonPatch(target: Obj, ops: { op: string; path: string; value?: unknown }[]): Obj {
  const doc = structuredClone(target) as unknown as Record<string, unknown>;
  for (const op of ops) {
    const parts = op.path
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop()!;
    let parent: unknown = doc;
    for (const p of parts) parent = (parent as Record<string, unknown>)[p];
    if (parent === undefined) throw new HttpError(422, 'Invalid', `path ${op.path} does not exist`);
    const list = Array.isArray(parent) ? (parent as unknown[]) : undefined;
    const map = parent as Record<string, unknown>;
    if (op.op === 'add' || op.op === 'replace') {
      if (list) {
        if (last === '-') list.push(op.value);
        else if (op.op === 'add') list.splice(Number(last), 0, op.value);
        else list[Number(last)] = op.value;
      } else map[last] = op.value;
    } else if (op.op === 'remove') {
      if (list) list.splice(Number(last), 1);
      else delete map[last];
    } else throw new HttpError(422, 'Invalid', `unsupported op ${op.op}`);
  }
  return doc as unknown as Obj;
}

export interface FakeKubeApiOptions {
  /** Serve HTTPS with this certificate (PEM), as the real API server does. */
  tls?: { cert: string; key: string };
}

export class FakeKubeApi {
  private readonly server: http.Server;
  private readonly store = new Map<ResourceType, Map<string, Obj>>();
  private readonly events: Event[] = [];
  private readonly watchers = new Set<Watcher>();
  private rv = 100;
  /** Watches resuming from a version older than this get 410 Gone. */
  private compactedBelow = 0;
  /** While set, watch requests are held open unanswered (the server is away); released in order. */
  private holding = false;
  private readonly held: { resource: ResourceType; start: () => void; res: http.ServerResponse }[] = [];
  readonly writes: WriteRecord[] = [];
  /** Every request line, for tests that check what a client asked. */
  readonly requests: { method: string; url: string }[] = [];
  /** Answers 403 to list/watch of these resources (plurals), as missing RBAC would. */
  readonly forbidden = new Set<string>();
  /**
   * Answers 403 to these single-object requests, as missing RBAC would: `verb
   * plural` or `verb plural/subresource` with Kubernetes' verbs (get, create,
   * update, patch, delete), e.g. `update leases`, `patch virtualservices/status`.
   */
  readonly denied = new Set<string>();
  /** Service-account tokens the TokenReview API authenticates: token → namespace and service account. */
  readonly tokens = new Map<string, { namespace: string; serviceAccount: string; audiences: string[] }>();
  url = '';

  constructor(options: FakeKubeApiOptions = {}) {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res);
    this.server = options.tls ? https.createServer(options.tls, handler) : http.createServer(handler);
  }

  /** Listens on a free loopback port, or on a socket already listening elsewhere (`listening`). */
  async start(listening?: Server): Promise<string> {
    if (listening) {
      await new Promise<void>((resolve) => this.server.listen(listening, resolve));
      this.url = '';
      return this.url;
    }
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const h of this.held.splice(0)) h.res.destroy();
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Ends every open watch stream, as the API server does when a watch times out or it restarts. */
  dropWatches(): number {
    const n = this.watchers.size;
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
    return n;
  }

  /** Forgets the event history: watches resuming from any earlier version get 410 Gone. */
  compact(): void {
    this.compactedBelow = this.rv;
    this.events.length = 0;
  }

  /** Open watch streams, of one resource (plural) or all. */
  watchCount(plural?: string): number {
    return [...this.watchers].filter((w) => plural === undefined || w.resource.plural === plural).length;
  }

  /**
   * From now on, watch requests get no answer until `releaseWatches()`: with
   * `dropWatches()` this opens a window in which no watch is running, so a
   * change made then can only reach a client through resuming from its
   * resourceVersion (or relisting).
   */
  holdWatches(): void {
    this.holding = true;
  }

  /** Watch requests waiting for `releaseWatches()`, of one resource (plural) or all. */
  heldWatchCount(plural?: string): number {
    return this.held.filter((h) => !h.res.destroyed && (plural === undefined || h.resource.plural === plural))
      .length;
  }

  /** Answers the held watch requests (from the resourceVersion each asked for) and stops holding. */
  releaseWatches(): void {
    this.holding = false;
    for (const h of this.held.splice(0)) if (!h.res.destroyed) h.start();
  }

  currentVersion(): number {
    return this.rv;
  }

  /** Creates or updates an object as a user's `kubectl apply` would (no client token recorded). */
  apply(object: Obj): Obj {
    const resource = this.typeOf(object.apiVersion ?? 'v1', object.kind ?? '');
    const existing = this.bucket(resource).get(this.key(resource, object.metadata));
    if (!existing) return this.create(resource, structuredClone(object));
    return this.replace(resource, existing, { ...structuredClone(object), status: existing.status }, false);
  }

  remove(apiVersion: string, kind: string, name: string, namespace?: string): void {
    const resource = this.typeOf(apiVersion, kind);
    const key = this.key(resource, { name, namespace });
    const existing = this.bucket(resource).get(key);
    if (!existing) return;
    this.bucket(resource).delete(key);
    this.emit('DELETED', resource, {
      ...existing,
      metadata: { ...existing.metadata, resourceVersion: this.next() },
    });
  }

  get(apiVersion: string, kind: string, name: string, namespace?: string): Obj | undefined {
    const resource = this.typeOf(apiVersion, kind);
    const o = this.bucket(resource).get(this.key(resource, { name, namespace }));
    return o ? structuredClone(o) : undefined;
  }

  list(apiVersion: string, kind: string): Obj[] {
    return [...this.bucket(this.typeOf(apiVersion, kind)).values()].map((o) => structuredClone(o));
  }

  private typeOf(apiVersion: string, kind: string): ResourceType {
    const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
    const t = TYPES.find((r) => r.group === group && r.kind === kind);
    if (!t) throw new Error(`fake API server: unknown kind ${apiVersion} ${kind}`);
    return t;
  }

  private bucket(resource: ResourceType): Map<string, Obj> {
    let b = this.store.get(resource);
    if (!b) {
      b = new Map();
      this.store.set(resource, b);
    }
    return b;
  }

  private key(resource: ResourceType, meta: { name: string; namespace?: unknown }): string {
    return resource.namespaced
      ? `${(meta.namespace as string | undefined) ?? 'default'}/${meta.name}`
      : meta.name;
  }

  private next(): string {
    this.rv++;
    return String(this.rv);
  }

  private withVersion(resource: ResourceType, o: Obj, version: string, inList: boolean): Obj {
    const apiVersion = resource.group ? `${resource.group}/${version}` : version;
    if (inList && !resource.custom) {
      const { apiVersion: _a, kind: _k, ...rest } = o;
      return rest as Obj;
    }
    return { ...o, apiVersion, kind: resource.kind };
  }

  private create(resource: ResourceType, object: Obj): Obj {
    const bucket = this.bucket(resource);
    if (resource.namespaced) object.metadata.namespace ??= 'default';
    else delete object.metadata.namespace;
    const key = this.key(resource, object.metadata);
    if (bucket.has(key)) {
      throw new HttpError(
        409,
        'AlreadyExists',
        `${resource.plural} "${object.metadata.name}" already exists`,
      );
    }
    const stored: Obj = {
      ...object,
      apiVersion: resource.group ? `${resource.group}/${resource.versions[0]}` : 'v1',
      kind: resource.kind,
      metadata: {
        ...object.metadata,
        uid: randomUUID(),
        creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        resourceVersion: this.next(),
        ...(object.spec !== undefined ? { generation: 1 } : {}),
      },
    };
    bucket.set(key, stored);
    this.emit('ADDED', resource, stored);
    return stored;
  }

  private replace(resource: ResourceType, existing: Obj, next: Obj, checkVersion: boolean): Obj {
    const wanted = next.metadata?.resourceVersion;
    if (checkVersion && wanted && wanted !== existing.metadata.resourceVersion) {
      throw new HttpError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${resource.plural} "${existing.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
      );
    }
    const specChanged = JSON.stringify(next.spec) !== JSON.stringify(existing.spec);
    const generation = existing.metadata.generation as number | undefined;
    const stored: Obj = {
      ...next,
      apiVersion: existing.apiVersion,
      kind: resource.kind,
      metadata: {
        ...next.metadata,
        name: existing.metadata.name,
        ...(resource.namespaced ? { namespace: existing.metadata.namespace } : {}),
        uid: existing.metadata.uid,
        creationTimestamp: existing.metadata.creationTimestamp,
        resourceVersion: this.next(),
        ...(generation !== undefined ? { generation: specChanged ? generation + 1 : generation } : {}),
      },
    };
    this.bucket(resource).set(this.key(resource, existing.metadata), stored);
    this.emit('MODIFIED', resource, stored);
    return stored;
  }

  private emit(type: Event['type'], resource: ResourceType, object: Obj): void {
    const event: Event = { rv: this.rv, type, resource, object: structuredClone(object) };
    this.events.push(event);
    for (const w of this.watchers) if (w.resource === resource) this.send(w, event);
  }

  private send(w: Watcher, event: Event): void {
    if (w.namespace && event.object.metadata.namespace !== w.namespace) return;
    if (!w.matches(event.object)) return;
    w.res.write(
      `${JSON.stringify({ type: event.type, object: this.withVersion(event.resource, event.object, w.version, false) })}\n`,
    );
  }

  private parsePath(pathname: string): {
    resource: ResourceType;
    version: string;
    namespace?: string;
    name?: string;
    subresource?: string;
  } {
    const parts = pathname.split('/').filter(Boolean);
    let group: string;
    let version: string;
    let rest: string[];
    if (parts[0] === 'api') {
      group = '';
      version = parts[1] ?? '';
      rest = parts.slice(2);
    } else if (parts[0] === 'apis') {
      group = parts[1] ?? '';
      version = parts[2] ?? '';
      rest = parts.slice(3);
    } else throw new HttpError(404, 'NotFound', `the server could not find the requested resource`);
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const resource = TYPES.find(
      (t) => t.group === group && t.plural === rest[0] && t.versions.includes(version),
    );
    if (!resource) throw new HttpError(404, 'NotFound', `the server could not find the requested resource`);
    return { resource, version, namespace, name: rest[1], subresource: rest[2] };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    this.requests.push({ method: req.method ?? 'GET', url: req.url ?? '' });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      if (req.method === 'POST' && url.pathname === '/apis/authentication.k8s.io/v1/tokenreviews') {
        send(201, this.tokenReview(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
        return;
      }
      const target = this.parsePath(url.pathname);
      const { resource, version, namespace, name, subresource } = target;
      const method = req.method ?? 'GET';
      if (method !== 'GET') {
        this.writes.push({
          method,
          path: url.pathname,
          token: (req.headers.authorization ?? '').replace(/^Bearer /, ''),
          kind: resource.kind,
        });
      }
      const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Obj) : undefined;
      const bucket = this.bucket(resource);
      const verb = { GET: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' }[method];
      const rule = `${verb} ${resource.plural}${subresource ? `/${subresource}` : ''}`;
      if ((name || method === 'POST') && this.denied.has(rule)) {
        throw new HttpError(
          403,
          'Forbidden',
          `${resource.plural}${resource.group ? `.${resource.group}` : ''} is forbidden: User cannot ${verb} resource "${resource.plural}${subresource ? `/${subresource}` : ''}"`,
        );
      }
      if (method === 'GET' && !name) {
        if (this.forbidden.has(resource.plural)) {
          throw new HttpError(
            403,
            'Forbidden',
            `${resource.plural} is forbidden: User cannot list resource "${resource.plural}"`,
          );
        }
        const matches = (o: Obj) =>
          selector(url.searchParams.get('fieldSelector'), false)(o) &&
          selector(url.searchParams.get('labelSelector'), true)(o);
        const watch = url.searchParams.get('watch');
        if (watch === 'true' || watch === '1') {
          const start = () =>
            this.watch(
              res,
              { resource, version, namespace, matches },
              url.searchParams.get('resourceVersion'),
            );
          if (this.holding) this.held.push({ resource, start, res });
          else start();
          return;
        }
        const items = [...bucket.values()]
          .filter((o) => (namespace ? o.metadata.namespace === namespace : true))
          .filter(matches)
          .map((o) => this.withVersion(resource, o, version, true));
        send(200, {
          kind: `${resource.kind}List`,
          apiVersion: resource.group ? `${resource.group}/${version}` : version,
          metadata: { resourceVersion: String(this.rv) },
          items,
        });
        return;
      }
      const key = resource.namespaced ? `${namespace ?? 'default'}/${name}` : (name ?? '');
      const existing = name ? bucket.get(key) : undefined;
      const notFound = () =>
        new HttpError(
          404,
          'NotFound',
          `${resource.plural}${resource.group ? `.${resource.group}` : ''} "${name}" not found`,
        );
      switch (method) {
        case 'GET':
          if (!existing) throw notFound();
          send(200, this.withVersion(resource, existing, version, false));
          return;
        case 'POST': {
          if (!body) throw new HttpError(400, 'BadRequest', 'no body');
          if (resource.namespaced) body.metadata.namespace = namespace ?? body.metadata.namespace;
          send(201, this.withVersion(resource, this.create(resource, body), version, false));
          return;
        }
        case 'PUT': {
          if (!existing) throw notFound();
          if (!body) throw new HttpError(400, 'BadRequest', 'no body');
          const next: Obj =
            subresource === 'status'
              ? { ...existing, status: body.status, metadata: { ...existing.metadata, ...pickVersion(body) } }
              : { ...body, ...(resource.custom ? { status: existing.status } : {}) };
          send(200, this.withVersion(resource, this.replace(resource, existing, next, true), version, false));
          return;
        }
        case 'PATCH': {
          if (!existing) throw notFound();
          const type = req.headers['content-type'] ?? '';
          let patched: Obj;
          if (type.startsWith('application/merge-patch+json')) patched = mergePatch(existing, body) as Obj;
          else if (type.startsWith('application/json-patch+json'))
            patched = jsonPatch(existing, body as unknown as { op: string; path: string }[]);
          else
            throw new HttpError(
              415,
              'UnsupportedMediaType',
              `the body of the request was in an unknown format: ${type}`,
            );
          const next: Obj =
            subresource === 'status'
              ? { ...existing, status: patched.status }
              : { ...patched, ...(resource.custom ? { status: existing.status } : {}) };
          send(200, this.withVersion(resource, this.replace(resource, existing, next, true), version, false));
          return;
        }
        case 'DELETE': {
          if (!existing) throw notFound();
          this.remove(
            existing.apiVersion ?? 'v1',
            resource.kind,
            existing.metadata.name,
            existing.metadata.namespace,
          );
          send(200, statusBody(200, '', 'deleted'));
          return;
        }
        default:
          throw new HttpError(405, 'MethodNotAllowed', `method ${method} not allowed`);
      }
    } catch (err) {
      if (err instanceof HttpError) send(err.code, statusBody(err.code, err.reason, err.message));
      else send(500, statusBody(500, 'InternalError', (err as Error).message));
    }
  }

  /** authentication.k8s.io/v1 TokenReview: a registered token is its service account, anything else is not authenticated. */
  private tokenReview(review: { spec?: { token?: string; audiences?: string[] } }): unknown {
    const known = this.tokens.get(review.spec?.token ?? '');
    const wanted = review.spec?.audiences ?? [];
    const audiences = known?.audiences.filter((a) => wanted.length === 0 || wanted.includes(a)) ?? [];
    const status =
      known && audiences.length > 0
        ? {
            authenticated: true,
            audiences,
            user: {
              username: `system:serviceaccount:${known.namespace}:${known.serviceAccount}`,
              groups: [
                'system:serviceaccounts',
                `system:serviceaccounts:${known.namespace}`,
                'system:authenticated',
              ],
            },
          }
        : { authenticated: false, error: '[invalid bearer token, token lookup failed]' };
    return { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: review.spec, status };
  }

  private watch(res: http.ServerResponse, w: Omit<Watcher, 'res'>, resourceVersion: string | null): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const watcher: Watcher = { ...w, res };
    const from = resourceVersion ? Number(resourceVersion) : 0;
    if (from > 0 && from < this.compactedBelow) {
      const status = statusBody(410, 'Expired', `too old resource version: ${from} (${this.compactedBelow})`);
      res.end(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
      return;
    }
    if (from === 0) {
      for (const o of this.bucket(w.resource).values()) {
        this.send(watcher, { rv: this.rv, type: 'ADDED', resource: w.resource, object: o });
      }
    } else {
      for (const e of this.events) if (e.rv > from && e.resource === w.resource) this.send(watcher, e);
    }
    this.watchers.add(watcher);
    res.on('close', () => this.watchers.delete(watcher));
  }
}

function pickVersion(body: Obj): Record<string, unknown> {
  return body.metadata?.resourceVersion ? { resourceVersion: body.metadata.resourceVersion } : {};
}
