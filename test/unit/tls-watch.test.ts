import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { TlsWatch } from '../../src/tls/watch.js';
import type { PlanListenerTls } from '../../src/tls/compile.js';

// With net.ipv4.tcp_migrate_req at 0 a certificate reload resets the connections queued on the old listen socket
// (docs/tls.md): a TLS listener says so once, at start, where the setting can be read; a plain one says nothing.
test('a TLS listener says once how to keep certificate reloads from resetting queued connections', () => {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  const watch = new TlsWatch(log, () => {});
  const tls = { files: ['/nonexistent/a.pem'], watch: false, expiryWarningDays: 0, certificates: [] } as unknown as PlanListenerTls;
  try {
    watch.sync(null);
    assert.equal(lines.length, 0, 'a plain listener');
    watch.sync(tls);
    // a reload with other certificate files: not said again
    watch.sync({ ...tls, files: ['/nonexistent/b.pem'] });
  } finally {
    watch.close();
  }
  let value: string | null = null;
  try {
    value = readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim();
  } catch {
    // not Linux, or /proc/sys hidden: nothing to read, nothing said
  }
  const hints = lines.map((l) => JSON.parse(l) as { msg: string; sysctl?: string }).filter((l) => l.sysctl === 'net.ipv4.tcp_migrate_req');
  assert.equal(hints.length, value === '0' ? 1 : 0, `tcp_migrate_req=${value}: ${lines.join('')}`);
  if (hints.length === 1) assert.match(hints[0].msg, /set net\.ipv4\.tcp_migrate_req=1/);
});
