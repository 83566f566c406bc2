import { Type, type Static } from '@sinclair/typebox';

/**
 * `traffic:` on a route: a weighted split between versions (each an upstream), with stickiness, targeting rules
 * and a signed affinity cookie. Compiled by src/traffic/compile.ts, decided per request by src/traffic/split.ts,
 * documented in docs/traffic-management.md. The route's own `upstream` stays the stable version: it serves when
 * `traffic` is absent and it is where the route's fallback and metrics rows point.
 */

const VersionName = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'the version name, in logs, the affinity cookie and the admin API: letters, digits, dot, dash, underscore' });
const HeaderName = (description: string) => Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 256, description });
const CookieName = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 128, description: 'a cookie name (an RFC 6265 token)' });

const Version = Type.Object(
  {
    name: VersionName,
    upstream: Type.String({ minLength: 1, description: 'name of the upstream (a key of upstreams) this version is served by' }),
    weight: Type.Number({
      minimum: 0,
      maximum: 100,
      description: 'share of the requests in percent, at most one decimal (12.5); the weights of a route add to 100. A rollout or PUT /routes/:name/traffic may change it at run time',
    }),
  },
  { additionalProperties: false },
);

export const StickySchema = Type.Object(
  {
    by: Type.Union([Type.Literal('consumer'), Type.Literal('header'), Type.Literal('cookie'), Type.Literal('ip')], {
      description: 'what keeps a client on its version: the authenticated consumer, a request header, a cookie, or the client address',
    }),
    name: Type.Optional(HeaderName('the header or cookie name (by: header or cookie)')),
  },
  {
    additionalProperties: false,
    description:
      'keep each key (consumer, header value, cookie value, address) on one version while the weights stay; a weight change moves only the share it has to. Requests without the key are split by the weights',
  },
);

const HeaderRule = Type.Object(
  {
    name: HeaderName('request header name (case does not matter)'),
    value: Type.String({ description: 'the exact value that selects the version' }),
  },
  { additionalProperties: false, description: 'a request header with this exact value' },
);

const ConsumerRule = Type.Object(
  {
    ids: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'consumer ids' })),
    plans: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: "consumer plans (the consumer's plan is one of these)" })),
    roles: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'consumer roles, used as tags (the consumer holds one of these)' })),
    subscription: Type.Optional(
      Type.Object(
        {
          api: Type.String({ minLength: 1, description: 'an API name of the consumer\'s subscriptions (e.g. "orders-beta")' }),
          environment: Type.Optional(Type.String({ minLength: 1, description: 'and this environment of it' })),
        },
        { additionalProperties: false, description: 'the consumer holds a subscription to this API' },
      ),
    ),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description: 'the authenticated consumer: any listed test that holds selects the version (needs an auth policy on the route)',
  },
);

const TargetRule = Type.Object(
  {
    version: VersionName,
    header: Type.Optional(HeaderRule),
    consumer: Type.Optional(ConsumerRule),
  },
  { additionalProperties: false, minProperties: 2, maxProperties: 2, description: 'a version and exactly one condition: header or consumer' },
);

export const AffinitySchema = Type.Object(
  {
    cookie: { ...CookieName, secret: false, description: 'name of the cookie the gateway sets (its value is signed, the name is not secret)' },
    ttlSeconds: Type.Integer({ minimum: 1, maximum: 31_536_000, default: 3600, description: 'how long a client stays on its version (the cookie\'s Max-Age and signed expiry)' }),
    secret: Type.String({ secret: true, description: 'HMAC-SHA256 key of the cookie signature, at least 16 bytes; e.g. "${NG_AFFINITY_SECRET}"' }),
  },
  {
    additionalProperties: false,
    description:
      'the gateway sets a signed cookie naming the version a client got, and honours it for ttlSeconds (over weights and stickiness, not over targeting); a forged, expired or unknown cookie is ignored',
  },
);

/**
 * The `traffic` object. Its properties are exported so the rollout engineer's module can add `rollout` beside them
 * without a second schema.
 */
export const TRAFFIC_PROPERTIES = {
  versions: Type.Array(Version, { minItems: 1, maxItems: 16, description: 'the versions and their weights; the weights add to 100' }),
  sticky: Type.Optional(StickySchema),
  targeting: Type.Optional(
    Type.Array(TargetRule, { minItems: 1, maxItems: 64, description: 'rules that send matching requests to a version whatever the weights; the first that matches wins' }),
  ),
  affinity: Type.Optional(AffinitySchema),
};

export const TrafficSchema = Type.Object(TRAFFIC_PROPERTIES, {
  additionalProperties: false,
  description: 'a weighted split of this route between versions (upstreams), with stickiness, targeting and affinity (docs/traffic-management.md); omitted: all requests go to upstream',
});

export type TrafficConfig = Static<typeof TrafficSchema>;
export type StickyConfig = Static<typeof StickySchema>;
