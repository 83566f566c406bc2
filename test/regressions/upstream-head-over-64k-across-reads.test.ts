import { test, before, after } from 'node:test';
import type { TestGateway } from '../helpers/gateway.js';
import { startScriptedUpstream, type ScriptedSetup } from '../helpers/scripted-upstream.js';
import { assertProblem, send } from '../helpers/http.js';

/**
 * The 64 KiB limit on an upstream response head was checked only while its blank line was still missing, so a
 * head over the limit whose end came in a later read (every head over 64 KiB does: a read is at most 64 KiB) was
 * forwarded. It is refused with a 502 now, as a head of the same size sent a byte at a time always was.
 */

const T = { timeout: 30_000 };
let setup: ScriptedSetup;
let gw: TestGateway;

before(async () => {
  setup = await startScriptedUpstream(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: ${'p'.repeat(66 * 1024)}\r\n\r\nok`);
  gw = setup.gw;
}, T);
after(() => setup?.close(), T);

test('a 66 KiB upstream head: 502 NG_ERR_UPSTREAM_BAD_RESPONSE, not forwarded', T, async () => {
  assertProblem(await send(gw.port, { path: '/' }), 502, 'NG_ERR_UPSTREAM_BAD_RESPONSE');
});
