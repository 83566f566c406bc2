import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFaultUpstream, type FaultUpstream } from '../helpers/fault-upstream.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { admin, eventually } from '../helpers/admin.js';
import { runCli } from '../helpers/cli.js';
import { writeConfig } from '../helpers/gateway.js';

/**
 * Canary rollouts end to end, time-compressed (soak 1 s, interval 250-500 ms): a gateway process with two workers,
 * a real upstream process per version (fault-upstream-main.ts: its faults are switched at run time), steady
 * client load from the test, and the admin API to watch and steer. Clients' answers are recorded with the time
 * each request started and ended and the version that answered (x-node), so what clients saw is what is asserted.
 */

const TOKEN = 'rollout-test-admin-token-0123456789';

interface Answer {
  start: number;
  end: number;
  status: number;
  /** the version that answered (the upstream's name), '' when the gateway answered itself */
  node: string;
}

/** Closed-loop client load on GET /orders/x: `concurrency` loops over keep-alive connections, a short pause each. */
class Load {
  readonly answers: Answer[] = [];
  /** start times of the requests not answered yet, by request number */
  readonly #pending = new Map<number, number>();
  #sent = 0;
  #running = true;
  readonly #loops: Promise<void>[] = [];
  readonly #agent: Agent;

  constructor(port: number, concurrency = 6, pauseMs = 2) {
    const agent = (this.#agent = new Agent({ keepAlive: true, maxSockets: concurrency }));
    for (let i = 0; i < concurrency; i++) {
      this.#loops.push(
        (async () => {
          while (this.#running) {
            const start = Date.now();
            const id = this.#sent++;
            this.#pending.set(id, start);
            const { status, node } = await get(port, agent);
            this.#pending.delete(id);
            this.answers.push({ start, end: Date.now(), status, node });
            await sleep(pauseMs);
          }
        })(),
      );
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
    this.#agent.destroy();
  }

  /** answers of requests that started at or after `t` */
  startedAfter(t: number): Answer[] {
    return this.answers.filter((a) => a.start >= t);
  }

  /** Waits until `n` requests that started at or after `t` were answered (the load's pace depends on the machine). */
  async answeredAfter(t: number, n: number, ms = 15_000): Promise<Answer[]> {
    assert.ok(await eventually(() => this.startedAfter(t).length >= n, ms), `${this.startedAfter(t).length} of ${n} answers came in ${ms} ms`);
    return this.startedAfter(t);
  }

  /** Waits until every request that started before `t` was answered. */
  async settledBefore(t: number, ms = 15_000): Promise<void> {
    assert.ok(await eventually(() => [...this.#pending.values()].every((start) => start >= t), ms), 'requests started before it are still unanswered');
  }
}

function get(port: number, agent: Agent): Promise<{ status: number; node: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/orders/x', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, node: String(res.headers['x-node'] ?? '') }));
      res.on('error', () => resolve({ status: 0, node: '' }));
    });
    req.setTimeout(10_000, () => req.destroy());
    req.on('error', () => resolve({ status: 0, node: '' }));
    req.end();
  });
}

function gatewayYaml(stable: FaultUpstream, canary: FaultUpstream, rollout: string): string {
  return `
upstreams:
  orders-v1: { nodes: [{ url: ${stable.url} }] }
  orders-v2: { nodes: [{ url: ${canary.url} }] }
routes:
  - name: orders
    match: { prefix: /orders }
    upstream: orders-v1
    traffic:
      versions:
        - { name: stable, upstream: orders-v1, weight: 100 }
        - { name: canary, upstream: orders-v2, weight: 0 }
${rollout ? `      rollout:\n${rollout.replace(/^\n/, '').replace(/^/gm, '        ')}` : ''}
  - { name: other, match: { prefix: /other }, upstream: orders-v1 }
`;
}

