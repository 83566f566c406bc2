import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import type { DiscoveredNode, DiscoverySource } from '../../src/discovery/source.js';

/** What a discovery source handed its owner, in order, and the log lines it wrote (JSON). */
export interface Recorder {
  /** every set passed to onNodes */
  readonly sets: (readonly DiscoveredNode[])[];
  readonly onNodes: (nodes: readonly DiscoveredNode[]) => void;
  /** the latest set as sorted "host:port/weight" strings */
  latest(): string[];
  readonly logger: Logger;
  readonly lines: Record<string, unknown>[];
  /** log lines whose msg contains `text` */
  logged(text: string): Record<string, unknown>[];
}

export function recorder(): Recorder {
  const sets: (readonly DiscoveredNode[])[] = [];
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return {
    sets,
    onNodes: (nodes) => void sets.push(nodes),
    latest: () => describe(sets.at(-1) ?? []),
    logger: pino({ level: process.env.NANOGATE_TEST_LOG ?? 'info' }, stream),
    lines,
    logged: (text) => lines.filter((l) => String(l.msg).includes(text)),
  };
}

export function describe(nodes: readonly DiscoveredNode[]): string[] {
  return nodes.map((n) => `${n.host.includes(':') ? `[${n.host}]` : n.host}:${n.port}/${n.weight}`).sort();
}

/** Polls `check` until it holds; throws with `what` when it has not within `ms`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts a source with a recorder and returns both; the caller stops the source. */
export function started<S extends DiscoverySource>(make: (logger: Logger) => S): { source: S; rec: Recorder } {
  const rec = recorder();
  const source = make(rec.logger);
  source.start(rec.onNodes);
  return { source, rec };
}
