import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { ROOT } from '../helpers/cli.js';
import { closedPort } from '../helpers/upstream.js';

/**
 * The deployment kit in deploy/: what can be checked without Docker or a cluster (neither runs on the test
 * machines). Manifests against the Kubernetes API schemas (kubernetes-models, and the Prometheus Operator's for the
 * ServiceMonitor) and against each other and the gateway config they carry; the systemd unit with systemd-analyze;
 * the Dockerfile with a linter, and its runtime stage's file layout started for real, probed by its HEALTHCHECK.
 */
const DEPLOY = join(ROOT, 'deploy');
const K8S = join(DEPLOY, 'kubernetes');
type Obj = Record<string, any>;

function manifests(): { file: string; doc: Obj }[] {
  const kustomization = parse(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
  return kustomization.resources.flatMap((file) => parseAllDocuments(readFileSync(join(K8S, file), 'utf8')).map((d) => ({ file, doc: d.toJS() as Obj })));
}

function byKind(kind: string): Obj {
  const found = manifests().find((m) => m.doc.kind === kind);
  assert.ok(found, `no ${kind} in deploy/kubernetes`);
  return found.doc;
}

/** The model class that validates a manifest, by apiVersion and kind. */
async function modelFor(apiVersion: string, kind: string): Promise<new (data: Obj) => { validate(): void }> {
  const mod =
    apiVersion === 'monitoring.coreos.com/v1'
      ? await import(`@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`)
      : await import(`kubernetes-models/${apiVersion.includes('/') ? apiVersion : `v1`}/${kind}`);
  return mod[kind];
}

const gatewayConfig = (): Obj => parse(byKind('ConfigMap').data['gateway.yaml']) as Obj;
const container = (): Obj => byKind('Deployment').spec.template.spec.containers[0];

test('every manifest the kustomization lists is valid against its Kubernetes API schema', async () => {
  const all = manifests();
  assert.deepEqual(all.map((m) => m.doc.kind).sort(), ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Service', 'ServiceMonitor']);
  for (const { file, doc } of all) {
    const Model = await modelFor(doc.apiVersion, doc.kind);
    assert.doesNotThrow(() => new Model(doc).validate(), `${file}`);
  }
  // the validation can fail: a port as text and a credential reference as a string are refused
  const broken = structuredClone(byKind('Deployment'));
  broken.spec.template.spec.containers[0].ports[0].containerPort = '8080';
  const DeploymentModel = await modelFor('apps/v1', 'Deployment');
  assert.throws(() => new DeploymentModel(broken).validate(), /containerPort must be integer/);
  const sm = structuredClone(byKind('ServiceMonitor'));
  sm.spec.endpoints[0].authorization = { type: 'Bearer', credentials: 'nanogate-admin' };
  const ServiceMonitorModel = await modelFor('monitoring.coreos.com/v1', 'ServiceMonitor');
  assert.throws(() => new ServiceMonitorModel(sm).validate(), /credentials must be object/);
});

test('the manifests agree with each other: selectors, ports, the HPA target, the ServiceMonitor on the status port', () => {
  const deployment = byKind('Deployment');
  const podLabels = deployment.spec.template.metadata.labels;
  const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => podLabels[k] === v);
  assert.ok(selects(deployment.spec.selector.matchLabels), 'Deployment selector');
  assert.ok(selects(byKind('Service').spec.selector), 'Service selector');
  assert.ok(selects(byKind('PodDisruptionBudget').spec.selector.matchLabels), 'PDB selector');
  const hpa = byKind('HorizontalPodAutoscaler');
  assert.deepEqual([hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name], ['Deployment', deployment.metadata.name]);
  assert.equal(hpa.spec.metrics[0].resource.name, 'cpu');
  assert.ok(hpa.spec.minReplicas >= 2, 'two pods at least, so the PDB allows a drain');
  assert.ok(container().resources.requests.cpu, 'HPA utilisation needs a CPU request');

  const portNames = new Set(container().ports.map((p: Obj) => p.name));
  for (const p of byKind('Service').spec.ports) assert.ok(portNames.has(p.targetPort), `Service port ${p.name} -> ${p.targetPort}`);
  const sm = byKind('ServiceMonitor');
  const servicePorts = new Set(byKind('Service').spec.ports.map((p: Obj) => p.name));
  assert.ok(servicePorts.has(sm.spec.endpoints[0].port));
  assert.ok(Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => byKind('Service').metadata.labels[k] === v), 'ServiceMonitor selects the Service');
  assert.equal(sm.spec.endpoints[0].path, '/metrics');
  assert.equal(sm.spec.endpoints[0].port, 'status', 'scraped on the status listener, which needs no token');
  assert.ok(!servicePorts.has('admin'), 'the admin API is not published by the Service');
  assert.equal(byKind('ConfigMap').metadata.name, deployment.spec.template.spec.volumes.find((v: Obj) => v.name === 'config').configMap.name);
});

