import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { TestGateway } from '../helpers/gateway.js';
import { startScriptedUpstream, type ScriptedSetup } from '../helpers/scripted-upstream.js';
import { assertProblem, send } from '../helpers/http.js';

/**
 * Upstream field values were trimmed with String.prototype.trim, which also strips U+00A0: the latin1 decoding of
 * an obs-text 0xA0 byte. So "Content-Length: 2<0xA0>" framed a body although it is not 1*DIGIT (RFC 9110 8.6),
 * and a value ending in 0xA0 lost that byte on its way to response policies. OWS is SP and HTAB only
 * (RFC 9110 5.6.3).
 */

const T = { timeout: 30_000 };
let setup: ScriptedSetup;
let gw: TestGateway;

const ANSWERS: Record<string, Buffer> = {
  '/length': Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\xa0\r\n\r\nok', 'latin1'),
  '/value': Buffer.from('HTTP/1.1 200 OK\r\nX-A: a\xa0\r\nContent-Length: 2\r\n\r\nok', 'latin1'),
};

before(async () => {
  // a response field removal makes the gateway write the fields from their string form (the path that trimmed)
  setup = await startScriptedUpstream(ANSWERS, 'policies: { headers: { response: { remove: [x-powered-by] } } }');
  gw = setup.gw;
}, T);
after(() => setup?.close(), T);

test('Content-Length followed by a 0xA0 byte: 502 NG_ERR_UPSTREAM_BAD_RESPONSE', T, async () => {
  assertProblem(await send(gw.port, { path: '/length' }), 502, 'NG_ERR_UPSTREAM_BAD_RESPONSE');
});

test('a value ending in 0xA0 reaches the client with that byte, also through a response header policy', T, async () => {
  const res = await send(gw.port, { path: '/value' });
  assert.equal(res.status, 200);
  const i = res.rawHeaders.findIndex((h, k) => k % 2 === 0 && h.toLowerCase() === 'x-a');
  assert.equal(Buffer.from(res.rawHeaders[i + 1], 'latin1').toString('hex'), '61a0');
});
