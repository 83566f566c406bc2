/**
 * The front half of the worker's request handler, up to routing: the uWS header walk (one forEach pass that counts,
 * classifies and builds the forwarded header block), the request-id choice, the framing and size checks, and the
 * problem+json write. It is driven through createHandler with stand-in uWS objects and a worker that is draining,
 * so every request stops right before routing (with a 503 written to a no-op response).
 * Compare the cases to see the cost per header and of a client-supplied request id.
 */
import { defineSuite, consume } from '../../src/bench/micro-api.js';
import { createHandler, type HandlerState } from '../../src/worker/handler.js';
import { loadConfigText } from '../../src/config/load.js';
import { compileConfig } from '../../src/config/compile.js';
import { Runtime } from '../../src/worker/runtime.js';

type Headers = Array<[string, string]>;

const CURL: Headers = [
  ['host', 'api.example.com'],
  ['user-agent', 'curl/8.5.0'],
  ['accept', '*/*'],
];
const BROWSER: Headers = [
  ['host', 'api.example.com'],
  ['connection', 'keep-alive'],
  ['sec-ch-ua', '"Chromium";v="124", "Not-A.Brand";v="99"'],
  ['accept', 'application/json, text/plain, */*'],
  ['sec-ch-ua-mobile', '?0'],
  ['authorization', 'Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'],
  ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36'],
  ['sec-ch-ua-platform', '"Linux"'],
  ['origin', 'https://app.example.com'],
  ['sec-fetch-site', 'same-site'],
  ['sec-fetch-mode', 'cors'],
  ['sec-fetch-dest', 'empty'],
  ['referer', 'https://app.example.com/dashboard'],
  ['accept-encoding', 'gzip, deflate, br, zstd'],
  ['accept-language', 'en-GB,en;q=0.9'],
  ['cookie', 'session=0123456789abcdef0123456789abcdef; prefs=compact'],
];
const WITH_ID: Headers = [...CURL, ['x-request-id', '7f3a9c2e-1b4d-4e8f-9a6b-2c1d0e9f8a7b']];
const FORWARDED: Headers = [...CURL, ['x-forwarded-for', '203.0.113.7, 198.51.100.2'], ['via', '1.1 edge'], ['x-forwarded-proto', 'https']];

class FakeRequest {
  constructor(readonly headers: Headers) {}
  getCaseSensitiveMethod(): string {
    return 'GET';
  }
  getMethod(): string {
    return 'get';
  }
  getUrl(): string {
    return '/v1/orders/12345/items';
  }
  getQuery(): string | undefined {
    return 'page=2&limit=50';
  }
  getHeader(name: string): string {
    for (const [k, v] of this.headers) if (k === name) return v;
    return '';
  }
  forEach(cb: (k: string, v: string) => void): void {
    const h = this.headers;
    for (let i = 0; i < h.length; i++) cb(h[i][0], h[i][1]);
  }
}

/**
 * A response that accepts the calls a rejected request makes and writes nothing. A plain class, not a Proxy:
 * Proxy traps cost more than the code being measured. A call it lacks throws, and the case fails loudly.
 */
class FakeResponse {
  ended = 0;
  writeStatus(): this {
    return this;
  }
  writeHeader(): this {
    return this;
  }
  end(): this {
    this.ended++;
    return this;
  }
  cork(f: () => void): this {
    f();
    return this;
  }
  onAborted(): this {
    return this;
  }
  getRemoteAddressAsText(): ArrayBuffer {
    return LOOPBACK;
  }
}
const LOOPBACK = new TextEncoder().encode('127.0.0.1').buffer as ArrayBuffer;
const fakeResponse = new FakeResponse();

let runtime: Runtime | null = null;

export default defineSuite({
  name: 'request-scan',
  description: 'handler front half (header walk, request id, framing checks, problem write) per request',
  cases() {
    const config = {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      upstreams: { origin: { nodes: [{ url: 'http://127.0.0.1:9' }] } },
      routes: [{ name: 'all', match: { prefix: '/' }, upstream: 'origin' }],
    };
    const { plan } = compileConfig(loadConfigText(JSON.stringify(config), 'scan.json', {}), 'scan.json');
    runtime = new Runtime(plan, null);
    let rejected = 0;
    const noop = () => {};
    const state = {
      runtime,
      tls: false,
      draining: true,
      closing: false,
      inFlight: 0,
      viaValue: runtime.viaValue,
      counters: { add: noop, status: noop, observe: noop },
      started: noop,
      finished: noop,
      rejected: () => { rejected++; },
      onInternalError: (err: Error) => { throw err; },
    } as unknown as HandlerState;
    const handle = createHandler(state, 0);
    const cases = Object.entries({ 'curl-like, 3 headers': CURL, 'browser-like, 16 headers': BROWSER, '3 headers + x-request-id': WITH_ID, '3 headers + forwarding headers': FORWARDED });
    return cases.map(([name, headers]) => {
      const req = new FakeRequest(headers);
      const before = fakeResponse.ended;
      handle(fakeResponse as never, req as never);
      if (fakeResponse.ended !== before + 1) throw new Error('request-scan: the stand-in request was not answered at the draining check');
      const reps = 8;
      return {
        name,
        ops: reps,
        fn: () => {
          for (let i = 0; i < reps; i++) handle(fakeResponse as never, req as never);
          consume(fakeResponse.ended + rejected);
        },
      };
    });
  },
  teardown() {
    if (runtime) for (const u of runtime.upstreams) for (const p of u.pools) p.close();
    runtime = null;
  },
});