test('probes, ports and the shutdown budget match the gateway config in the ConfigMap', () => {
  const cfg = gatewayConfig();
  const ports = Object.fromEntries(container().ports.map((p: Obj) => [p.name, p.containerPort]));
  assert.equal(ports.http, cfg.listen.port);
  assert.equal(ports.status, cfg.status.port);
  assert.equal(cfg.listen.host, '0.0.0.0');
  assert.equal(cfg.status.host, '0.0.0.0', 'the kubelet probes the pod IP');
  assert.equal(cfg.admin.host, '127.0.0.1', 'the admin API stays on the pod loopback');
  // the status listener answers /ready and /health without the admin token
  for (const probe of ['startupProbe', 'readinessProbe']) assert.deepEqual([container()[probe].httpGet.path, container()[probe].httpGet.port], ['/ready', 'status'], probe);
  assert.deepEqual([container().livenessProbe.httpGet.path, container().livenessProbe.httpGet.port], ['/health', 'status']);
  // SIGTERM comes after preStop; the drain must end before the kubelet's SIGKILL
  const preStop = container().lifecycle.preStop.exec.command;
  assert.equal(preStop[0], 'sleep');
  const grace = byKind('Deployment').spec.template.spec.terminationGracePeriodSeconds;
  const drainS = cfg.proxy.drainTimeoutMs / 1000;
  assert.ok(grace >= Number(preStop[1]) + drainS + 1, `terminationGracePeriodSeconds ${grace} < preStop ${preStop[1]} + drain ${drainS} + 1`);
  assert.ok(grace <= Number(preStop[1]) + drainS + 10, 'and not far beyond it (a stuck pod would hold a rollout)');
  // workers pinned to the CPU limit (Node 20 counts the node's cores, not the quota)
  assert.equal(cfg.workers, Number(container().resources.limits.cpu));
  assert.equal(container().securityContext.readOnlyRootFilesystem, true);
  assert.equal(byKind('Deployment').spec.template.spec.securityContext.runAsNonRoot, true);
});