const ROLLOUT = (over: { soak?: number; interval?: number; min?: number; criteria?: string; steps?: string } = {}) => `
version: canary
steps: ${over.steps ?? '[5, 25, 50, 100]'}
soakSeconds: ${over.soak ?? 1}
intervalSeconds: ${over.interval ?? 0.25}
minRequests: ${over.min ?? 10}
criteria: ${over.criteria ?? '{ maxErrorRateIncrease: 1 }'}
`;

interface Setup {
  stable: FaultUpstream;
  canary: FaultUpstream;
  gw: GatewayProcess;
  auditFile: string;
  close(): Promise<void>;
}

async function setup(rollout: string): Promise<Setup> {
  const stable = await startFaultUpstream('stable');
  const canary = await startFaultUpstream('canary');
  const auditFile = join(mkdtempSync(join(tmpdir(), 'nanogate-rollout-')), 'audit.log');
  let gw: GatewayProcess;
  try {
    gw = await startGatewayProcess(gatewayYaml(stable, canary, rollout), { workers: 2, admin: `token: ${TOKEN}, auditLog: ${auditFile}` });
  } catch (err) {
    await Promise.all([stable.stop(), canary.stop()]);
    throw err;
  }
  return { stable, canary, gw, auditFile, close: async () => void (await Promise.all([gw.stop(), stable.stop(), canary.stop()])) };
}

const rolloutOf = async (gw: GatewayProcess) => (await admin(gw.adminUrl, 'GET', '/routes/orders/rollout', { token: TOKEN })).body;

/** Polls the rollout until `check` holds; fails with its last view after `ms`. */
async function waitRollout(gw: GatewayProcess, check: (r: any) => boolean, ms: number, what: string): Promise<any> {
  let last: any = null;
  const ok = await eventually(async () => check((last = await rolloutOf(gw))), ms);
  assert.ok(ok, `${what}; rollout is ${JSON.stringify({ state: last?.state, step: last?.step, weights: last?.weights, lastEvaluation: last?.lastEvaluation })}`);
  return last;
}

/** The gateway's log lines with this message, once at least `n` of them came through its (asynchronous) stdout. */
async function logLines(gw: GatewayProcess, msg: string, n = 1): Promise<any[]> {
  const lines = () => gw.logs.filter((l) => l.includes(msg)).map((l) => JSON.parse(l));
  await eventually(() => lines().length >= n, 5000);
  return lines();
}

async function scrape(gw: GatewayProcess): Promise<string> {
  return (await admin(gw.adminUrl, 'GET', '/metrics', { token: TOKEN })).body as string;
}

