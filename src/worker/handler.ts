// performance from its module: Node 20's global `performance` is a lazy getter, ~20 ns an access, several a request
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { randomBytes } from 'node:crypto';
import { writeProblem } from '../errors/problem.js';
import { ERRORS, type ErrorCode } from '../errors/codes.js';
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, parseContentLength } from '../upstream/h1-parse.js';
import { Exchange, type ExchangeHost, type RequestFacts } from './exchange.js';
import { NO_ROUTE, Refusal } from './refusal.js';
import type { RequestTiming } from '../pipeline/policy.js';
import type { MatchInput, Runtime, RouteRuntime } from './runtime.js';
import { peerAddress } from './peer-address.js';
import { RequestIds } from './request-ids.js';
import { flat } from '../shared/flat-string.js';

/**
 * The request path of a worker, from the uWS callback to a dispatched Exchange. Everything the uWS request object
 * holds is copied out synchronously (it dies when the handler returns). Headers are read in one forEach pass that
 * validates framing, drops hop-by-hop fields and builds the forwarded header block as one string.
 */

// Header names with a role in framing or forwarding; all others pass through untouched.
const H_HOST = 1, H_CL = 2, H_TE = 3, H_CONNECTION = 4, H_HOP = 5, H_XFF = 6, H_XFP = 7, H_XFH = 8, H_VIA = 9, H_EXPECT = 10, H_CLAIM = 11, H_CERT = 12, H_TE_FIELD = 13;
const SPECIAL = new Map<string, number>([
  ['host', H_HOST],
  ['content-length', H_CL],
  ['transfer-encoding', H_TE],
  ['connection', H_CONNECTION],
  ['keep-alive', H_HOP],
  ['proxy-connection', H_HOP],
  // hop-by-hop, but `te: trailers` is noted: an HTTP/2 upstream is told (the only TE value HTTP/2 allows)
  ['te', H_TE_FIELD],
  ['trailer', H_HOP],
  ['upgrade', H_HOP],
  ['proxy-authorization', H_HOP],
  ['proxy-authenticate', H_HOP],
  ['x-forwarded-for', H_XFF],
  ['x-forwarded-proto', H_XFP],
  ['x-forwarded-host', H_XFH],
  ['via', H_VIA],
  // uWS answers 100-continue itself, so the upstream must not wait for a second go-ahead.
  ['expect', H_EXPECT],
  // Claims about the client's address: forwarded only from a trusted proxy, like X-Forwarded-For (no spoofing).
  ['forwarded', H_CLAIM],
  ['x-real-ip', H_CLAIM],
]);

/**
 * A filter in front of SPECIAL, by a name's length and first and last characters: a Map lookup hashes the name, a
 * new string per header of every request (about 350 instructions, counted by native-bench/instructions.sh), and most
 * names a browser sends (user-agent, accept-*, cookie, sec-*) have no role here. A name whose cell is 0 is not in
 * SPECIAL; one whose cell is 1 may be, and the Map says.
 */
const MAYBE_SPECIAL = new Uint8Array(1024);
function filterCell(name: string): number {
  const n = name.length;
  return ((n << 5) ^ (name.charCodeAt(0) * 3) ^ name.charCodeAt(n - 1)) & 1023;
}
function fillFilter(): void {
  MAYBE_SPECIAL.fill(0);
  for (const name of SPECIAL.keys()) MAYBE_SPECIAL[filterCell(name)] = 1;
}
fillFilter();

/** true when the name may have a role (the filter of SPECIAL); exported for its test */
export function maybeSpecial(name: string): boolean {
  return MAYBE_SPECIAL[filterCell(name)] === 1;
}

/** the client-certificate header names now in SPECIAL (listen.http2.clientCertificates.headers) */
let certNames: readonly string[] = [];

/**
 * The upstream headers that carry a verified client certificate (docs/mtls.md) are dropped from every client request,
 * on both listeners, by entering them in SPECIAL: no per-request cost, and none at all when mTLS is off. The node
 * listener's handler then adds the verified values. Called by the worker with each plan it applies.
 */
