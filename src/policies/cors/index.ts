import { Type, type Static } from '@sinclair/typebox';
import { CONTINUE, PRIORITY, RESPOND, PolicyConfigError, type CompileContext, type PolicyContext, type PolicyHooks, type PolicyModule } from '../../pipeline/policy.js';

/**
 * Cross-origin resource sharing (Fetch standard, "CORS protocol") answered at the gateway.
 *
 * - A preflight (OPTIONS with Origin and Access-Control-Request-Method) never reaches the upstream: an allowed one
 *   gets 204 with the Access-Control-Allow-* headers, a refused one 403 NG_ERR_ACCESS_CORS_REJECTED. The router lets
 *   preflights through to a route with this policy whatever the route's `methods` (see answersPreflight).
 * - An actual request from an allowed origin gets Access-Control-Allow-Origin (and -Credentials, -Expose-Headers)
 *   on its response, also on the gateway's own error responses; from another origin it passes without them and the
 *   browser enforces. Access-Control-* headers of the upstream are dropped: the route's policy is the one answer.
 * - With credentials the origin is echoed, never "*". `Vary: Origin` goes on every response whose CORS headers
 *   depend on the origin (also on those without an Origin header, which a cache could otherwise reuse for one).
 *
 * Origins are compiled when the config loads into a Set of exact values and prefix/suffix pairs for wildcards
 * (https://*.example.com, http://localhost:*): a request costs a Set lookup and at most a few startsWith/endsWith.
 */
const Origin = Type.String({
  minLength: 1,
  maxLength: 512,
  description: '"*", "null", an exact origin (https://app.example.com) or one wildcard: https://*.example.com, http://localhost:*',
});
const Method = Type.String({ pattern: '^([A-Z]{1,16}|\\*)$' });
/** what a preflight may ask for on a route that lists no methods of its own */
const DEFAULT_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
const HeaderName = Type.String({ pattern: "^([!#$%&'+.^_`|~0-9A-Za-z-]+|\\*)$", maxLength: 256 });
const Schema = Type.Object(
  {
    origins: Type.Array(Origin, { description: 'origins allowed to call the route; [] switches a global cors entry off for a route' }),
    methods: Type.Optional(
      Type.Array(Method, {
        minItems: 1,
        description: `methods a preflight may ask for ("*": any); default: the route's match.methods (with HEAD for GET), else ${DEFAULT_METHODS.join(', ')}`,
      }),
    ),
    allowHeaders: Type.Array(HeaderName, {
      secret: false,
      default: ['*'],
      description: 'request headers a preflight may ask for ("*": any, answered by echoing the requested list)',
    }),
    exposeHeaders: Type.Array(HeaderName, { default: [], secret: false, description: 'response headers scripts may read (Access-Control-Expose-Headers)' }),
    credentials: Type.Boolean({ default: false, secret: false, description: 'allow cookies and Authorization (Access-Control-Allow-Credentials: true)' }),
    maxAge: Type.Integer({ minimum: 0, maximum: 86400, default: 600, description: 'seconds a browser may cache a preflight answer' }),
  },
  { additionalProperties: false, description: 'answer CORS preflights and add CORS headers to responses' },
);
type Config = Static<typeof Schema>;

/** A wildcard origin: `prefix` + something made of `charset` characters + `suffix`. */
interface OriginPattern {
  prefix: string;
  suffix: string;
  /** the wildcard stands for host labels (a-z 0-9 - .) or a port (digits) */
  port: boolean;
}

interface Data {
  /** origins: [] — the route has no CORS handling at all */
  off: boolean;
  anyOrigin: boolean;
  exact: string[];
  patterns: OriginPattern[];
  /** null: any method */
  methods: string[] | null;
  /** null: any header (lower case) */
  allowHeaders: string[] | null;
  exposeHeaders: string[];
  credentials: boolean;
  maxAge: number;
}

