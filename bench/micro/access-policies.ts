/**
 * Per-request cost of the ipRestriction check and of the cors hooks, each case isolated (tinybench).
 *
 *   npx tsc -p . ; node dist/bench/micro/access-policies.js
 *
 * The context is a stand-in with the same header lookup and response-header lists as the worker's Exchange, so
 * the figures are the hooks' own cost. "before" cases run the previous CidrSet (split/map/isIP per address,
 * linear scan), kept here as the baseline.
 */
import { isIP } from 'node:net';
import { Bench } from 'tinybench';
import { ipRestrictionPolicy } from '../../src/policies/ip-restriction/index.js';
import { corsPolicy } from '../../src/policies/cors/index.js';
import { CidrSet } from '../../src/shared/cidr.js';
import type { PolicyContext, PolicyEnv, PolicyHooks } from '../../src/pipeline/policy.js';

class BenchContext {
  clientIp = '';
  method = 'GET';
  headerNames: string[] = [];
  headerValues: string[] = [];
  slots: unknown[] = [undefined];
  responseExtra: string[] | null = null;
  responseRemove: string[] | null = null;
  prepared: unknown = null;
  header(name: string): string | undefined {
    const names = this.headerNames;
    for (let i = 0; i < names.length; i++) if (names[i] === name) return this.headerValues[i];
    return undefined;
  }
  addResponseHeader(name: string, value: string): void {
    (this.responseExtra ??= []).push(name, value);
  }
  removeResponseHeader(name: string): void {
    (this.responseRemove ??= []).push(name.toLowerCase());
  }
  respondProblem(code: string, detail?: string): void {
    this.prepared = { code, detail };
  }
  respond(status: number, headers: readonly string[]): void {
    this.prepared = { status, headers };
  }
  reset(): void {
    this.responseExtra = null;
    this.responseRemove = null;
    this.slots[0] = undefined;
    this.prepared = null;
  }
}

const env: PolicyEnv = { workerIndex: 0, slot: 0, routeName: 'bench', services: {} };
const cc = { routeName: 'bench', where: 'bench', config: {}, shared: () => new SharedArrayBuffer(8) };

function ipHook(allow: string[], deny: string[]): PolicyHooks {
  return ipRestrictionPolicy.create(ipRestrictionPolicy.compile!({ allow, deny }, cc), env);
}

// ------------------------------------------------------------------ the previous implementation, as a baseline
function v4Words(ip: string): number[] {
  const p = ip.split('.').map(Number);
  return [((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0];
}
function v6Words(ip: string): number[] | null {
  let head = ip;
  let tailV4: number[] | null = null;
  const lastColon = ip.lastIndexOf(':');
  if (ip.includes('.', lastColon)) {
    tailV4 = v4Words(ip.slice(lastColon + 1));
    head = ip.slice(0, lastColon + 1) + '0:0';
  }
  const [left, right] = head.split('::');
  const l = left ? left.split(':') : [];
  const r = right !== undefined && right !== '' ? right.split(':') : [];
  const fill = head.includes('::') ? 8 - l.length - r.length : 0;
  const groups = [...l, ...new Array(fill).fill('0'), ...r].map((g) => parseInt(g, 16));
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) return null;
  const words = [0, 1, 2, 3].map((i) => ((groups[2 * i] << 16) | groups[2 * i + 1]) >>> 0);
  if (tailV4) words[3] = tailV4[0];
  return words;
}
function oldParseIp(ip: string): { v6: boolean; words: number[] } | null {
  const kind = isIP(ip);
  if (kind === 4) return { v6: false, words: v4Words(ip) };
  if (kind === 6) {
    const words = v6Words(ip.toLowerCase());
    if (!words) return null;
    if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) return { v6: false, words: [words[3]] };
    return { v6: true, words };
  }
  return null;
}
interface OldCidr { v6: boolean; words: number[]; bits: number }
function oldParseCidr(text: string): OldCidr | null {
  const [addr, bitsText] = text.split('/');
  const ip = oldParseIp(addr);
  if (!ip) return null;
  const max = ip.v6 ? 128 : 32;
  const bits = bitsText === undefined ? max : Number(bitsText);
  return { v6: ip.v6, words: ip.words, bits };
}
function oldContains(cidr: OldCidr, ip: { v6: boolean; words: readonly number[] }): boolean {
  if (cidr.v6 !== ip.v6) return false;
  let bits = cidr.bits;
  for (let i = 0; i < cidr.words.length && bits > 0; i++) {
    const take = Math.min(32, bits);
    const mask = take === 32 ? 0xffffffff : ~(0xffffffff >>> take) >>> 0;
    if (((cidr.words[i] & mask) >>> 0) !== ((ip.words[i] & mask) >>> 0)) return false;
    bits -= take;
  }
  return true;
}
class OldCidrSet {
  readonly blocks: OldCidr[];
  constructor(blocks: string[]) {
    this.blocks = blocks.map(oldParseCidr).filter((b): b is OldCidr => b !== null);
  }
  has(text: string): boolean {
    const ip = oldParseIp(text);
    if (!ip) return false;
    for (const b of this.blocks) if (oldContains(b, ip)) return true;
    return false;
  }
}

