import { Type, type Static } from '@sinclair/typebox';
import { Predicate } from '../config/predicate-schema.js';

/**
 * Config of a route's request mirroring (`mirror:` on a route): a sampled share of its requests is copied to another
 * upstream, whose answer is read and dropped. The client's request and response never wait for the copy and never
 * see its failure. docs/mirroring.md explains every key; src/traffic/mirror-compile.ts checks what the schema cannot
 * (the upstream exists, the percent has one decimal at most).
 */

const HeaderName = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 256, description: 'a request header name (case does not matter)' });


export const MirrorSchema = Type.Object(
  {
    upstream: Type.String({ minLength: 1, description: 'the upstream (a key of upstreams) the copies go to; it may be the route\'s own upstream: copies still use connections of their own' }),
    percent: Type.Number({
      minimum: 0,
      maximum: 100,
      default: 100,
      description: 'share of the matching requests that are copied, 0-100 with one decimal at most; exact over every 1000 matching requests of the gateway (a shared counter, not a random draw)',
    }),
    match: Type.Optional(
      Type.Object(
        {
          headers: Type.Optional(Type.Record(HeaderName, Predicate, { secret: false, description: 'request headers that must match, by name (all of them): a string for an exact value, or one test' })),
          query: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Predicate, { description: 'query parameters that must match, by name (all of them): a string for an exact value, or one test' })),
        },
        { additionalProperties: false, description: 'only requests that match are candidates (the same tests as a route match); omitted: every request of the route' },
      ),
    ),
    timeoutMs: Type.Integer({ minimum: 1, maximum: 600_000, default: 1000, description: 'a copy not answered in full within this many ms of being sent is abandoned (its connection closed) and counted as timeout' }),
    maxInFlight: Type.Integer({ minimum: 1, maximum: 100_000, default: 100, description: 'copies of this route in flight at once per worker; a copy beyond it is not sent and counted as dropped_full' }),
    body: Type.Object(
      {
        maxBytes: Type.Integer({
          minimum: 0,
          maximum: 16 * 1024 * 1024,
          default: 65536,
          description: "largest request body copied, in bytes. A body is copied only when the gateway held it whole before forwarding (up to the route's requestBody.bufferBytes, or 64 KiB for a chunked one); any other request with a body is not copied and counted as skipped_body",
        }),
      },
      { additionalProperties: false, default: {}, description: 'which request bodies are copied' },
    ),
    header: Type.Object(
      {
        name: Type.String({ ...HeaderName, default: 'x-nanogate-mirror', description: 'name of the header every copy carries, so the shadow upstream can tell copies from real traffic' }),
        value: Type.String({ pattern: '^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$', maxLength: 1024, default: '1', description: 'its value (visible ASCII)' }),
      },
      { additionalProperties: false, default: {}, description: 'the marker header added to each copy' },
    ),
  },
  {
    additionalProperties: false,
    description:
      'copy a sampled share of this route\'s requests to another upstream (shadow traffic); its answers are read and dropped, and it never delays, fails or changes the client\'s response (docs/mirroring.md)',
  },
);

export type MirrorConfig = Static<typeof MirrorSchema>;