export function setCertificateHeaders(names: readonly string[]): void {
  for (const n of certNames) if (SPECIAL.get(n) === H_CERT) SPECIAL.delete(n);
  for (const n of names) if (!SPECIAL.has(n)) SPECIAL.set(n, H_CERT);
  certNames = names;
  fillFilter();
}

const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

/** Shared by requests on routes without policies: nothing writes to it while start is 0. */
const NO_TIMING: RequestTiming = Object.freeze({ start: 0, routed: 0, upstreamStart: 0, connected: 0, upstreamHeaders: 0, end: 0, hooks: null, hookNames: null }) as RequestTiming;

/** Scratch for one request's header pass: module-level so the forEach callback is one function, not a closure. */
class HeaderScan implements MatchInput {
  method = '';
  path = '';
  query = '';
  /** handler entry (performance.now()), for the access-log line of a refused request */
  startedAt = 0;
  headerNames: string[] = [];
  headerValues: string[] = [];
  headerCount = 0;
  bytes = 0;
  forward = '';
  host = '';
  hostCount = 0;
  contentLength = -1;
  clCount = 0;
  clConflict = false;
  te: string | null = null;
  /** a TE field names "trailers" */
  teTrailers = false;
  connection: string | null = null;
  xff: string | null = null;
  xfp: string | null = null;
  xfh: string | null = null;
  via: string | null = null;
  /** Forwarded / X-Real-IP lines, passed on only when the peer is a trusted proxy */
  claims: string | null = null;
  requestId: string | null = null;
  requestIdHeader = 'x-request-id';

  /** the arrays went with the last request's facts (takeHeaders): the next scan fills new ones */
  #taken = false;

  reset(requestIdHeader: string): void {
    if (this.#taken) {
      this.headerNames = [];
      this.headerValues = [];
      this.#taken = false;
    }
    this.headerCount = 0;
    this.bytes = 0;
    this.forward = '';
    this.host = '';
    this.hostCount = 0;
    this.contentLength = -1;
    this.clCount = 0;
    this.clConflict = false;
    this.te = null;
    this.teTrailers = false;
    this.connection = null;
    this.xff = null;
    this.xfp = null;
    this.xfh = null;
    this.via = null;
    this.claims = null;
    this.requestId = null;
    this.requestIdHeader = requestIdHeader;
  }

  /**
   * This request's header names and values go with its facts (headerNames, headerValues), handed over rather than
   * copied: two slice() calls cost ≈500 instructions, new arrays for the next scan about half that, and the scan's
   * stores into young arrays need no write barrier. The arrays stay readable here until the next reset.
   */
  takeHeaders(): void {
    const names = this.headerNames;
    const values = this.headerValues;
    // entries of an earlier, longer request scanned into the same arrays
    while (names.length > this.headerCount) names.pop();
    while (values.length > this.headerCount) values.pop();
    this.#taken = true;
  }
}

const scan = new HeaderScan();

/**
 * Field lines of the upstream head built from up to three values, kept for the last values seen: from one request
 * to the next they mostly repeat (the same client, Host and Via), and then the head takes one flat string instead of
 * the nine pieces it would walk again when it is written (shared/flat-string.ts).
 */
class LastLines {
  readonly #make: (a: string, b: string, c: string) => string;
  #a = '';
  #b = '';
  #c = '';
  #lines: string;

  constructor(make: (a: string, b: string, c: string) => string) {
    this.#make = make;
    this.#lines = flat(make('', '', ''));
  }

  of(a: string, b: string, c: string): string {
    if (a !== this.#a || b !== this.#b || c !== this.#c) {
      this.#a = a;
      this.#b = b;
      this.#c = c;
      this.#lines = flat(this.#make(a, b, c));
    }
    return this.#lines;
  }
}

/** X-Forwarded-For, -Proto and -Host */
const forwarded = new LastLines((xff, xfp, xfh) => 'x-forwarded-for: ' + xff + '\r\nx-forwarded-proto: ' + xfp + '\r\nx-forwarded-host: ' + xfh + '\r\n');
/** Via, and the request-id field's name (its value, new per request, follows) */
const viaAndId = new LastLines((via, idHeader) => 'via: ' + via + '\r\n' + idHeader + ': ');