test('the ConfigMap config passes nanogate validate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-deploy-'));
  try {
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, byKind('ConfigMap').data['gateway.yaml']);
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'nanogate.js'), 'validate', file, '--strict'], {
      env: { ...process.env, NANOGATE_ADMIN_TOKEN: 'a-token-for-the-check-0123456789', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the systemd unit passes systemd-analyze verify, and its hardening rates OK in systemd-analyze security', () => {
  const unit = readFileSync(join(DEPLOY, 'systemd', 'nanogate.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/bin\/node --no-memory-reducer \/opt\/nanogate\/bin\/nanogate\.js start --config \/etc\/nanogate\/gateway\.yaml$/m);
  assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m, 'systemctl reload is SIGHUP, the config reload');
  const dir = mkdtempSync(join(tmpdir(), 'nanogate-unit-'));
  try {
    // verify checks that the command exists: point it at this machine's node and checkout
    const file = join(dir, 'nanogate.service');
    writeFileSync(file, unit.replace('/usr/bin/node /opt/nanogate/', `${process.execPath} ${ROOT}`));
    const v = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(v.status, 0, `systemd-analyze verify: ${v.stdout}${v.stderr}`);
    assert.equal(v.stderr.trim(), '', `no warnings: ${v.stderr}`);
    const s = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', file], { encoding: 'utf8', timeout: 30_000 });
    const m = /Overall exposure level for \S+: ([\d.]+) (\w+)/.exec(s.stdout + s.stderr);
    assert.ok(m, `systemd-analyze security: ${s.stdout}${s.stderr}`);
    assert.ok(Number(m[1]) <= 2.5, `exposure ${m[1]} ${m[2]}`);
    // and the check can fail: the same unit without its hardening rates far worse
    const bare = unit.split('\n').filter((l) => !/^(Protect|Private|Restrict|System|NoNew|Capability|Ambient|Lock|Remove|UMask|ProcSubset|Dynamic)/.test(l)).join('\n');
    writeFileSync(file, bare.replace('/usr/bin/node /opt/nanogate/', `${process.execPath} ${ROOT}`));
    const b = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', file], { encoding: 'utf8', timeout: 30_000 });
    const mb = /Overall exposure level for \S+: ([\d.]+)/.exec(b.stdout + b.stderr);
    assert.ok(mb && Number(mb[1]) > 5, `unhardened exposure ${mb?.[1]}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const dockerfile = () => readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');

test('the Dockerfile lints clean, is multi-stage, runs as non-root with a HEALTHCHECK, and copies only what exists', () => {
  const text = dockerfile();
  assert.deepEqual(lintDockerfile(text).map((d) => `${d.range.start.line + 1}: ${d.message}`), []);
  assert.ok(lintDockerfile('FROM node\nHEALTHCHECK CMD\nEXPOSE http\n').length >= 2, 'the linter reports problems');
  const instructions = text.split('\n').filter((l) => /^[A-Z]+ /.test(l));
  const froms = instructions.filter((l) => l.startsWith('FROM '));
  assert.ok(froms.length >= 2, 'multi-stage');
  for (const f of froms) assert.match(f, /^FROM node:20\.\d+-bookworm-slim( AS \w+)?$/, 'Node 20 on glibc, a pinned minor, never latest');
  const last = froms.at(-1)!;
  const runtime = instructions.slice(instructions.indexOf(last));
  assert.ok(runtime.some((l) => /^USER (node|\d{4,})$/.test(l)), 'the runtime stage runs as the node user');
  assert.ok(runtime.some((l) => l.startsWith('HEALTHCHECK ')), 'a HEALTHCHECK');
  assert.ok(!runtime.some((l) => /^COPY (src|test)\b/.test(l)), 'no sources in the runtime image: bin/nanogate.js must not try to rebuild');
  assert.ok(text.includes('npm ci'), 'a locked install');
  assert.match(text, /^ENTRYPOINT \[/m, 'exec form: SIGTERM reaches node');
  // every COPY from the build context exists and is let through by the ignore file
  const ignore = readFileSync(join(DEPLOY, 'Dockerfile.dockerignore'), 'utf8').split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  for (const line of instructions.filter((l) => l.startsWith('COPY ') && !l.includes('--from='))) {
    const sources = line.split(/\s+/).slice(1, -1);
    for (const src of sources) {
      assert.ok(existsSync(join(ROOT, src)), `COPY ${src}: missing`);
      assert.ok(ignore.includes(src.replace(/\/$/, '')), `COPY ${src}: excluded by Dockerfile.dockerignore`);
    }
  }
});

let running: ReturnType<typeof spawn> | null = null;
after(() => {
  if (running !== null && running.exitCode === null) running.kill('SIGKILL');
});

function healthcheck(env: NodeJS.ProcessEnv): number | null {
  const line = /^HEALTHCHECK .*\\\n\s+CMD (\[.*\])$/m.exec(dockerfile());
  assert.ok(line, 'HEALTHCHECK in exec form');
  const argv = JSON.parse(line[1]) as string[];
  assert.equal(argv[0], 'node');
  return spawnSync(process.execPath, argv.slice(1), { env, timeout: 10_000 }).status;
}

test("the runtime stage's layout (dist, bin, config, package.json; no src) starts, and its HEALTHCHECK tells up from down", async () => {
  // What `COPY --from=build` puts in /app, from this checkout's build (node_modules linked: npm prune is not run)
  const app = mkdtempSync(join(tmpdir(), 'nanogate-image-'));
  try {
    cpSync(join(ROOT, 'package.json'), join(app, 'package.json'));
    cpSync(join(ROOT, 'bin'), join(app, 'bin'), { recursive: true });
    cpSync(join(ROOT, 'config'), join(app, 'config'), { recursive: true });
    mkdirSync(join(app, 'dist'));
    cpSync(join(ROOT, 'dist', 'src'), join(app, 'dist', 'src'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'), 'dir');
    const port = await closedPort();
    const adminPort = await closedPort();
    const statusPort = await closedPort();
    writeFileSync(join(app, 'gateway.yaml'), `listen: { host: 127.0.0.1, port: ${port} }\nworkers: 1\nadmin: { host: 127.0.0.1, port: ${adminPort} }\nstatus: { host: 127.0.0.1, port: ${statusPort} }\nupstreams:\n  app: { nodes: [{ url: "http://127.0.0.1:${await closedPort()}" }] }\nroutes:\n  - { name: r, match: { prefix: / }, upstream: app }\n`);
    // NANOGATE_STATUS_PORT only: the check must reach the status listener, not the admin port
    const env: NodeJS.ProcessEnv = { ...process.env, NANOGATE_STATUS_PORT: String(statusPort) };
    delete env.NANOGATE_ADMIN_PORT;
    assert.notEqual(healthcheck(env), 0, 'nothing listens yet: unhealthy');

    const child = spawn(process.execPath, [join(app, 'bin', 'nanogate.js'), 'start', '--config', join(app, 'gateway.yaml')], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    running = child;
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    for (let i = 0; i < 200 && !output.includes('nanogate is serving'); i++) {
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(output.includes('nanogate is serving'), output);
    assert.ok(!output.includes('building'), `no rebuild attempted without src/: ${output}`);
    assert.equal(healthcheck(env), 0, 'serving: healthy');
    child.kill('SIGTERM');
    assert.equal(await exited, 0, 'SIGTERM drains and exits 0');
    assert.notEqual(healthcheck(env), 0, 'stopped: unhealthy');
  } finally {
    rmSync(app, { recursive: true, force: true });
  }
});