test('a healthy canary goes through every step to 100 % under steady load; each decision logged and counted', async () => {
  const s = await setup(ROLLOUT());
  const load = new Load(s.gw.port);
  try {
    const first = await rolloutOf(s.gw);
    assert.equal(first.state, 'running');
    assert.deepEqual(first.weights, { stable: 95, canary: 5 });
    const done = await waitRollout(s.gw, (r) => r.state === 'promoted', 30_000, 'the healthy canary was not promoted');
    const seenAt = Date.now();
    const promotedAt = Date.parse(done.history.at(-1).at);
    assert.deepEqual(done.weights, { stable: 0, canary: 100 });
    assert.deepEqual(done.history.map((d: any) => `${d.action}:${d.weights.canary}`), ['start:5', 'step:25', 'step:50', 'promote:100']);
    for (const d of done.history.slice(1)) {
      assert.equal(d.evaluation.verdict, 'pass');
      assert.ok(d.evaluation.stepWindow.canary.requests >= 10, 'a step passed with fewer than minRequests');
      assert.equal(d.evaluation.stepWindow.canary.errorRatePct, 0);
      assert.ok(d.evaluation.elapsedMs >= 1000, 'a step passed before its soak');
    }
    await load.answeredAfter(seenAt, 21);
    await load.stop();
    assert.deepEqual(load.answers.filter((a) => a.status !== 200), [], 'clients saw errors');
    // both versions served during the rollout; only the canary once promoted
    assert.ok(load.answers.some((a) => a.node === 'canary' && a.end < promotedAt));
    const after = load.startedAfter(seenAt);
    assert.deepEqual([...new Set(after.map((a) => a.node))], ['canary']);

    const steps = await logLines(s.gw, 'rollout stepped forward', 2);
    assert.equal(steps.length, 2);
    assert.equal(steps[0].route, 'orders');
    assert.deepEqual(steps[0].weights, { stable: 75, canary: 25 });
    assert.equal(steps[0].verdict, 'pass');
    assert.equal(typeof steps[0].canary.p95Ms, 'number');
    assert.equal(typeof steps[0].stable.errorRatePct, 'number');
    assert.equal((await logLines(s.gw, 'rollout promoted')).length, 1);

    const text = await scrape(s.gw);
    assert.match(text, /^nanogate_rollout_state\{route="orders",state="promoted"\} 1$/m);
    assert.match(text, /^nanogate_rollout_step\{route="orders"\} 2$/m);
    assert.match(text, /^nanogate_rollout_decisions_total\{route="orders",action="step"\} 2$/m);
    assert.match(text, /^nanogate_traffic_weight_ratio\{route="orders",version="canary"\} 1$/m);
    const served = (v: string) => Number(text.match(new RegExp(`^nanogate_traffic_requests_total\\{route="orders",version="${v}"\\} (\\d+)$`, 'm'))?.[1]);
    assert.equal(served('stable') + served('canary'), load.answers.length);
    assert.equal(served('canary'), load.answers.filter((a) => a.node === 'canary').length);
    assert.match(text, /^nanogate_traffic_errors_total\{route="orders",version="canary"\} 0$/m);
    assert.match(text, /^nanogate_traffic_duration_seconds_bucket\{route="orders",version="canary",le="\+Inf"\} \d+$/m);
  } finally {
    await load.stop();
    await s.close();
  }
});

test('a canary that starts answering 5 % errors half way is rolled back; afterwards no request reaches it', async () => {
  const interval = 0.5;
  const s = await setup(ROLLOUT({ interval, soak: 2 }));
  const load = new Load(s.gw.port);
  try {
    await waitRollout(s.gw, (r) => r.step >= 1, 20_000, 'the canary did not reach step 1');
    await s.canary.setMode('flaky:5');
    const done = await waitRollout(s.gw, (r) => r.state === 'rolled_back', 15_000, 'the failing canary was not rolled back');
    // the weights were written before the admin API could show the new state (both on the main thread)
    const seenAt = Date.now();
    const rollback = done.history.find((d: any) => d.action === 'rollback');
    const rolledBackAt = Date.parse(rollback.at);
    const firstBad = Math.min(...load.answers.filter((a) => a.status === 500).map((a) => a.end));
    const ms = rolledBackAt - firstBad;
    console.log(`# 5 % errors: first bad answer to canary 0 %: ${ms} ms (interval ${interval * 1000} ms, step ${rollback.step}, ${rollback.evaluation.recent?.canary.requests} canary requests judged)`);
    assert.ok(Number.isFinite(firstBad), 'no client saw a bad answer');
    // An evaluation every interval; the first ones that hold the error fail the step. The margin is for a loaded
    // machine, where the gateway's timers run late: still well before the step's soak of 2 s would end twice over.
    assert.ok(ms <= 8 * interval * 1000, `rolled back ${ms} ms after the first bad answer, more than 8 intervals`);
    assert.deepEqual(done.weights, { stable: 100, canary: 0 });
    assert.match(rollback.reason, /error rate [\d.]+ % > stable 0 % \+ 1 points/);
    const logged = await logLines(s.gw, 'rollout rolled back');
    assert.equal(logged.length, 1);
    assert.equal(logged[0].level, 'warn');
    assert.ok(logged[0].recent.canary.errors >= 1);

    await load.settledBefore(seenAt); // requests already on their way to the canary finish
    const reached = await s.canary.received();
    const checkedAt = Date.now();
    await load.answeredAfter(checkedAt, 50);
    assert.equal(await s.canary.received(), reached, 'requests reached the canary after the rollback');
    assert.deepEqual(load.startedAfter(seenAt).filter((a) => a.status !== 200 || a.node !== 'stable'), []);
    // it stays rolled back
    await sleep(3 * interval * 1000);
    assert.equal((await rolloutOf(s.gw)).state, 'rolled_back');
  } finally {
    await load.stop();
    await s.close();
  }
});