function visitHeader(name: string, value: string): void {
  const s = scan;
  const n = s.headerCount++;
  s.headerNames[n] = name;
  s.headerValues[n] = value;
  s.bytes += name.length + value.length + 4;
  const kind = MAYBE_SPECIAL[filterCell(name)] === 0 ? undefined : SPECIAL.get(name);
  if (kind === undefined) {
    if (name.charCodeAt(0) === 112 /* p */ && name.startsWith('proxy-')) return; // every Proxy-* is hop-by-hop
    if (name === s.requestIdHeader) {
      s.requestId = value;
      return;
    }
    s.forward += name + ': ' + value + '\r\n';
    return;
  }
  switch (kind) {
    case H_HOST:
      s.host = value;
      s.hostCount++;
      return;
    case H_CL: {
      const len = parseContentLength(value);
      if (len < 0 || (s.clCount > 0 && len !== s.contentLength)) s.clConflict = true;
      s.contentLength = len;
      s.clCount++;
      return;
    }
    case H_TE:
      s.te = s.te === null ? value : s.te + ', ' + value;
      return;
    case H_CONNECTION:
      s.connection = s.connection === null ? value : s.connection + ', ' + value;
      return;
    case H_XFF:
      s.xff = s.xff === null ? value : s.xff + ', ' + value;
      return;
    case H_XFP:
      s.xfp = value;
      return;
    case H_XFH:
      s.xfh = value;
      return;
    case H_VIA:
      s.via = s.via === null ? value : s.via + ', ' + value;
      return;
    case H_TE_FIELD:
      if (value.toLowerCase().includes('trailers')) s.teTrailers = true;
      return;
    case H_CLAIM:
      s.claims = (s.claims === null ? '' : s.claims) + name + ': ' + value + '\r\n';
      return;
    case H_CERT:
      // not forwarded, and not in what policies read (ctx.header) either: a policy must not see a spoofed copy
      s.headerCount--;
      return;
  }
}

/** Removes from the forwarded block the fields that Connection names (rare: browsers send only keep-alive/close). */
function dropConnectionTokens(forward: string, connection: string): string {
  // the common value (browsers, most HTTP/1.1 client libraries) names no field: no split, no Set per request
  // the exact lower-case text first: one compare of a few bytes, where the case-blind walk reads each character
  if (connection === 'keep-alive' || connection === 'close') return forward;
  if (isOnly(connection, 'keep-alive') || isOnly(connection, 'close')) return forward;
  const names = new Set(connection.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t && t !== 'close' && t !== 'keep-alive'));
  if (names.size === 0) return forward;
  return forward
    .split('\r\n')
    .filter((line) => !names.has(line.slice(0, line.indexOf(':'))))
    .join('\r\n');
}

/** `value` is the token `lower` alone, in any case, with optional whitespace around it */
function isOnly(value: string, lower: string): boolean {
  let a = 0;
  let z = value.length;
  while (a < z && (value.charCodeAt(a) === 32 || value.charCodeAt(a) === 9)) a++;
  while (z > a && (value.charCodeAt(z - 1) === 32 || value.charCodeAt(z - 1) === 9)) z--;
  if (z - a !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    const c = value.charCodeAt(a + i);
    const e = lower.charCodeAt(i);
    // the character itself, or the upper-case form of a letter
    if (c !== e && !(e >= 97 && e <= 122 && c === e - 32)) return false;
  }
  return true;
}

/** True for paths with "." or ".." segments (also percent-encoded), which must not reach an upstream un-normalised. */
export function hasDotSegment(path: string): boolean {
  // '%2' finds %2e and %2E alike (the digit has no case)
  if (path.indexOf('/.') < 0 && path.indexOf('%2') < 0) return false;
  const decoded = path.replace(/%2e/gi, '.');
  for (const seg of decoded.split('/')) if (seg === '.' || seg === '..') return true;
  return false;
}

export interface HandlerState extends ExchangeHost {
  runtime: Runtime;
  readonly tls: boolean;
  draining: boolean;
  inFlight: number;
  started(): void;
  /** a request answered before it became an Exchange (bad framing, no route… route null; a disabled route…): metrics */
  rejected(code: ErrorCode, route: RouteRuntime | null): void;
  onInternalError(err: Error): void;
}