// scheme://host[:port], host possibly "*." + rest, port possibly "*"; at most one "*". Checked at load only.
const ORIGIN = /^([a-z][a-z0-9+.-]*):\/\/(\*\.)?([a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(:([0-9]{1,5}|\*))?$/;

function compileOrigin(text: string, path: string): { exact?: string; pattern?: OriginPattern } {
  const o = text.toLowerCase();
  if (o === 'null') return { exact: 'null' };
  const m = ORIGIN.exec(o);
  if (!m) {
    const hint = o.endsWith('/') ? 'an origin has no path or trailing slash: write e.g. https://app.example.com' : 'write e.g. https://app.example.com, https://*.example.com or http://localhost:*';
    throw new PolicyConfigError(path, `"${text}" is not an origin (scheme://host[:port])`, hint);
  }
  const hostWild = m[2] !== undefined;
  const portWild = m[6] === '*';
  if (hostWild && portWild) throw new PolicyConfigError(path, `"${text}" has more than one "*"`, 'use one wildcard: the first host label or the port');
  if (hostWild) return { pattern: { prefix: `${m[1]}://`, suffix: o.slice(m[1].length + 4), port: false } };
  if (portWild) return { pattern: { prefix: o.slice(0, -1), suffix: '', port: true } };
  return { exact: o };
}

const PREFLIGHT = 1;

const CH_0 = 48, CH_9 = 57, CH_A = 97, CH_Z = 122, CH_DASH = 45, CH_DOT = 46;

/** The part an origin pattern's "*" stands for: host labels (no leading dot) or a port. */
function wildcardFits(origin: string, start: number, end: number, port: boolean): boolean {
  if (end <= start) return false;
  if (port) {
    if (end - start > 5) return false;
    for (let i = start; i < end; i++) {
      const c = origin.charCodeAt(i);
      if (c < CH_0 || c > CH_9) return false;
    }
    return true;
  }
  if (origin.charCodeAt(start) === CH_DOT) return false;
  for (let i = start; i < end; i++) {
    const c = origin.charCodeAt(i);
    if (!((c >= CH_A && c <= CH_Z) || (c >= CH_0 && c <= CH_9) || c === CH_DASH || c === CH_DOT)) return false;
  }
  return true;
}

/** An HTTP method token as a preflight may name it (echoed back only when it is one). */
function isToken(s: string): boolean {
  if (s.length === 0 || s.length > 32) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 32 || c >= 127 || c === 44 /* , */ || c === 58 /* : */) return false;
  }
  return true;
}

const UPSTREAM_CORS = ['access-control-allow-origin', 'access-control-allow-credentials', 'access-control-expose-headers'];

/** The per-route, per-worker CORS answerer: every string of the answer precomputed, hooks as bound methods. */
class Cors {
  readonly #anyOrigin: boolean;
  readonly #exact: ReadonlySet<string>;
  readonly #patterns: readonly OriginPattern[];
  readonly #methods: ReadonlySet<string> | null;
  readonly #methodsValue: string;
  readonly #headers: ReadonlySet<string> | null;
  readonly #headersValue: string;
  readonly #exposeValue: string;
  readonly #credentials: boolean;
  readonly #maxAgeValue: string;
  /** "*" for everyone, the same on every response: nothing depends on the origin */
  readonly #star: boolean;
  readonly #preflightVary: string;
  readonly #slot: number;

