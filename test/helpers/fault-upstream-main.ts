import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

/**
 * A real upstream process for chaos tests (started by fault-upstream.ts with fork): answers every request with its
 * own name, and takes a fault over IPC: "ok", "hang" (accepts, never answers), "500", "flaky:P" (P % 500s) or "slow:MS".
 * Requests it received are counted (the gateway's pipelining probe aside), health checks also on their own, and both are
 * reported on request.
 */
// Only ever started by fault-upstream.ts, with an IPC channel; the test runner also loads every file under test/.
if (!process.send) process.exit(0);

let mode = 'ok';
let received = 0;
/** of those, the gateway's active health checks (GET /health) */
let healthChecks = 0;
const name = process.env.FAULT_NAME ?? 'node';
const held: ServerResponse[] = [];

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  // The gateway's pipelining probe (two HEADs when it first connects) is not a client's request.
  if (req.headers['user-agent'] !== 'nanogate-pipelining-probe') received++;
  req.resume();
  if (req.url === '/health') healthChecks++;
  if (req.url === '/health' && mode !== 'hang') {
    res.writeHead(mode === '500' ? 500 : 200, { 'content-type': 'text/plain' }).end(mode === '500' ? 'failing' : 'ok');
    return;
  }
  if (mode === 'hang') {
    held.push(res);
    return;
  }
  // "flaky:P": P % of answers are 500 (every (100/P)-th request, so the share is exact)
  if (mode.startsWith('flaky:') && received % Math.round(100 / Number(mode.slice(6))) === 0) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(`${name} failing`);
    return;
  }
  if (mode === '500') {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(`${name} failing`);
    return;
  }
  const answer = () => res.writeHead(200, { 'content-type': 'text/plain', 'x-node': name }).end(name);
  if (mode.startsWith('slow:')) setTimeout(answer, Number(mode.slice(5)));
  else answer();
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.FAULT_PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  process.send!({ type: 'listening', port: typeof address === 'object' && address ? address.port : 0 });
});
process.on('message', (m: { type: string; mode?: string }) => {
  if (m.type === 'mode') {
    mode = m.mode!;
    if (mode !== 'hang') for (const r of held.splice(0)) r.destroy();
    process.send!({ type: 'mode-set', mode });
  } else if (m.type === 'count') process.send!({ type: 'count', received, healthChecks });
});
process.on('disconnect', () => process.exit(0));
