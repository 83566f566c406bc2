import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: number | string } }[];
  status: { code: number; message?: string };
}

export interface Collector {
  url: string;
  port: number;
  /** every POST received: path, content-type and body text */
  posts: { path: string; contentType: string; body: string }[];
  /** spans of every OTLP/JSON request to /v1/traces */
  spans(): OtlpSpan[];
  /** NDJSON lines of every other POST */
  lines(): Record<string, unknown>[];
  /** resolves when `test` holds for the received data, or rejects after `ms` */
  waitFor(test: () => boolean, ms?: number): Promise<void>;
  /** Records POSTs but holds their answers until the returned function is called (a slow collector). */
  hold(): () => void;
  close(): Promise<void>;
}

/** The value of a span attribute (string or int). */
export function attr(span: OtlpSpan, key: string): string | number | undefined {
  const a = span.attributes.find((x) => x.key === key);
  if (!a) return undefined;
  return a.value.stringValue ?? (a.value.intValue !== undefined ? Number(a.value.intValue) : undefined);
}

/**
 * A loopback receiver for the gateway's exports: OTLP/HTTP JSON on POST /v1/traces, NDJSON log batches on any other
 * path. It answers 200 with {} (what an OTLP collector answers to a full success).
 */
export async function startCollector(): Promise<Collector> {
  const posts: Collector['posts'] = [];
  let held: (() => void)[] | null = null;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      posts.push({ path: req.url ?? '', contentType: req.headers['content-type'] ?? '', body: Buffer.concat(chunks).toString('utf8') });
      const answer = () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      };
      if (held !== null) held.push(answer);
      else answer();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const spans = () =>
    posts
      .filter((p) => p.path === '/v1/traces')
      .flatMap((p) => (JSON.parse(p.body).resourceSpans as { scopeSpans: { spans: OtlpSpan[] }[] }[]).flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)));
  const lines = () =>
    posts
      .filter((p) => p.path !== '/v1/traces')
      .flatMap((p) => p.body.split('\n').filter((l) => l.trim() !== ''))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    posts,
    spans,
    lines,
    async waitFor(test, ms = 5000) {
      const until = Date.now() + ms;
      while (!test()) {
        if (Date.now() > until) throw new Error('timed out waiting for the collector');
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    hold() {
      const mine: (() => void)[] = (held ??= []);
      return () => {
        if (held === mine) held = null;
        for (const answer of mine.splice(0)) answer();
      };
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** Polls `test` until it holds (or throws after `ms`). */
export async function eventually(test: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
