import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { TestGateway } from '../helpers/gateway.js';
import { startScriptedUpstream, type ScriptedSetup } from '../helpers/scripted-upstream.js';
import { send } from '../helpers/http.js';

/**
 * Every Proxy-* response field is hop-by-hop and dropped, but a field named exactly "Proxy-" (the prefix alone,
 * six characters) slipped past the length check and was forwarded to the client.
 */

const T = { timeout: 30_000 };
let setup: ScriptedSetup;
let gw: TestGateway;

before(async () => {
  setup = await startScriptedUpstream('HTTP/1.1 200 OK\r\nProxy-: hop\r\nProxy-X: hop\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok');
  gw = setup.gw;
}, T);
after(() => setup?.close(), T);

test('a response field named "Proxy-" is dropped like every Proxy-* field', T, async () => {
  const res = await send(gw.port, { path: '/' });
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-kept'], '1');
  assert.deepEqual(res.rawHeaders.filter((h, k) => k % 2 === 0 && h.toLowerCase().startsWith('proxy-')), []);
});
