import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface TestEndpoint {
  ip: string;
  /** omitted: the condition is left out (nil), which the API says to read as true (ready, serving) or false (terminating) */
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  zone?: string;
}

/** An EndpointSlice (discovery.k8s.io/v1) of `service` with one port (or the given ports) and the given endpoints. */
export function slice(
  name: string,
  service: string,
  endpoints: TestEndpoint[],
  ports: { name?: string; port: number }[] = [{ name: 'http', port: 8080 }],
  addressType = 'IPv4',
): Record<string, unknown> {
  return {
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
    addressType,
    ports: ports.map((p) => ({ ...p, protocol: 'TCP' })),
    endpoints: endpoints.map((e) => {
      const conditions: Record<string, boolean> = {};
      if (e.ready !== undefined) conditions.ready = e.ready;
      if (e.serving !== undefined) conditions.serving = e.serving;
      if (e.terminating !== undefined) conditions.terminating = e.terminating;
      return { addresses: [e.ip], conditions, ...(e.zone ? { zone: e.zone } : {}) };
    }),
  };
}

export interface KubeRequest {
  url: URL;
  headers: Record<string, string | string[] | undefined>;
}

export interface FakeKube {
  url: string;
  requests: KubeRequest[];
  lists(): KubeRequest[];
  watches(): KubeRequest[];
  /** open watch streams */
  watching(): number;
  /** the current resourceVersion */
  readonly rv: number;
  /** creates (ADDED) or replaces (MODIFIED) a slice, by metadata.name */
  upsert(s: Record<string, unknown>): void;
  /** DELETED */
  remove(name: string): void;
  /** a BOOKMARK event on every open watch, at the current resourceVersion */
  bookmark(): void;
  /**
   * forgets the event history (etcd compaction): a watch from an older resourceVersion is answered 410, as a
   * response status ('status') or as an ERROR event in a 200 stream ('event', what API servers send on a watch that
   * was already open)
   */
  compact(as: 'status' | 'event'): void;
  /** destroys every open watch connection mid-stream */
  dropWatches(): void;
  /** writes a raw line into every open watch */
  sendRaw(line: string): void;
  /** the next lists answer this status */
  failLists: number | null;
  close(): Promise<void>;
}

/**
 * A loopback HTTP server that speaks the EndpointSlice part of the Kubernetes API: list with a labelSelector on
 * kubernetes.io/service-name, and watch (`watch=1&resourceVersion=RV`): the events after RV are replayed from its
 * history, new ones are streamed as newline-delimited JSON, bookmarks when asked, and the stream ends after
 * timeoutSeconds. A bearer token, when set, is required (401 Status otherwise).
 */
export async function startFakeKube(opts: { namespace: string; token?: string }): Promise<FakeKube> {
  const slices = new Map<string, Record<string, unknown>>();
  const history: { rv: number; type: string; object: Record<string, unknown> }[] = [];
  let rv = 100;
  let compactedAt = 0;
  let goneAs: 'status' | 'event' = 'status';
  const requests: KubeRequest[] = [];
  const watchers = new Set<{ res: ServerResponse; service: string }>();
  const sockets = new Set<Socket>();
  const path = `/apis/discovery.k8s.io/v1/namespaces/${opts.namespace}/endpointslices`;

  const serviceOf = (o: Record<string, unknown>) => ((o.metadata as { labels?: Record<string, string> }).labels ?? {})['kubernetes.io/service-name'];
  const stamped = (o: Record<string, unknown>, at: number) => ({ ...o, metadata: { ...(o.metadata as object), resourceVersion: String(at) } });
  const emit = (type: string, object: Record<string, unknown>) => {
    history.push({ rv, type, object });
    for (const w of watchers) if (serviceOf(object) === w.service) w.res.write(JSON.stringify({ type, object }) + '\n');
  };
  const status = (res: ServerResponse, code: number, reason: string, message: string) =>
    res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message }));

  const fake: FakeKube = {
    url: '',
    requests,
    lists: () => requests.filter((r) => r.url.searchParams.get('watch') !== '1'),
    watches: () => requests.filter((r) => r.url.searchParams.get('watch') === '1'),
    watching: () => watchers.size,
    get rv() {
      return rv;
    },
    upsert(s) {
      const name = (s.metadata as { name: string }).name;
      const type = slices.has(name) ? 'MODIFIED' : 'ADDED';
      rv++;
      const o = stamped(s, rv);
      slices.set(name, o);
      emit(type, o);
    },
    remove(name) {
      const o = slices.get(name);
      if (!o) return;
      slices.delete(name);
      rv++;
      emit('DELETED', stamped(o, rv));
    },
    bookmark() {
      rv++; // other objects in the store moved on
      for (const w of watchers) w.res.write(JSON.stringify({ type: 'BOOKMARK', object: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(rv) } } }) + '\n');
    },
    compact(as) {
      goneAs = as;
      rv++; // a write elsewhere in the store, then compaction up to it: every resourceVersion seen so far is gone
      compactedAt = rv;
      history.length = 0;
    },
    dropWatches() {
      for (const w of watchers) w.res.socket?.destroy();
      watchers.clear();
    },
    sendRaw(line) {
      for (const w of watchers) w.res.write(line + '\n');
    },
    failLists: null,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://kube');
    requests.push({ url, headers: req.headers });
    if (url.pathname !== path) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
    if (opts.token !== undefined && req.headers.authorization !== `Bearer ${opts.token}`) return status(res, 401, 'Unauthorized', 'Unauthorized');
    const selector = /^kubernetes\.io\/service-name=([a-z0-9-]+)$/.exec(url.searchParams.get('labelSelector') ?? '');
    if (!selector) return status(res, 400, 'BadRequest', 'this test server wants labelSelector=kubernetes.io/service-name=NAME');
    const service = selector[1];
    const mine = [...slices.values()].filter((s) => serviceOf(s) === service);

    if (url.searchParams.get('watch') !== '1') {
      if (fake.failLists !== null) return status(res, fake.failLists, 'InternalError', 'etcdserver: request timed out');
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({ kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(rv) }, items: mine }),
      );
      return;
    }
    const from = Number(url.searchParams.get('resourceVersion'));
    if (!(from >= compactedAt)) {
      const message = `too old resource version: ${from} (${compactedAt})`;
      if (goneAs === 'status') return status(res, 410, 'Expired', message);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 410, reason: 'Expired', message } }) + '\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    for (const e of history) if (e.rv > from && serviceOf(e.object) === service) res.write(JSON.stringify({ type: e.type, object: e.object }) + '\n');
    const w = { res, service };
    watchers.add(w);
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? '1800');
    const timer = setTimeout(() => {
      watchers.delete(w);
      res.end();
    }, timeout * 1000);
    res.on('close', () => {
      clearTimeout(timer);
      watchers.delete(w);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}