test('a canary whose upstream is killed is rolled back within an interval or so; clients see no error after', async () => {
  const interval = 0.25;
  const s = await setup(ROLLOUT({ interval, soak: 2, min: 30 }));
  const load = new Load(s.gw.port);
  try {
    await waitRollout(s.gw, (r) => r.step >= 1, 20_000, 'the canary did not reach step 1');
    const killedAt = Date.now();
    await s.canary.kill();
    const done = await waitRollout(s.gw, (r) => r.state === 'rolled_back', 10_000, 'the dead canary was not rolled back');
    const seenAt = Date.now();
    const rollback = done.history.find((d: any) => d.action === 'rollback');
    const rolledBackAt = Date.parse(rollback.at);
    const failed = load.answers.filter((a) => a.status !== 200);
    console.log(`# canary killed: canary 0 % after ${rolledBackAt - killedAt} ms; ${failed.length} client errors before that (interval ${interval * 1000} ms): ${rollback.reason}`);
    assert.match(rollback.reason, /all \d+ canary requests of the last interval failed|error rate/);
    assert.ok(failed.every((a) => a.status === 502 || a.status === 503), JSON.stringify(failed.slice(0, 3)));
    const after = await load.answeredAfter(seenAt, 51);
    assert.deepEqual(after.filter((a) => a.status !== 200), [], 'clients saw errors after the rollback');
  } finally {
    await load.stop();
    await s.close();
  }
});

test('a canary whose P95 regresses (slow answers) is rolled back', async () => {
  // P95 is judged on 100 canary requests at least: a first step of 25 % gets them in a few hundred requests
  const s = await setup(ROLLOUT({ criteria: '{ maxErrorRateIncrease: 1, maxP95Increase: 20 }', soak: 2, steps: '[25, 50, 100]' }));
  const load = new Load(s.gw.port);
  try {
    // 150 ms: far above the stable version's P95, also when a loaded machine makes every answer slower
    await s.canary.setMode('slow:150');
    const done = await waitRollout(s.gw, (r) => r.state === 'rolled_back', 30_000, 'the slow canary was not rolled back');
    const rollback = done.history.find((d: any) => d.action === 'rollback');
    assert.equal(rollback.step, 0);
    assert.match(rollback.reason, /P95 [\d.]+ ms > stable [\d.]+ ms \+ 20 %/);
    assert.ok(rollback.evaluation.recentP95.canary.requests >= 100);
    assert.ok(rollback.evaluation.recentP95.canary.p95Ms >= 50);
    assert.equal(rollback.evaluation.recentP95.canary.errors, 0);
    assert.deepEqual(done.weights, { stable: 100, canary: 0 });
  } finally {
    await load.stop();
    await s.close();
  }
});

