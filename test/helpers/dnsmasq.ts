import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsClient } from '../../src/discovery/dns.js';
import { closedPort } from './upstream.js';

export const DNSMASQ = process.env.DNSMASQ ?? '/usr/sbin/dnsmasq';

export interface DnsmasqOptions {
  /** hosts-file text ("ADDRESS NAME" lines), re-read on SIGHUP */
  hosts: string;
  /** --srv-host values: "_svc._tcp.name,target,port,priority,weight" (read at start only) */
  srv?: string[];
  /** --local-ttl: the TTL of every answer (dnsmasq's default is 0) */
  ttl?: number;
}

export interface TestDnsmasq {
  port: number;
  /** "127.0.0.1:PORT", for the `servers` of a DNS source */
  server: string;
  /** rewrites the hosts file and sends SIGHUP; resolves once dnsmasq has read it */
  setHosts(text: string): Promise<void>;
  /** stops dnsmasq (SIGKILL: a server that dies) */
  kill(): Promise<void>;
  /** starts it again on the same port; SRV records and TTL can only change this way (SIGHUP does not re-read them) */
  start(opts?: Partial<DnsmasqOptions>): Promise<void>;
  /** how many queries for `name` (and type, when given) dnsmasq has logged */
  queries(name: string, type?: string): number;
  stop(): Promise<void>;
}

/**
 * A real dnsmasq on a free loopback port, answering only from a hosts file and --srv-host options. `--local=/test/`
 * makes it the authority for .test, so an unknown name gets NXDOMAIN (not REFUSED, which it answers when it has no
 * upstream to forward to). --log-queries goes to stderr, which is kept to count queries.
 */
export async function startDnsmasq(initial: DnsmasqOptions): Promise<TestDnsmasq> {
  const port = await closedPort();
  const dir = mkdtempSync(join(tmpdir(), 'ng-dnsmasq-'));
  const hostsFile = join(dir, 'hosts');
  let opts: DnsmasqOptions = { ...initial };
  let child: ChildProcess | null = null;
  let log = '';
  let reads = 0;
  writeFileSync(hostsFile, opts.hosts);

  const start = async (next: Partial<DnsmasqOptions> = {}) => {
    opts = { ...opts, ...next };
    if (next.hosts !== undefined) writeFileSync(hostsFile, next.hosts);
    const args = [
      '--no-daemon',
      `--port=${port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      `--addn-hosts=${hostsFile}`,
      '--local=/test/',
      `--local-ttl=${opts.ttl ?? 1}`,
      '--log-queries',
      '--log-facility=-',
      '--conf-file=/dev/null',
      ...(opts.srv ?? []).map((s) => `--srv-host=${s}`),
    ];
    const c = spawn(DNSMASQ, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    c.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      log += text;
      reads += text.split(`read ${hostsFile}`).length - 1;
    });
    // Ready when it answers (a REFUSED or NXDOMAIN is an answer too).
    const probe = new DnsClient([{ host: '127.0.0.1', port }], 200, 1);
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        await probe.query('ready.probe.test', 'A');
        break;
      } catch (err) {
        if (!/timeout|within|ECONNREFUSED/.test(String((err as Error).message)) && (err as Error).message !== 'no DNS server') break;
      }
      if (c.exitCode !== null) throw new Error(`dnsmasq exited: ${log}`);
      if (Date.now() > deadline) throw new Error(`dnsmasq did not answer on ${port}: ${log}`);
    }
    probe.close();
  };

  const kill = async () => {
    const c = child;
    child = null;
    if (c === null || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };

  await start();
  return {
    port,
    server: `127.0.0.1:${port}`,
    async setHosts(text) {
      const before = reads;
      writeFileSync(hostsFile, text);
      child!.kill('SIGHUP');
      const deadline = Date.now() + 5000;
      while (reads === before) {
        if (Date.now() > deadline) throw new Error('dnsmasq did not re-read its hosts file');
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    kill,
    start,
    queries(name, type) {
      const re = new RegExp(`query\\[${type ?? '[A-Z]+'}\\] ${name.replace(/\./g, '\\.')} from`, 'g');
      return (log.match(re) ?? []).length;
    },
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
