import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { getServers } from 'node:dns';
import { connect, isIPv6, type Socket as TcpSocket } from 'node:net';
import { randomInt } from 'node:crypto';
import packet, { type Answer, type Packet } from 'dns-packet';
import type { Logger } from 'pino';
import type { DnsDiscoveryConfig } from './schema.js';
import { Backoff, NodeSetKeeper, SourceTimer, reasonOf, type DiscoveredNode, type DiscoverySource, type DiscoveryStatus } from './source.js';

/**
 * Nodes from DNS: A/AAAA records (the port comes from the config) or SRV records (RFC 2782: port and weight from the
 * record, only the group with the lowest priority value is used, targets resolved to addresses).
 *
 * Queries are sent by hand over UDP (dns-packet) rather than through node:dns because resolveSrv gives no TTL, and the
 * TTL is what says when to look again; the same client serves A/AAAA so that one code path, one time-out and one server
 * list apply to both. A truncated UDP answer is asked again over TCP (RFC 7766). The next resolution happens when the
 * shortest TTL of the records used runs out, held between minTtlSeconds and maxTtlSeconds: a TTL of 0 (dnsmasq's
 * default for local data) would otherwise mean a query loop.
 *
 * Failure: NXDOMAIN, an empty answer, SERVFAIL, a time-out or a server that is gone keep the last good set, and the
 * source retries after retrySeconds, doubling up to maxTtlSeconds.
 */

type AddressType = 'A' | 'AAAA';

interface Server {
  host: string;
  port: number;
}

/** An answer that carries no usable records; `rcode` tells NXDOMAIN from an empty NOERROR. */
class NoRecords extends Error {}

export class DnsSource implements DiscoverySource {
  readonly #config: DnsDiscoveryConfig;
  readonly #keeper: NodeSetKeeper;
  readonly #client: DnsClient;
  readonly #timer = new SourceTimer();
  readonly #backoff: Backoff;
  #running: Promise<void> | null = null;
  #started = false;

  constructor(config: DnsDiscoveryConfig, logger: Logger) {
    this.#config = config;
    this.#keeper = new NodeSetKeeper(`dns:${config.name}/${config.recordType}`, logger);
    this.#client = new DnsClient(config.servers?.map(parseServer) ?? systemServers(), config.timeoutMs, config.attempts);
    this.#backoff = new Backoff(config.retrySeconds * 1000, config.maxTtlSeconds * 1000);
  }