/**
 * `tls` overrides state.tls for a listener of its own (the node:http2 one: h2c is cleartext beside an HTTPS uWS);
 * `certificates`: the listener's responses carry a verified client certificate (`clientCert`, the node adapter)
 * whose header lines go upstream. Both are fixed per handler, so the uWS handler never looks.
 */
export function createHandler(state: HandlerState, workerIndex: number, tls: boolean = state.tls, certificates = false): (res: HttpResponse, req: HttpRequest) => void {
  const idPrefix = randomBytes(4).toString('hex') + workerIndex.toString(36) + '-';
  const ids = new RequestIds(idPrefix);
  const proto = tls ? 'https' : 'http';

  /**
   * Answers a request that never became an Exchange, and gives it to the log phase: the route's log hooks when one
   * was matched, else the global access log with route "-" (plan.unrouted). The log context is built only when a
   * hook will read it, and before the answer (a closing answer may free the socket and its address).
   */
  function reject(res: HttpResponse, code: ErrorCode, requestId: string, detail: string, close: boolean, extra: string[] | null = null, route: RouteRuntime | null = null): void {
    const status = ERRORS[code].status;
    state.counters.add(7 /* GATEWAY_ERRORS */);
    state.counters.status(status);
    state.rejected(code, route);
    const log = route === null ? state.runtime.unroutedLog : route.log;
    const refusal = log === null ? null : refusalOf(res, code, status, requestId, route);
    writeProblem(res, code, requestId, detail, extra, close || state.closing);
    if (refusal !== null) for (let i = 0; i < log!.length; i++) log![i].log!(refusal);
  }

  function refusalOf(res: HttpResponse, code: ErrorCode, status: number, requestId: string, route: RouteRuntime | null): Refusal {
    const s = scan;
    const rt = state.runtime;
    const peer = peerAddress(res);
    const clientIp = s.xff !== null && rt.trusted.size > 0 && rt.trusted.has(peer) ? firstUntrusted(s.xff, peer, rt) : peer;
    const facts = { requestId, method: clip(s.method), path: clip(s.path), query: clip(s.query), hostHeader: clip(s.host), clientIp, routeName: route === null ? NO_ROUTE : route.plan.name };
    return new Refusal(facts, code, status, s.startedAt, s.headerNames.slice(0, s.headerCount), s.headerValues.slice(0, s.headerCount));
  }

  // A bug must cost one request, not the process: uWS aborts when a handler throws before responding.
  return function guarded(res: HttpResponse, req: HttpRequest): void {
    try {
      handle(res, req);
    } catch (err) {
      state.onInternalError(err as Error);
      if (!(res as { ngResponded?: boolean }).ngResponded) {
        try {
          writeProblem(res, 'NG_ERR_GATEWAY_INTERNAL', ids.next(), undefined, null, true);
        } catch {
          /* the response was already under way */
        }
      }
    }
  };

  function handle(res: HttpResponse, req: HttpRequest): void {
    // observability: the one timestamp every request takes (latency histograms); ~100 ns, see docs/observability.md
    const t0 = performance.now();
    const rt = state.runtime;
    const plan = rt.plan;
    const method = req.getCaseSensitiveMethod();
    const path = req.getUrl();
    const query = req.getQuery() ?? ''; // undefined when the target has no '?'
    const s = scan;
    s.reset(plan.proxy.requestIdHeader);
    req.forEach(visitHeader);
    s.method = method;
    s.path = path;
    s.query = query;
    s.startedAt = t0;
    state.counters.add(0 /* REQUESTS */);

    const requestId = s.requestId !== null && REQUEST_ID.test(s.requestId) ? s.requestId : ids.next();
    const limits = plan.limits;

    // --- framing and size checks, in the order a client can fix them
    if (path.length + (query.length > 0 ? query.length + 1 : 0) > limits.maxUrlLength) {
      return reject(res, 'NG_ERR_REQUEST_URL_TOO_LONG', requestId, `the request target is longer than ${limits.maxUrlLength} bytes`, false);
    }
    if (s.bytes > limits.maxHeaderBytes || s.headerCount > limits.maxHeaderCount) {
      return reject(res, 'NG_ERR_REQUEST_HEADERS_TOO_LARGE', requestId, `the header section exceeds ${limits.maxHeaderBytes} bytes or ${limits.maxHeaderCount} fields`, true);
    }
    if (s.hostCount !== 1) {
      return reject(res, 'NG_ERR_REQUEST_BAD_HEADER', requestId, s.hostCount === 0 ? 'the Host header is missing' : 'more than one Host header', true);
    }
    if (s.clConflict) {
      return reject(res, 'NG_ERR_REQUEST_BAD_FRAMING', requestId, 'invalid or conflicting Content-Length headers', true);
    }
    let bodyKind = BODY_NONE;
    if (s.te !== null) {
      if (s.clCount > 0) return reject(res, 'NG_ERR_REQUEST_BAD_FRAMING', requestId, 'both Content-Length and Transfer-Encoding', true);
      if (s.te.trim().toLowerCase() !== 'chunked') {
        return reject(res, 'NG_ERR_REQUEST_TRANSFER_CODING', requestId, `unsupported Transfer-Encoding "${s.te}"`, true);
      }
      bodyKind = BODY_CHUNKED;
    } else if (s.contentLength > 0) bodyKind = BODY_LENGTH;
    if (hasDotSegment(path)) {
      return reject(res, 'NG_ERR_REQUEST_BAD_PATH', requestId, 'the path has "." or ".." segments', bodyKind !== BODY_NONE);
    }
    if (state.draining) {
      return reject(res, 'NG_ERR_GATEWAY_DRAINING', requestId, 'this gateway is shutting down; retry', true);
    }

    // --- routing
    let host = '';
    if (rt.hostRouting) {
      host = s.host.toLowerCase();
      const colon = host.lastIndexOf(':');
      if (colon > 0 && host.indexOf(']') < colon) host = host.slice(0, colon);
    }
    const route = rt.match(host, path, s);
    if (route === null) {
      const allow = rt.allowedMethods();
      if (allow) return reject(res, 'NG_ERR_ROUTE_METHOD_NOT_ALLOWED', requestId, `${method} is not allowed here`, bodyKind !== BODY_NONE, ['allow', allow]);
      return reject(res, 'NG_ERR_ROUTE_NOT_FOUND', requestId, `no route for ${method} ${path}`, bodyKind !== BODY_NONE);
    }
    // Admin switch (POST /routes/:name/disable): a plain read of the plan's shared flag region (a relaxed read: the
    // switch shows a few µs after it is set, at the cost of a load where Atomics.load is a runtime call).
    if (rt.flags[route.flagCell] !== 0) {
      return reject(res, 'NG_ERR_ROUTE_DISABLED', requestId, `route "${route.plan.name}" is disabled`, bodyKind !== BODY_NONE, null, route);
    }
    if (bodyKind === BODY_LENGTH && s.contentLength > route.plan.maxBodyBytes) {
      return reject(res, 'NG_ERR_REQUEST_BODY_TOO_LARGE', requestId, `the body exceeds ${route.plan.maxBodyBytes} bytes`, true, null, route);
    }

    // --- the upstream request head
    const target = upstreamPath(route, path);
    const clientIp = peerAddress(res);
    const trusted = rt.trusted.size > 0 && rt.trusted.has(clientIp);
    const hostMode = route.plan.hostHeader;
    const line = method + ' ' + target + (query.length > 0 ? '?' + query : '') + ' HTTP/1.1\r\n';
    // hostHeader: upstream is filled in per node when the balancer has picked one
    const hostLine = hostMode === 'upstream' ? null : 'host: ' + (hostMode === 'preserve' ? s.host : hostMode) + '\r\n';
    let head = s.connection === null ? s.forward : dropConnectionTokens(s.forward, s.connection);
    head += forwarded.of(trusted && s.xff !== null ? s.xff + ', ' + clientIp : clientIp, trusted && s.xfp !== null ? s.xfp : proto, trusted && s.xfh !== null ? s.xfh : s.host);
    if (trusted && s.claims !== null) head += s.claims;
    if (certificates) {
      const cert = (res as unknown as { clientCert: { headers: readonly string[] } | null }).clientCert;
      if (cert !== null) for (let i = 0; i < cert.headers.length; i += 2) head += cert.headers[i] + ': ' + cert.headers[i + 1] + '\r\n';
    }
    head += viaAndId.of(s.via !== null ? s.via + ', ' + rt.viaValue : rt.viaValue, plan.proxy.requestIdHeader, '') + requestId;
    if (bodyKind === BODY_LENGTH) head += '\r\ncontent-length: ' + s.contentLength + '\r\n\r\n';
    else if (bodyKind === BODY_CHUNKED) head += '\r\ntransfer-encoding: chunked\r\n\r\n';
    else if (s.contentLength === 0 && method !== 'GET' && method !== 'HEAD') head += '\r\ncontent-length: 0\r\n\r\n';
    else head += '\r\n\r\n';
    let facts: RequestFacts | null = null;
    let timing = NO_TIMING;
    if (route.needsFacts) {
      s.takeHeaders();
      facts = {
        method,
        path,
        query,
        hostHeader: s.host,
        clientIp: trusted && s.xff !== null ? firstUntrusted(s.xff, clientIp, rt) : clientIp,
        headerNames: s.headerNames,
        headerValues: s.headerValues,
      };
      if (route.timed) {
        const now = performance.now();
        const hookNames = route.timedHooks;
        // hooks: fresh zero marks (a plain double array: cheaper to make than a Float64Array)
        timing = { start: t0, routed: now, upstreamStart: 0, connected: 0, upstreamHeaders: 0, end: 0, hooks: hookNames === null ? null : route.newHookMarks!(), hookNames };
      }
    }
    const ex = new Exchange(res, state, route, requestId, line, hostLine, head, method, bodyKind, facts, timing, s.contentLength);
    ex.startedAt = t0;
    if (s.teTrailers) ex.acceptsTrailers = true;
    if (route.aggregate !== null) ex.params = matchParams(route, path);
    // the mirror's match reads the headers now, while they are at hand; the copy is offered at the first dispatch
    if (route.mirror !== null) ex.mirror = route.mirror.admit(s);
    res.onAborted(ex.onAborted);
    if (bodyKind !== BODY_NONE) res.onData((chunk, isLast) => ex.onClientData(chunk, isLast));
    state.started();
    if (route.hasRequestPhases) ex.runPipeline();
    else ex.start();
  }
}

