import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, runCli, type CliResult } from './cli.js';
import { startGateway, type TestGateway } from './gateway.js';
import { startUpstream, type Received, type TestUpstream } from './upstream.js';

export interface ImportedGateway {
  /** `nanogate import KIND FILE -o OUT` */
  imported: CliResult;
  /** `nanogate validate OUT` */
  validated: CliResult;
  /** the converted config as written */
  config: string;
  /** the fixture after the upstream addresses were replaced */
  source: string;
  gw: TestGateway;
  upstreams: Record<string, TestUpstream>;
  /** requests an upstream got, without its health checks */
  got(name: string): Received[];
  stop(): Promise<void>;
}

/**
 * Runs a fixture of test/fixtures/import through the real CLI and starts a gateway on what it wrote. Each
 * `host:port` of `addresses` in the fixture (or `host: H` followed by `port: P`) is replaced by a real upstream on loopback first, keyed by the name
 * given to it (several addresses may name the same upstream).
 */
export async function importAndStart(kind: 'kong' | 'apisix', fixture: string, addresses: Record<string, string>): Promise<ImportedGateway> {
  const upstreams: Record<string, TestUpstream> = {};
  for (const name of new Set(Object.values(addresses))) upstreams[name] = await startUpstream();
  let text = readFileSync(join(ROOT, 'test/fixtures/import', fixture), 'utf8');
  for (const [address, name] of Object.entries(addresses)) {
    const [host, port] = address.split(':');
    text = text.replaceAll(address, `127.0.0.1:${upstreams[name].port}`);
    // APISIX's node list form: host and port as separate fields
    text = text.replace(new RegExp(`host: ${host.replaceAll('.', '\\.')}(\\s+)port: ${port}\\b`, 'g'), `host: 127.0.0.1$1port: ${upstreams[name].port}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-import-'));
  const source = join(dir, fixture);
  const out = join(dir, 'nanogate.yaml');
  writeFileSync(source, text);
  const imported = await runCli(['import', kind, source, '-o', out]);
  if (imported.code !== 0) throw new Error(`import failed (${imported.code}): ${imported.stderr}`);
  const validated = await runCli(['validate', out]);
  const config = readFileSync(out, 'utf8');
  const gw = await startGateway(config);
  return {
    imported,
    validated,
    config,
    source,
    gw,
    upstreams,
    got: (name) => upstreams[name].received.filter((r) => r.url !== '/health'),
    async stop() {
      await gw.stop();
      await Promise.all(Object.values(upstreams).map((u) => u.close()));
    },
  };
}
