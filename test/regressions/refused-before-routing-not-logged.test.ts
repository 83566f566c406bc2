import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { rawRequest } from '../helpers/raw.js';
import { eventually } from '../helpers/collector.js';
import { scrape } from '../helpers/prometheus.js';

/**
 * Requests the handler refused while reading them (a `..` path, 414, 431, bad framing) and those matching no route
 * never reached the access log: log hooks ran only for an Exchange, which such a request never becomes. The global
 * access log now sees them with route "-", and the metrics count them under the same route="-". A request refused
 * right after routing (a body over the route's limit) is logged and counted under its route.
 */

type Line = Record<string, any>;

let up: TestUpstream;
let gw: TestGateway;
let file: string;

function lines(): Line[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Line);
}

before(async () => {
  up = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  file = join(mkdtempSync(join(tmpdir(), 'nanogate-refused-')), 'access.log');
  gw = await startGateway(`
limits: { maxUrlLength: 2048, maxHeaderCount: 8 }
observability:
  accessLog: { destination: { type: file, path: ${file} } }
policies:
  accessLog: { sampleRate: 0, headers: [user-agent, authorization] }
upstreams:
  app: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: api, match: { prefix: /api }, upstream: app, maxBodyBytes: 16 }
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
});

const many = Array.from({ length: 10 }, (_, i) => `x-f${i}: v\r\n`).join('');
const CASES: { name: string; request: string; status: number; code: string; route: string; id: string }[] = [
  { name: 'dot segment', request: 'GET /api/%2e%2e/secret HTTP/1.1\r\nhost: a\r\nuser-agent: probe\r\nx-request-id: rq-dot\r\n\r\n', status: 400, code: 'NG_ERR_REQUEST_BAD_PATH', route: '-', id: 'rq-dot' },
  { name: 'URI too long', request: `GET /api/${'a'.repeat(3000)} HTTP/1.1\r\nhost: a\r\nx-request-id: rq-long\r\n\r\n`, status: 414, code: 'NG_ERR_REQUEST_URL_TOO_LONG', route: '-', id: 'rq-long' },
  { name: 'too many header fields', request: `GET /api/x HTTP/1.1\r\nhost: a\r\nx-request-id: rq-431\r\n${many}\r\n`, status: 431, code: 'NG_ERR_REQUEST_HEADERS_TOO_LARGE', route: '-', id: 'rq-431' },
  { name: 'conflicting Content-Length', request: 'POST /api/x HTTP/1.1\r\nhost: a\r\nx-request-id: rq-cl\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabc', status: 400, code: 'NG_ERR_REQUEST_BAD_FRAMING', route: '-', id: 'rq-cl' },
  { name: 'no route', request: 'GET /elsewhere HTTP/1.1\r\nhost: a\r\nauthorization: Bearer s3cret\r\nx-request-id: rq-404\r\n\r\n', status: 404, code: 'NG_ERR_ROUTE_NOT_FOUND', route: '-', id: 'rq-404' },
  { name: 'body over the route limit', request: 'POST /api/x HTTP/1.1\r\nhost: a\r\nx-request-id: rq-413\r\ncontent-length: 64\r\n\r\n', status: 413, code: 'NG_ERR_REQUEST_BODY_TOO_LARGE', route: 'api', id: 'rq-413' },
];

test('refused requests are access-logged (route "-" before routing) and counted under the same route', async () => {
  for (const c of CASES) {
    const res = await rawRequest(gw.port, c.request);
    assert.equal(res.status, c.status, c.name);
  }
  await eventually(() => CASES.every((c) => lines().some((l) => l['nanogate.request_id'] === c.id)));
  for (const c of CASES) {
    const line = lines().find((l) => l['nanogate.request_id'] === c.id)!;
    assert.equal(line['nanogate.route'], c.route, c.name);
    assert.equal(line['http.response.status_code'], c.status, c.name);
    assert.equal(line['error.type'], c.code, c.name);
    assert.equal(line.level, 'info', c.name);
    assert.equal(line['client.address'], '127.0.0.1', c.name);
  }
  const byId = (id: string) => lines().find((l) => l['nanogate.request_id'] === id)!;
  const dot = byId('rq-dot');
  assert.equal(dot['url.path'], '/api/%2e%2e/secret');
  assert.equal(dot['http.request.header.user-agent'], 'probe');
  assert.equal(dot['user_agent.original'], 'probe');
  assert.equal(byId('rq-404')['http.request.header.authorization'], '[redacted]', 'redaction applies');
  assert.ok(byId('rq-long')['url.path'].length < 1100, 'a 414 does not copy its whole target into the log');

  const s = await scrape(gw.adminUrl);
  assert.equal(s.sum('nanogate_requests_total', { route: '-', class: '4xx' }), 5);
  assert.equal(s.sum('nanogate_requests_total', { route: 'api', class: '4xx' }), 1);
  for (const c of CASES) assert.equal(s.sum('nanogate_rejections_total', { code: c.code }), 1, c.code);
});
