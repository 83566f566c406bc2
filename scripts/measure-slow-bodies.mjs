// Slow request bodies against the upstream connection pool: N clients send a POST whose body trickles in at about
// 1 byte per second while normal GETs are sent; prints what the normal requests got and how many upstream
// connections the slow ones held. Bounded: the slow clients stop after --seconds. Run after `npm run build`:
//   node scripts/measure-slow-bodies.mjs [--slow 560] [--connections 512] [--seconds 12] [--root DIR]
// --root runs another checkout's build (to compare before and after a change).
import { parseArgs } from 'node:util';
import { connect, createServer } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

const { values } = parseArgs({
  options: { slow: { type: 'string', default: '560' }, connections: { type: 'string', default: '512' }, seconds: { type: 'string', default: '12' }, root: { type: 'string', default: '.' } },
});
const root = resolve(values.root);
const { Gateway } = await import(pathToFileURL(join(root, 'dist/src/control/gateway.js')).href);
const pino = createRequire(join(root, 'package.json'))('pino');

// The origin: answers once the whole body is there; counts the connections it has open.
let open = 0;
let peak = 0;
const origin = createServer((s) => {
  open++;
  peak = Math.max(peak, open);
  s.on('close', () => open--);
  let buf = '';
  s.on('data', (d) => {
    buf += d.toString('latin1');
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const m = /content-length: (\d+)/i.exec(buf.slice(0, end));
      const need = end + 4 + (m ? Number(m[1]) : 0);
      if (buf.length < need) return;
      buf = buf.slice(need);
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    }
  });
  s.on('error', () => {});
});
await new Promise((r) => origin.listen(0, '127.0.0.1', r));

const dir = mkdtempSync(join(tmpdir(), 'nanogate-slow-'));
const file = join(dir, 'gateway.yaml');
writeFileSync(
  file,
  `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
upstreams:
  app: { connections: ${Number(values.connections)}, connectTimeoutMs: 1000, nodes: [{ url: "http://127.0.0.1:${origin.address().port}" }] }
routes:
  - { name: api, match: { prefix: / }, upstream: app }
`,
);
const gw = new Gateway({ configFile: file, workers: 1, logger: pino({ level: 'silent' }) });
await gw.start();

const slow = [];
for (let i = 0; i < Number(values.slow); i++) {
  const c = connect(gw.port, '127.0.0.1');
  c.on('error', () => {});
  c.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n');
  slow.push(c);
}
const drip = setInterval(() => {
  for (const c of slow) if (!c.destroyed) c.write('x');
}, 1000);

await new Promise((r) => setTimeout(r, 3000));
const heldByBodies = peak;
const statuses = {};
const until = Date.now() + Number(values.seconds) * 1000 - 3000;
let sent = 0;
while (Date.now() < until && sent < 50) {
  sent++;
  const status = await new Promise((resolveStatus) => {
    const c = connect(gw.port, '127.0.0.1');
    let got = '';
    const t = setTimeout(() => (c.destroy(), resolveStatus('no answer in 5 s')), 5000);
    c.on('data', (d) => {
      got += d;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
      if (m) {
        clearTimeout(t);
        c.destroy();
        resolveStatus(m[1]);
      }
    });
    c.on('error', () => (clearTimeout(t), resolveStatus('error')));
    c.write('GET /normal HTTP/1.1\r\nHost: x\r\n\r\n');
  });
  statuses[status] = (statuses[status] ?? 0) + 1;
}
// the slow clients keep dripping until the end of the run (past the gateway's minimum-rate grace time)
while (Date.now() < until) await new Promise((r) => setTimeout(r, 200));
clearInterval(drip);
let answeredSlow = 0;
for (const c of slow) {
  if (c.bytesRead > 0) answeredSlow++;
  c.destroy();
}
console.log(`${values.slow} slow bodies (1 byte/s), upstream pool ${values.connections}, root ${values.root}`);
console.log(`upstream connections held after 3 s of slow bodies: ${heldByBodies}`);
console.log(`normal GETs meanwhile: ${JSON.stringify(statuses)}`);
console.log(`slow clients that got an answer (408 with request buffering): ${answeredSlow}`);
await gw.stop();
origin.close();
process.exit(0);
