/**
 * The compression policy's per-response decision (src/policies/compression/): what a route with the policy pays on a
 * response it does not compress (an image type, a body under minBytes), and the Accept-Encoding negotiation of an
 * eligible one. The compressing itself runs on the libuv pool and is measured through the gateway
 * (native-bench/compression.sh, docs/compression.md).
 */
import { defineSuite, consume, type MicroCase } from '../../src/bench/micro-api.js';
import { compressionPolicy } from '../../src/policies/compression/index.js';
import { negotiate } from '../../src/policies/compression/negotiate.js';
import type { PolicyContext } from '../../src/pipeline/policy.js';

/** The parts of a response-phase context the policy reads, over a flat header list as the Exchange holds it. */
function context(headers: string[], length: number, acceptEncoding: string): PolicyContext {
  const values = (name: string) => {
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() === name) out.push(headers[i + 1]);
    return out;
  };
  return {
    status: 200,
    responseLength: length,
    responseHeader: (name: string) => values(name)[0],
    responseHeaderValues: values,
    header: (name: string) => (name === 'accept-encoding' ? acceptEncoding : undefined),
    addResponseHeader: () => {},
    removeResponseHeader: () => {},
  } as unknown as PolicyContext;
}

export default defineSuite({
  name: 'compression',
  description: 'compression policy: declining a response it does not compress, and Accept-Encoding negotiation',
  cases(): MicroCase[] {
    const mod = compressionPolicy;
    const data = mod.compile!(
      { encodings: ['br', 'gzip'], minBytes: 1024, contentTypes: ['text/*', 'application/json', 'image/svg+xml'], gzip: { level: 6, windowBits: 15, memLevel: 8 }, brotli: { quality: 4, window: 18 } },
      {} as never,
    );
    const hook = mod.create(data, {} as never).responseBody!;
    const browser = 'gzip, deflate, br, zstd';
    const png = context(['Content-Type', 'image/png', 'ETag', '"a1"', 'Cache-Control', 'max-age=60'], 20000, browser);
    const small = context(['Content-Type', 'application/json; charset=utf-8'], 300, browser);
    const offered = ['br', 'gzip'];
    const reps = 32;
    return [
      { name: 'decline: image/png, 20 kB', ops: reps, fn: () => { for (let i = 0; i < reps; i++) consume(hook(png)); } },
      { name: 'decline: json under minBytes', ops: reps, fn: () => { for (let i = 0; i < reps; i++) consume(hook(small)); } },
      { name: 'negotiate: a browser header', ops: reps, fn: () => { for (let i = 0; i < reps; i++) consume(negotiate(browser, offered)); } },
      { name: 'negotiate: q-values and *', ops: reps, fn: () => { for (let i = 0; i < reps; i++) consume(negotiate('br;q=0.9, gzip;q=0.8, *;q=0.1', offered)); } },
    ];
  },
});
