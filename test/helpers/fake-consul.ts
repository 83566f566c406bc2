import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One instance as Consul's health API lists it (the fields the discovery source reads, plus checks and tags). */
export interface ConsulInstance {
  node: string;
  nodeAddress: string;
  /** Service.Address; empty means "the node's address" */
  address?: string;
  port: number;
  weight?: number;
  tags?: string[];
  datacenter?: string;
  zone?: string;
  /** the aggregated check status */
  health?: 'passing' | 'warning' | 'critical';
}

export interface ConsulRequest {
  url: URL;
  headers: IncomingMessage['headers'];
  at: number;
}

export interface FakeConsul {
  address: string;
  requests: ConsulRequest[];
  /** replaces the instances and moves the index (to `index`, or one up); wakes blocked queries */
  set(instances: ConsulInstance[], index?: number): void;
  /** the index answered now */
  readonly index: number;
  /**
   * how the next answers go wrong: a status with a text body, a body that is not JSON, no answer at all (held until
   * the client gives up), an X-Consul-Index of 0, or every query answered at once with a new index ("churn")
   */
  fault: { status: number } | 'garbage' | 'hang' | 'zero-index' | 'churn' | null;
  /** requests currently held open (blocking or hanging) */
  held(): number;
  close(): Promise<void>;
}

/** Go duration as Consul takes it in `wait`: 10s, 1500ms, 5m. */
function parseWait(v: string | null): number {
  if (!v) return 5 * 60_000;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(v);
  if (!m) return 5 * 60_000;
  const n = Number(m[1]);
  return Math.min(10 * 60_000, m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000);
}

/**
 * A loopback HTTP server that speaks the part of Consul's API the discovery source uses: `GET
 * /v1/health/service/<name>` with `passing`, `dc`, `tag` (repeatable), and blocking queries (`index` + `wait`: the
 * request is held until the index moves past the one given or wait runs out, then answered with X-Consul-Index).
 * An ACL token, when set, must come as X-Consul-Token (403 otherwise, as Consul answers).
 */
export async function startFakeConsul(opts: { service: string; token?: string }): Promise<FakeConsul> {
  let instances: ConsulInstance[] = [];
  let index = 1;
  const requests: ConsulRequest[] = [];
  const waiters = new Set<() => void>();
  const sockets = new Set<Socket>();
  const holding = new Set<ServerResponse>();

  const fake: FakeConsul = {
    address: '',
    requests,
    fault: null,
    get index() {
      return index;
    },
    set(next, to) {
      instances = next;
      index = to ?? index + 1;
      for (const w of [...waiters]) w();
    },
    held: () => holding.size,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  const answer = (url: URL, res: ServerResponse) => {
    holding.delete(res);
    if (res.destroyed) return;
    const passing = url.searchParams.has('passing') && url.searchParams.get('passing') !== 'false';
    const dc = url.searchParams.get('dc') ?? 'dc1';
    const tags = url.searchParams.getAll('tag');
    const list = instances
      .filter((i) => (i.datacenter ?? 'dc1') === dc)
      .filter((i) => !passing || (i.health ?? 'passing') === 'passing')
      .filter((i) => tags.every((t) => i.tags?.includes(t)))
      .map((i) => ({
        Node: { ID: `id-${i.node}`, Node: i.node, Address: i.nodeAddress, Datacenter: dc, Meta: i.zone ? { zone: i.zone } : {} },
        Service: { ID: `${opts.service}-${i.node}-${i.port}`, Service: opts.service, Tags: i.tags ?? [], Address: i.address ?? '', Port: i.port, Weights: { Passing: i.weight ?? 1, Warning: 1 } },
        Checks: [{ Node: i.node, CheckID: 'serfHealth', Status: i.health ?? 'passing' }],
      }));
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-consul-index': String(fake.fault === 'zero-index' ? 0 : index) };
    if (fake.fault === 'garbage') {
      res.writeHead(200, headers).end('[{"Node": {"Node": "n1", "Addr');
      return;
    }
    res.writeHead(200, headers).end(JSON.stringify(list));
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://consul');
    requests.push({ url, headers: req.headers, at: Date.now() });
    if (req.method !== 'GET' || url.pathname !== `/v1/health/service/${opts.service}`) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    if (opts.token !== undefined && req.headers['x-consul-token'] !== opts.token) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('ACL not found');
      return;
    }
    const fault = fake.fault;
    if (fault === 'hang') {
      holding.add(res);
      res.on('close', () => holding.delete(res));
      return;
    }
    if (fault !== null && typeof fault === 'object') {
      res.writeHead(fault.status, { 'content-type': 'text/plain' }).end('rpc error making call: No cluster leader');
      return;
    }
    if (fault === 'churn') {
      index++;
      return answer(url, res);
    }
    const wanted = Number(url.searchParams.get('index') ?? '0');
    if (!(wanted > 0) || index > wanted) return answer(url, res); // not blocking, or already past the index
    // Held until set() or wait; an index that went backwards (a restore) is only seen on that answer, as in Consul.
    holding.add(res);
    const wake = () => {
      clearTimeout(timer);
      waiters.delete(wake);
      answer(url, res);
    };
    const timer = setTimeout(wake, parseWait(url.searchParams.get('wait')));
    waiters.add(wake);
    res.on('close', () => {
      clearTimeout(timer);
      waiters.delete(wake);
      holding.delete(res);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}