/** Longest request text copied into the log line of a refusal: a 414 must not write its whole target to the log. */
const REFUSAL_TEXT_MAX = 1024;
function clip(v: string): string {
  return v.length <= REFUSAL_TEXT_MAX ? v : v.slice(0, REFUSAL_TEXT_MAX) + '[…]';
}

/** The client behind trusted proxies: the right-most X-Forwarded-For hop that is not itself a trusted proxy. */
export function firstUntrusted(xff: string, peer: string, rt: Runtime): string {
  const hops = xff.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i].trim();
    if (!rt.trusted.has(hop)) return hop;
  }
  return hops[0]?.trim() || peer;
}

/** The decoded values of the match's params (an aggregate route's templates use them; the scratch dies with the handler). */
function matchParams(route: RouteRuntime, path: string): string[] {
  const scratch = route.scratch;
  const out: string[] = [];
  for (let i = 0; i < route.plan.paramNames.length; i++) {
    const raw = path.slice(scratch.paramStart[i], scratch.paramEnd[i]);
    let v = raw;
    try {
      v = decodeURIComponent(raw);
    } catch {
      // a malformed escape stays as sent; it is encoded again when the call's path is built
    }
    out.push(v);
  }
  return out;
}

/** The path sent upstream: rewritten, stripped, or as received (percent-encoding untouched). */
export function upstreamPath(route: RouteRuntime, path: string): string {
  const p = route.plan;
  if (p.rewrite !== null) {
    const scratch = route.scratch;
    let out = '';
    for (const part of p.rewrite) {
      if (typeof part === 'string') out += part;
      else if ('param' in part) out += path.slice(scratch.paramStart[part.param], scratch.paramEnd[part.param]);
      else out += scratch.wildStart >= 0 ? path.slice(scratch.wildStart) : '';
    }
    return out;
  }
  if (p.stripLength >= 0) {
    const rest = path.slice(p.stripLength);
    return rest.length === 0 ? '/' : rest.charCodeAt(0) === 47 ? rest : '/' + rest;
  }
  return path;
}