// ------------------------------------------------------------------ cases
const ALLOW = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '203.0.113.0/24', '2001:db8::/32', 'fd00::/8'];
const DENY = ['10.66.0.0/16', '2001:db8:bad::/48'];
const big: string[] = [];
for (let i = 0; i < 1000; i++) big.push(`${(i * 7919) % 223 + 1}.${(i * 104729) % 256}.${i % 256}.0/24`);
const V4 = '203.0.113.57';
const V6 = '2001:db8:4:1::77';
const V4_BIG = '100.50.25.1'; // in no block

const ipSmall = ipHook(ALLOW, DENY);
const ipBig = ipHook(big, []);
const ctx = new BenchContext();
const pc = ctx as unknown as PolicyContext;
const oldAllow = new OldCidrSet(ALLOW);
const oldDeny = new OldCidrSet(DENY);
const oldBig = new OldCidrSet(big);
const newBig = new CidrSet(big);

const corsData = corsPolicy.compile!(
  { origins: ['https://app.example.com', 'https://*.example.org'], methods: ['GET', 'POST'], allowHeaders: ['*'], exposeHeaders: ['x-total'], credentials: true, maxAge: 600 },
  cc,
);
const cors = corsPolicy.create(corsData, env);

let sink = 0;
const bench = new Bench({ time: 700, warmup: true });
bench
  .add('floor: an empty case (harness overhead)', () => {
    sink++;
  })
  .add('ip: IPv4 allowed (6 allow + 2 deny blocks)', () => {
    ctx.clientIp = V4;
    sink += ipSmall.access!(pc);
  })
  .add('ip: IPv4, before (split/map, linear)', () => {
    sink += !oldDeny.has(V4) && oldAllow.has(V4) ? 0 : 1;
  })
  .add('ip: IPv6 allowed (6 allow + 2 deny blocks)', () => {
    ctx.clientIp = V6;
    sink += ipSmall.access!(pc);
  })
  .add('ip: IPv6, before (split/map, linear)', () => {
    sink += !oldDeny.has(V6) && oldAllow.has(V6) ? 0 : 1;
  })
  .add('ip: IPv4 against 1,000 blocks (binary search)', () => {
    sink += newBig.has(V4_BIG) ? 1 : 0;
  })
  .add('ip: IPv4 against 1,000 blocks, before (linear)', () => {
    sink += oldBig.has(V4_BIG) ? 1 : 0;
  })
  .add('cors: actual request, allowed exact origin (response hook)', () => {
    ctx.reset();
    cors.access!(pc);
    cors.response!(pc);
    sink += ctx.responseExtra!.length;
  }, {
    beforeAll() {
      ctx.method = 'GET';
      ctx.headerNames = ['host', 'user-agent', 'accept', 'origin', 'cookie'];
      ctx.headerValues = ['api.example.com', 'Mozilla/5.0', '*/*', 'https://app.example.com', 'a=b'];
    },
  })
  .add('cors: actual request, wildcard origin', () => {
    ctx.reset();
    cors.access!(pc);
    cors.response!(pc);
    sink += ctx.responseExtra!.length;
  }, {
    beforeAll() {
      ctx.headerValues = ['api.example.com', 'Mozilla/5.0', '*/*', 'https://shop.eu.example.org', 'a=b'];
    },
  })
  .add('cors: request without Origin', () => {
    ctx.reset();
    cors.access!(pc);
    cors.response!(pc);
    sink += ctx.responseExtra!.length;
  }, {
    beforeAll() {
      ctx.headerNames = ['host', 'user-agent', 'accept', 'cookie'];
      ctx.headerValues = ['api.example.com', 'curl/8', '*/*', 'a=b'];
    },
  })
  .add('cors: preflight answered', () => {
    ctx.reset();
    sink += cors.access!(pc);
  }, {
    beforeAll() {
      ctx.method = 'OPTIONS';
      ctx.headerNames = ['host', 'origin', 'access-control-request-method', 'access-control-request-headers'];
      ctx.headerValues = ['api.example.com', 'https://app.example.com', 'POST', 'content-type, authorization'];
    },
  });

await bench.run();
console.table(
  bench.tasks.map((t) => {
    const r = t.result as unknown as { latency: { p50: number; p99: number }; throughput: { mean: number } };
    return { case: t.name, 'p50 ns': Math.round(r.latency.p50 * 1e6), 'p99 ns': Math.round(r.latency.p99 * 1e6), 'ops/s': Math.round(r.throughput.mean).toLocaleString('en') };
  }),
);
if (sink === -1) console.log(sink);