  start(onNodes: (nodes: readonly DiscoveredNode[]) => void): void {
    if (this.#started) throw new Error('a discovery source starts once');
    this.#started = true;
    this.#keeper.attach(onNodes);
    this.#run();
  }

  async stop(): Promise<void> {
    this.#timer.stop();
    this.#keeper.detach();
    this.#client.close();
    await this.#running;
  }

  status(): DiscoveryStatus {
    return this.#keeper.status();
  }

  #run(): void {
    if (this.#timer.stopped) return;
    this.#running = this.#resolveAndSchedule().finally(() => (this.#running = null));
  }

  async #resolveAndSchedule(): Promise<void> {
    let delayMs: number;
    try {
      const { nodes, ttl } = await this.#resolve();
      if (this.#timer.stopped) return;
      this.#keeper.accept(nodes);
      this.#backoff.reset();
      delayMs = clamp(ttl, this.#config.minTtlSeconds, this.#config.maxTtlSeconds) * 1000;
    } catch (err) {
      if (this.#timer.stopped) return;
      this.#keeper.reject(reasonOf(err));
      delayMs = this.#backoff.fail();
    }
    this.#timer.set(delayMs, () => this.#run());
  }

  async #resolve(): Promise<{ nodes: DiscoveredNode[]; ttl: number }> {
    const c = this.#config;
    if (c.recordType === 'SRV') return this.#resolveSrv();
    const { addresses, ttl } = await this.#addresses(c.name, typesOf(c.recordType), null);
    return { nodes: addresses.map((host) => ({ host, port: c.port!, weight: c.weight })), ttl };
  }

  /**
   * The addresses of a name for each asked type; `hint` is the additional section of an SRV answer, used when it
   * already holds them. A transport failure on any type fails the whole lookup: half an answer would drop nodes.
   */
  async #addresses(name: string, types: readonly AddressType[], hint: readonly Answer[] | null): Promise<{ addresses: string[]; ttl: number }> {
    const addresses: string[] = [];
    let ttl = Infinity;
    const empty: string[] = [];
    for (const type of types) {
      let records = hint?.filter((a) => a.type === type && sameName(a.name, name)) ?? [];
      let chainTtl = Infinity;
      if (records.length === 0) {
        try {
          const res = await this.#client.query(name, type);
          records = res.answers.filter((a) => a.type === type);
          // A CNAME on the way is as short-lived as its TTL says.
          for (const a of res.answers) if (a.type === 'CNAME') chainTtl = Math.min(chainTtl, a.ttl ?? 0);
        } catch (err) {
          if (!(err instanceof NoRecords)) throw err;
          empty.push(err.message);
          continue;
        }
      }
      if (records.length === 0) {
        empty.push(`no ${type} record for ${name}`);
        continue;
      }
      for (const r of records) {
        addresses.push(String(r.data));
        ttl = Math.min(ttl, r.ttl ?? 0, chainTtl);
      }
    }
    if (addresses.length === 0) throw new NoRecords(empty.join('; '));
    return { addresses, ttl };
  }

  async #resolveSrv(): Promise<{ nodes: DiscoveredNode[]; ttl: number }> {
    const c = this.#config;
    const res = await this.#client.query(c.name, 'SRV');
    const srv = res.answers.filter((a) => a.type === 'SRV').map((a) => ({ ttl: a.ttl ?? 0, ...(a.data as SrvData) }));
    // RFC 2782: a lone target of "." means the service is decidedly not available here; we keep what we had.
    const usable = srv.filter((r) => r.target !== '' && r.target !== '.');
    if (usable.length === 0) throw new NoRecords(srv.length ? `${c.name}: SRV says the service is not available (target ".")` : `no SRV record for ${c.name}`);
    const priority = Math.min(...usable.map((r) => r.priority));
    const group = usable.filter((r) => r.priority === priority);
    const nodes: DiscoveredNode[] = [];
    let ttl = Infinity;
    const unresolved: string[] = [];
    for (const r of group) {
      let found: { addresses: string[]; ttl: number };
      try {
        found = await this.#addresses(r.target, typesOf(c.srvTargets), res.additionals);
      } catch (err) {
        // A target that does not resolve is left out (it is gone); a time-out fails the whole round (thrown on).
        if (!(err instanceof NoRecords)) throw err;
        unresolved.push(r.target);
        continue;
      }
      ttl = Math.min(ttl, r.ttl, found.ttl);
      // SRV weight 0 means "rarely" (RFC 2782); the balancers' smallest live weight is 1.
      for (const host of found.addresses) nodes.push({ host, port: r.port, weight: Math.max(1, r.weight) });
    }
    if (nodes.length === 0) throw new NoRecords(`no SRV target of ${c.name} resolves (${unresolved.join(', ')})`);
    return { nodes, ttl };
  }
}

interface SrvData {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

function typesOf(t: 'A' | 'AAAA' | 'A+AAAA'): readonly AddressType[] {
  return t === 'A+AAAA' ? ['A', 'AAAA'] : [t];
}

function sameName(a: string, b: string): boolean {
  return a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();
}

function clamp(v: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, v));
}

export function parseServer(s: string): Server {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) return { host: v6[1], port: v6[2] ? Number(v6[2]) : 53 };
  if (isIPv6(s)) return { host: s, port: 53 };
  const [host, port] = s.split(':');
  return { host, port: port ? Number(port) : 53 };
}

function systemServers(): Server[] {
  const list = getServers().map(parseServer);
  return list.length ? list : [{ host: '127.0.0.1', port: 53 }];
}

interface DnsAnswer {
  answers: Answer[];
  additionals: Answer[];
}

/**
 * A minimal stub resolver: one question per query, recursion desired, EDNS(0) with a 4096-byte UDP payload so that
 * most SRV sets fit in one datagram, TCP when the answer is truncated anyway. Each query uses its own UDP socket (a
 * fresh random source port) and a random id, and only an answer with that id and the same question is taken.
 */
export class DnsClient {
  readonly #servers: readonly Server[];
  readonly #timeoutMs: number;
  readonly #attempts: number;
  readonly #open = new Set<UdpSocket | TcpSocket>();
  #closed = false;

