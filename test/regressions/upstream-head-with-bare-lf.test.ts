import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { TestGateway } from '../helpers/gateway.js';
import { startScriptedUpstream, type ScriptedSetup } from '../helpers/scripted-upstream.js';
import { assertProblem, send } from '../helpers/http.js';

/**
 * An upstream head with bare LF line endings (RFC 9112 2.2 lets a recipient accept them; the gateway refuses) was
 * not recognised until a CRLFCRLF came: a head that never has one waited for the read timeout and answered 504,
 * and a bare LF inside the status line was taken as part of the reason phrase, hiding the field line after it.
 * Both are a prompt 502 now.
 */

const T = { timeout: 30_000 };
let setup: ScriptedSetup;
let gw: TestGateway;

const ANSWERS: Record<string, string> = {
  // the socket stays open: only the bare LFs can end this head
  '/lf-only': 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok',
  '/lf-in-status-line': 'HTTP/1.1 200 OK\nX-Hidden: 1\r\nContent-Length: 2\r\n\r\nok',
};

before(async () => {
  // a read timeout far beyond the test's own: a 504 can only come from waiting it out
  setup = await startScriptedUpstream(ANSWERS, 'timeouts: { readMs: 20000 }');
  gw = setup.gw;
}, T);
after(() => setup?.close(), T);

test('a head with only bare LF line endings: 502 NG_ERR_UPSTREAM_BAD_RESPONSE, not a 504 after the read timeout', T, async () => {
  assertProblem(await send(gw.port, { path: '/lf-only', timeoutMs: 25_000 }), 502, 'NG_ERR_UPSTREAM_BAD_RESPONSE');
});

test('a bare LF in the status line: 502, never a 200 without the field it hid', T, async () => {
  assertProblem(await send(gw.port, { path: '/lf-in-status-line', timeoutMs: 25_000 }), 502, 'NG_ERR_UPSTREAM_BAD_RESPONSE');
});