  constructor(d: Data, slot: number) {
    this.#anyOrigin = d.anyOrigin;
    this.#exact = new Set(d.exact);
    this.#patterns = d.patterns;
    this.#methods = d.methods === null ? null : new Set(d.methods);
    this.#methodsValue = d.methods === null ? '' : d.methods.join(', ');
    this.#headers = d.allowHeaders === null ? null : new Set(d.allowHeaders);
    this.#headersValue = d.allowHeaders === null ? '' : d.allowHeaders.join(', ');
    this.#exposeValue = d.exposeHeaders.join(', ');
    this.#credentials = d.credentials;
    this.#maxAgeValue = String(d.maxAge);
    this.#star = d.anyOrigin && !d.credentials;
    const vary: string[] = [];
    if (!this.#star) vary.push('Origin');
    if (d.methods === null) vary.push('Access-Control-Request-Method');
    if (d.allowHeaders === null) vary.push('Access-Control-Request-Headers');
    this.#preflightVary = vary.join(', ');
    this.#slot = slot;
  }

  originAllowed(origin: string): boolean {
    if (this.#exact.has(origin)) return true;
    if (this.#anyOrigin) return origin !== 'null'; // "null" (sandboxed frames, file:) only when listed
    const patterns = this.#patterns;
    for (let i = 0; i < patterns.length; i++) {
      const p = patterns[i];
      if (
        origin.length > p.prefix.length + p.suffix.length &&
        origin.startsWith(p.prefix) &&
        origin.endsWith(p.suffix) &&
        wildcardFits(origin, p.prefix.length, origin.length - p.suffix.length, p.port)
      ) {
        return true;
      }
    }
    return false;
  }

  /** Answers preflights; every other request continues untouched. */
  readonly access = (ctx: PolicyContext): typeof CONTINUE | typeof RESPOND => {
    if (ctx.method !== 'OPTIONS') return CONTINUE;
    const origin = ctx.header('origin');
    const method = ctx.header('access-control-request-method');
    if (origin === undefined || method === undefined) return CONTINUE;
    ctx.slots[this.#slot] = PREFLIGHT;
    if (!this.originAllowed(origin)) return reject(ctx, 'the origin is not allowed to call this route');
    if (this.#methods === null ? !isToken(method) : !this.#methods.has(method)) {
      return reject(ctx, 'the requested method is not allowed for cross-origin calls to this route');
    }
    const requested = ctx.header('access-control-request-headers');
    if (requested !== undefined && this.#headers !== null) {
      const refused = firstRefused(requested, this.#headers);
      if (refused !== null) return reject(ctx, `the request header "${refused}" is not allowed for cross-origin calls to this route`);
    }
    const h: string[] = ['access-control-allow-origin', this.#star ? '*' : origin];
    if (this.#credentials) h.push('access-control-allow-credentials', 'true');
    h.push('access-control-allow-methods', this.#methods === null ? method : this.#methodsValue);
    const allowHeaders = this.#headers === null ? requested : this.#headersValue;
    if (allowHeaders) h.push('access-control-allow-headers', allowHeaders);
    h.push('access-control-max-age', this.#maxAgeValue);
    if (this.#preflightVary) h.push('vary', this.#preflightVary);
    ctx.respond(204, h);
    return RESPOND;
  };

  /** Actual requests (and the gateway's error answers to them): the Access-Control-Allow-* headers. */
  readonly response = (ctx: PolicyContext): void => {
    if (ctx.slots[this.#slot] === PREFLIGHT) return;
    for (let i = 0; i < UPSTREAM_CORS.length; i++) ctx.removeResponseHeader(UPSTREAM_CORS[i]);
    let origin: string | undefined;
    if (this.#star) origin = '*';
    else {
      ctx.addResponseHeader('vary', 'Origin');
      origin = ctx.header('origin');
      if (origin === undefined || !this.originAllowed(origin)) return;
    }
    ctx.addResponseHeader('access-control-allow-origin', origin);
    if (this.#credentials) ctx.addResponseHeader('access-control-allow-credentials', 'true');
    if (this.#exposeValue !== '') ctx.addResponseHeader('access-control-expose-headers', this.#exposeValue);
  };
}

function reject(ctx: PolicyContext, detail: string): typeof RESPOND {
  ctx.respondProblem('NG_ERR_ACCESS_CORS_REJECTED', detail);
  return RESPOND;
}

/** The first name of a comma-separated Access-Control-Request-Headers value that is not in `allowed`, or null. */
function firstRefused(list: string, allowed: ReadonlySet<string>): string | null {
  let start = 0;
  while (start <= list.length) {
    let end = list.indexOf(',', start);
    if (end < 0) end = list.length;
    const name = list.slice(start, end).trim().toLowerCase();
    if (name !== '' && !allowed.has(name)) return isToken(name) ? name : '?';
    start = end + 1;
  }
  return null;
}

/**
 * The methods a preflight may ask for when the policy names none: the route's own, so that a [GET] route does not
 * advertise DELETE. The router serves HEAD on a route that lists GET (RFC 9110 section 9.3.2), so HEAD goes with it;
 * OPTIONS only when the route lists it (a preflight itself is answered here whatever the route's methods).
 */
function routeMethods(listed: readonly string[] | null): readonly string[] {
  if (listed === null) return DEFAULT_METHODS;
  return listed.includes('GET') && !listed.includes('HEAD') ? [...listed, 'HEAD'] : listed;
}

export const corsPolicy: PolicyModule<Config, Data> = {
  name: 'cors',
  priority: PRIORITY.cors,
  schema: Schema,
  description: 'answer CORS preflights at the gateway and add CORS headers to responses',
  answersPreflight: (data) => !data.off,
  compile(config, cc: CompileContext) {
    const exact: string[] = [];
    const patterns: OriginPattern[] = [];
    let anyOrigin = false;
    config.origins.forEach((text, i) => {
      if (text === '*') anyOrigin = true;
      else {
        const c = compileOrigin(text, `origins[${i}]`);
        if (c.exact !== undefined) exact.push(c.exact);
        else patterns.push(c.pattern!);
      }
    });
    const methods = config.methods ?? routeMethods(cc.routeMethods ?? null);
    const anyMethod = methods.includes('*');
    const anyHeader = config.allowHeaders.includes('*');
    if (config.exposeHeaders.includes('*') && config.credentials) {
      const i = config.exposeHeaders.indexOf('*');
      throw new PolicyConfigError(`exposeHeaders[${i}]`, '"*" is not a wildcard when credentials are allowed', 'name the response headers scripts may read');
    }
    return {
      off: config.origins.length === 0,
      anyOrigin,
      exact,
      patterns,
      methods: anyMethod ? null : [...new Set(methods)],
      allowHeaders: anyHeader ? null : [...new Set(config.allowHeaders.map((h) => h.toLowerCase()))],
      exposeHeaders: [...new Set(config.exposeHeaders.map((h) => h.toLowerCase()))],
      credentials: config.credentials,
      maxAge: config.maxAge,
    };
  },
  create(data, env): PolicyHooks {
    if (data.off) return {};
    const cors = new Cors(data, env.slot);
    return { access: cors.access, response: cors.response };
  },
};