  constructor(servers: readonly Server[], timeoutMs: number, attempts: number) {
    this.#servers = servers;
    this.#timeoutMs = timeoutMs;
    this.#attempts = attempts;
  }

  close(): void {
    this.#closed = true;
    for (const s of this.#open) (s as { destroy?: () => void }).destroy ? (s as TcpSocket).destroy() : (s as UdpSocket).close();
    this.#open.clear();
  }

  /** Resolves with the answer; rejects with NoRecords for NXDOMAIN or an empty answer, with an Error otherwise. */
  async query(name: string, type: 'A' | 'AAAA' | 'SRV'): Promise<DnsAnswer> {
    let last: Error = new Error('no DNS server');
    for (let i = 0; i < this.#attempts * this.#servers.length && !this.#closed; i++) {
      const server = this.#servers[i % this.#servers.length];
      let res: Packet;
      try {
        res = await this.#udp(server, name, type);
        if (res.flag_tc) res = await this.#tcp(server, name, type);
      } catch (err) {
        last = new Error(`${type} ${name} @${fmt(server)}: ${reasonOf(err)}`);
        continue;
      }
      const rcode = res.rcode ?? 'NOERROR';
      if (rcode === 'NXDOMAIN') throw new NoRecords(`${name}: NXDOMAIN`);
      if (rcode !== 'NOERROR') {
        // SERVFAIL and REFUSED are about this server: the next one may answer.
        last = new Error(`${type} ${name} @${fmt(server)}: ${rcode}`);
        continue;
      }
      const answers = res.answers ?? [];
      if (!answers.some((a) => a.type === type)) throw new NoRecords(`no ${type} record for ${name}`);
      return { answers, additionals: res.additionals ?? [] };
    }
    throw last;
  }

  #request(name: string, type: string, id: number): Packet {
    return {
      type: 'query',
      id,
      flags: packet.RECURSION_DESIRED,
      questions: [{ type, name }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 }],
    };
  }

  #udp(server: Server, name: string, type: string): Promise<Packet> {
    const id = randomInt(0, 65536);
    const socket = createSocket(isIPv6(server.host) ? 'udp6' : 'udp4');
    this.#open.add(socket);
    return new Promise<Packet>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      const done = (err: Error | null, res?: Packet) => {
        clearTimeout(timer);
        this.#open.delete(socket);
        socket.removeAllListeners();
        socket.on('error', () => {});
        try {
          socket.close();
        } catch {
          /* already closed by close() */
        }
        err ? reject(err) : resolve(res!);
      };
      socket.on('error', (err) => done(err));
      socket.on('close', () => done(new Error('stopped')));
      socket.on('message', (msg) => {
        let res: Packet;
        try {
          res = packet.decode(msg);
        } catch {
          return; // not a DNS message: wait for the real answer or the time-out
        }
        if (res.id !== id || res.type !== 'response' || !matches(res, name, type)) return;
        done(null, res);
      });
      socket.send(packet.encode(this.#request(name, type, id)), server.port, server.host);
    });
  }

  #tcp(server: Server, name: string, type: string): Promise<Packet> {
    const id = randomInt(0, 65536);
    const socket = connect({ host: server.host, port: server.port });
    this.#open.add(socket);
    return new Promise<Packet>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => done(new Error(`no TCP answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      const done = (err: Error | null, res?: Packet) => {
        clearTimeout(timer);
        this.#open.delete(socket);
        socket.removeAllListeners();
        socket.on('error', () => {});
        socket.destroy();
        err ? reject(err) : resolve(res!);
      };
      socket.on('connect', () => socket.write(packet.streamEncode(this.#request(name, type, id))));
      socket.on('error', (err) => done(err));
      socket.on('close', () => done(new Error('connection closed before the answer')));
      socket.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
        let res: Packet | null;
        try {
          res = packet.streamDecode(buf);
        } catch (err) {
          return done(new Error(`malformed TCP answer: ${reasonOf(err)}`));
        }
        if (res === null || res.id !== id || !matches(res, name, type)) return done(new Error('TCP answer does not match the question'));
        done(null, res);
      });
    });
  }
}

function matches(res: Packet, name: string, type: string): boolean {
  const q = res.questions?.[0];
  return q !== undefined && q.type === type && sameName(q.name, name);
}

function fmt(s: Server): string {
  return isIPv6(s.host) ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}
