import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Gateway } from '../../src/control/gateway.js';

export interface TestGateway {
  gateway: Gateway;
  port: number;
  adminPort: number;
  url: string;
  adminUrl: string;
  configFile: string;
  /** rewrites the config file (for reload tests) */
  rewrite(yaml: string): void;
  stop(): Promise<void>;
}

/** Writes `yaml` to a temp file; listen.port and admin.port default to 0 (free ports) unless the yaml sets them. */
export function writeConfig(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-test-'));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, yaml);
  return file;
}

/**
 * Starts a real gateway (control plane in this process, worker threads, real sockets) on free loopback ports.
 * The yaml should not set listen/admin; they are added here.
 */
export async function startGateway(yaml: string, opts: { workers?: number; faultInjection?: boolean; listen?: string } = {}): Promise<TestGateway> {
  const full = `listen: ${opts.listen ?? '{ host: 127.0.0.1, port: 0 }'}\nadmin: { host: 127.0.0.1, port: 0 }\n${yaml}`;
  const configFile = writeConfig(full);
  const gateway = new Gateway({
    configFile,
    workers: opts.workers ?? 1,
    logger: pino({ level: process.env.NANOGATE_TEST_LOG ?? 'silent' }),
    faultInjection: opts.faultInjection,
  });
  await gateway.start();
  const adminPort = gateway.admin!.port;
  return {
    gateway,
    port: gateway.port,
    adminPort,
    url: `http://127.0.0.1:${gateway.port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    configFile,
    rewrite(next: string) {
      writeFileSync(configFile, `listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\n${next}`);
    },
    stop: () => gateway.stop(),
  };
}
