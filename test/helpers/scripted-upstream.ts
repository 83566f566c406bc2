import type { Socket } from 'node:net';
import { startGateway, type TestGateway } from './gateway.js';
import { startRawUpstream } from './upstream.js';
import { closeAll } from './http.js';

export interface ScriptedSetup {
  gw: TestGateway;
  close(): Promise<void>;
}

/**
 * A raw upstream that writes scripted bytes (a fixed answer, or one per request path) behind a gateway whose one
 * route `r` takes every path; `route` adds keys to that route (timeouts, policies) as YAML flow-map entries.
 * For tests of how the gateway reads hostile or odd upstream responses.
 */
export async function startScriptedUpstream(answer: string | Buffer | Record<string, string | Buffer>, route = ''): Promise<ScriptedSetup> {
  const up = await startRawUpstream((socket: Socket, head: string) => {
    const bytes = typeof answer === 'string' || Buffer.isBuffer(answer) ? answer : answer[head.split(' ')[1]];
    if (bytes !== undefined) socket.write(bytes);
  });
  const gw = await startGateway(`
upstreams:
  up: { nodes: [{ url: ${up.url} }] }
routes:
  - { name: r, match: { prefix: / }, upstream: up${route ? `, ${route}` : ''} }
`);
  return { gw, close: () => closeAll(() => gw.stop(), () => up.close()) };
}