test('pause, resume, promote and abort through the admin API: token, audit, states, weights', async () => {
  const s = await setup(ROLLOUT({ soak: 60 }));
  const load = new Load(s.gw.port, 2);
  try {
    const post = (cmd: string, token: string | null = TOKEN) => admin(s.gw.adminUrl, 'POST', `/routes/orders/rollout/${cmd}`, { token });
    assert.equal((await post('pause', null)).status, 401);
    assert.equal((await admin(s.gw.adminUrl, 'GET', '/routes/orders/rollout', { token: null })).status, 401);
    const none = await admin(s.gw.adminUrl, 'GET', '/routes/other/rollout', { token: TOKEN });
    assert.equal(none.status, 404);
    assert.equal(none.body.code, 'NG_ERR_ADMIN_NO_ROLLOUT');
    assert.equal((await admin(s.gw.adminUrl, 'GET', '/routes/nope/rollout', { token: TOKEN })).body.code, 'NG_ERR_ADMIN_UNKNOWN_ROUTE');
    assert.equal((await post('resume')).body.code, 'NG_ERR_ADMIN_ROLLOUT_STATE');

    const paused = await post('pause');
    assert.equal(paused.status, 200);
    assert.equal(paused.body.rollout.state, 'paused');
    assert.equal(paused.body.decision.by.startsWith('token:'), true);
    assert.equal((await post('pause')).status, 409);
    // evaluations go on while paused, and say so
    await waitRollout(s.gw, (r) => r.lastEvaluation?.verdict === 'paused', 5000, 'no evaluation while paused');
    const resumed = await post('resume');
    assert.equal(resumed.body.rollout.state, 'running');
    assert.equal(resumed.body.rollout.step, 0);

    const promoted = await post('promote');
    assert.deepEqual(promoted.body.rollout.weights, { stable: 0, canary: 100 });
    const promotedAt = Date.now();
    assert.deepEqual([...new Set((await load.answeredAfter(promotedAt, 10)).map((a) => a.node))], ['canary']);
    assert.equal((await post('promote')).status, 409);

    const aborted = await post('abort');
    assert.equal(aborted.body.rollout.state, 'aborted');
    assert.deepEqual(aborted.body.rollout.weights, { stable: 100, canary: 0 });
    const abortedAt = Date.now();
    assert.deepEqual([...new Set((await load.answeredAfter(abortedAt, 10)).map((a) => a.node))], ['stable']);
    assert.equal((await post('abort')).status, 409);

    const view = await rolloutOf(s.gw);
    assert.deepEqual(view.history.map((d: any) => d.action), ['start', 'pause', 'resume', 'promote', 'abort']);
    const audit = readFileSync(s.auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const rollouts = audit.filter((e) => String(e.action).startsWith('rollout.'));
    assert.deepEqual(rollouts.map((e) => `${e.action}:${e.result}`), [
      'rollout.resume:refused', 'rollout.pause:ok', 'rollout.pause:refused', 'rollout.resume:ok', 'rollout.promote:ok', 'rollout.promote:refused', 'rollout.abort:ok', 'rollout.abort:refused',
    ]);
    assert.ok(audit.some((e) => e.action === 'POST /routes/orders/rollout/pause' && e.result === 'unauthorized'));
    await load.stop();
    assert.deepEqual(load.answers.filter((a) => a.status !== 200), []);
  } finally {
    await load.stop();
    await s.close();
  }
});

test('a reload with the same rollout keeps its step; a changed one restarts at step 0; a removed one restores the weights', async () => {
  const s = await setup(ROLLOUT());
  const load = new Load(s.gw.port, 2);
  const reload = async (yaml: string) => {
    writeFileSync(s.gw.configFile, `listen: { host: 127.0.0.1, port: ${s.gw.port} }\nadmin: { host: 127.0.0.1, port: ${s.gw.adminPort}, token: ${TOKEN}, auditLog: ${s.auditFile} }\n${yaml}`);
    const r = await admin(s.gw.adminUrl, 'POST', '/reload', { token: TOKEN });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };
  try {
    await waitRollout(s.gw, (r) => r.step >= 1, 20_000, 'the canary did not reach step 1');
    await admin(s.gw.adminUrl, 'POST', '/routes/orders/rollout/pause', { token: TOKEN });
    const before = await rolloutOf(s.gw);

    // same rollout, another route added, the configured weights changed: state, step and weights stay
    await reload(gatewayYaml(s.stable, s.canary, ROLLOUT()).replace('weight: 100 }', 'weight: 90 }').replace('weight: 0 }', 'weight: 10 }') + '  - { name: more, match: { prefix: /more }, upstream: orders-v1 }\n');
    const kept = await rolloutOf(s.gw);
    assert.equal(kept.state, 'paused');
    assert.equal(kept.step, before.step);
    assert.deepEqual(kept.weights, before.weights);
    assert.deepEqual(kept.history, before.history);

    // a changed rollout block: starts over, logged as a restart
    await reload(gatewayYaml(s.stable, s.canary, ROLLOUT({ soak: 60 })));
    const restarted = await rolloutOf(s.gw);
    assert.equal(restarted.state, 'running');
    assert.equal(restarted.step, 0);
    assert.deepEqual(restarted.weights, { stable: 95, canary: 5 });
    assert.deepEqual(restarted.history.map((d: any) => d.action), ['restart']);
    const logged = await logLines(s.gw, 'rollout restarted: its config changed');
    assert.equal(logged.length, 1);
    assert.equal(logged[0].route, 'orders');
    assert.equal(logged[0].step, 0);

    // removed: the configured weights serve again, the admin API says there is none
    await reload(gatewayYaml(s.stable, s.canary, '').replace('weight: 100 }', 'weight: 80 }').replace('weight: 0 }', 'weight: 20 }'));
    assert.equal((await admin(s.gw.adminUrl, 'GET', '/routes/orders/rollout', { token: TOKEN })).body.code, 'NG_ERR_ADMIN_NO_ROLLOUT');
    assert.match(await scrape(s.gw), /^nanogate_traffic_weight_ratio\{route="orders",version="canary"\} 0\.2$/m);
    assert.equal((await logLines(s.gw, 'rollout removed from the config')).length, 1);
    await load.stop();
    assert.deepEqual(load.answers.filter((a) => a.status !== 200), []);
  } finally {
    await load.stop();
    await s.close();
  }
});

test('nanogate validate refuses bad rollouts with the path and the reason', async () => {
  const yaml = (rollout: string) => `
upstreams:
  a: { nodes: [{ url: http://127.0.0.1:9 }] }
  b: { nodes: [{ url: http://127.0.0.1:9 }] }
routes:
  - name: r
    match: { prefix: / }
    upstream: a
    traffic:
      versions: [{ name: stable, upstream: a, weight: 95 }, { name: canary, upstream: b, weight: 5 }]
      rollout: ${rollout}
`;
  const cases: [string, RegExp][] = [
    ['{ version: canary, steps: [5, 50, 25], minRequests: 10, criteria: { maxErrorRateIncrease: 1 } }', /routes\[0\]\.traffic\.rollout\.steps\[2\]: 25 is not above the step before it \(50\)/],
    ['{ version: canary, steps: [5, 150], minRequests: 10, criteria: { maxErrorRateIncrease: 1 } }', /routes\[0\]\.traffic\.rollout\.steps\[1\]: must be <= 100/],
    ['{ version: beta, steps: [5], minRequests: 10, criteria: { maxErrorRateIncrease: 1 } }', /routes\[0\]\.traffic\.rollout\.version: "beta" is not one of the route's versions/],
    ['{ version: canary, steps: [5], criteria: { maxErrorRateIncrease: 1 } }', /routes\[0\]\.traffic\.rollout.*minRequests/],
    ['{ version: canary, steps: [5], minRequests: 10, soakSeconds: 2, intervalSeconds: 5, criteria: { maxErrorRateIncrease: 1 } }', /routes\[0\]\.traffic\.rollout\.soakSeconds: 2 s is shorter than intervalSeconds \(5 s\)/],
    ['{ version: canary, steps: [5], minRequests: 10, criteria: { noOpenCircuit: true } }', /routes\[0\]\.traffic\.rollout\.criteria: has neither maxErrorRateIncrease nor maxP95Increase/],
  ];
  for (const [rollout, want] of cases) {
    const file = writeConfig(yaml(rollout));
    const r = await runCli(['validate', '--config', file]);
    assert.notEqual(r.code, 0, `accepted: ${rollout}`);
    assert.match(r.stderr + r.stdout, want, rollout);
  }
  const ok = await runCli(['validate', '--config', writeConfig(yaml('{ version: canary, steps: [5, 25, 100], minRequests: 10, criteria: { maxErrorRateIncrease: 1 } }'))]);
  assert.equal(ok.code, 0, ok.stderr);
});
