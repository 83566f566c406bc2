import { performance } from 'node:perf_hooks';
import type { TSchema } from '@sinclair/typebox';
import type { ProblemMembers } from '../errors/problem.js';
import type { ErrorCode } from '../errors/codes.js';
import type { BackgroundSink } from '../upstream/background.js';

/**
 * The shape every policy module has (src/policies/<name>/index.ts):
 *
 *   { name, priority, schema, compile?(config, cc) -> data, create(data, env) -> hooks }
 *
 * - `schema` (TypeBox) is merged into the config schema under `policies.<name>` (route level and global level), so
 *   defaults, unknown-key refusal and config/schema.json come for free.
 * - `compile` runs on the control plane when a config loads: semantic checks (throw PolicyConfigError) and anything
 *   that can be precomputed. Its result must be structured-clone safe; a SharedArrayBuffer in it is shared with every
 *   worker, not copied (take it from cc.shared() so that it survives reloads).
 * - `create` runs in each worker once per plan and route, and returns the phase hooks. It reads no global state.
 *
 * Phases run in a fixed order: access (by priority, high first) -> rewrite -> proxy -> response -> log.
 * The response phase has two parts: response hooks (headers), then response body filters (PolicyHooks.responseBody,
 * a chain per response, null when the route has none).
 * A hook returns a status instead of throwing (untrusted traffic never throws through the pipeline):
 *   CONTINUE  go on with the next hook
 *   RESPOND   the hook prepared a response (ctx.respondProblem / ctx.respond); skip the remaining request phases
 *   PENDING   the hook went asynchronous; it calls ctx.resume(CONTINUE | RESPOND) exactly once later
 * Response and log hooks always run for a request that reached them.
 */
export type { BackgroundSink };
export const CONTINUE = 0;
export const RESPOND = 1;
export const PENDING = 2;
export type HookResult = typeof CONTINUE | typeof RESPOND | typeof PENDING;

/** Conventional priorities (higher runs first within the access phase), as in Kong/APISIX. */
export const PRIORITY = {
  ipRestriction: 3000,
  cors: 2900,
  authentication: 2500,
  authorization: 2400,
  /** after authentication (scopes, plan), before the rate limit (which may count the operation's cost) */
  graphql: 1100,
  rateLimit: 1000,
  /**
   * after the rate limit (a hit is still authenticated and counted), before transform: its store filter sits nearer
   * the upstream than every body-changing filter, so the stored body is the upstream's representation, and the
   * per-consumer filters (transform's scope filtering, renames, compression) run once on every answer, hit or miss,
   * as Kong's proxy-cache and APISIX's proxy-cache sit below their response transforms
   */
  cache: 600,
  transform: 500,
  /** after every other response body filter (a transform, a cache store see the identity body): nearest the client */
  compression: 100,
  observe: 0,
} as const;

/** What a policy hook may read and change of one request. Implemented by the worker's Exchange. */
export interface PolicyContext {
  readonly requestId: string;
  readonly method: string;
  /** the path as received (percent-encoding untouched) */
  readonly path: string;
  /** the raw query string without "?" ('' when none) */
  readonly query: string;
  /** Host header as received */
  readonly hostHeader: string;
  /** the client address (the peer, or the first untrusted hop of X-Forwarded-For behind trusted proxies) */
  readonly clientIp: string;
  readonly routeName: string;
  /**
   * the client certificate verified at the TLS handshake (mTLS on the node:http2 listener, docs/mtls.md); null
   * without one, and always on the uWS listener, which cannot read it; optional for contexts that have no listener
   */
  readonly clientCert?: import('../node-listener/client-cert.js').ClientCertificate | null;
  /** the first value of a request header (lower-case name), or undefined */
  header(name: string): string | undefined;
  /** every value of a request header (lower-case name), one per field line, in order; [] when absent */
  headerValues(name: string): string[];
  /** the value of a query parameter (decoded), or null */
  queryParam(name: string): string | null;

  /** identity, set by authentication policies and read by later ones (authorization, rate limits, logs) */
  consumerId: string | null;
  consumerIndex: number;
  consumerPlan: string | null;
  scopes: readonly string[] | null;
  roles: readonly string[] | null;
  /**
   * what this request costs the rate limits that count by cost (rateLimit `cost: graphql`); -1 until a policy that
   * prices requests (graphql) has set it. Such a policy runs before the rate limit (higher priority).
   */
  requestCost: number;
  /**
   * the body is held whole for the route's request-body transforms (PolicyHooks.requestBody): their transform()
   * runs after the rewrite phase, with the whole body; decided from the head before the access phase
   */
  readonly bodyTransform: boolean;
  /** free per-policy storage, indexed by the policy's slot (see PolicyEnv.slot); never add other properties */
  readonly slots: unknown[];

  /** add a header line to the upstream request */
  setUpstreamHeader(name: string, value: string): void;
  /** remove a client-sent header (lower-case) from the upstream request */
  removeUpstreamHeader(name: string): void;
  /** remove a query parameter (every occurrence, compared decoded) from the upstream request target */
  removeUpstreamQueryParam(name: string): void;
  /** append a query parameter to the upstream request target (name and value are percent-encoded here) */
  addUpstreamQueryParam(name: string, value: string): void;
  /** add a header to the response sent to the client (appended after the upstream's) */
  addResponseHeader(name: string, value: string): void;
  /**
   * add several headers at once, as field lines ("name: value", joined by CRLF, none at the end; lower-case names,
   * no CR or LF in a value, ASCII only: the text is copied into the head one byte per character): for a hook that
   * renders the same fields on every response (the rate-limit state), one call and one copy into the head instead
   * of one per field
   */
  addResponseFields(lines: string): void;
  /** drop a header of the upstream response (lower-case name) */
  removeResponseHeader(name: string): void;

  /**
   * prepares an error response (problem+json); return RESPOND after calling it. `members` are extension members of
   * the body (RFC 9457 section 3.2), e.g. { limit: "quota" }; they never replace the standard ones.
   */
  respondProblem(code: ErrorCode, detail?: string, headers?: readonly string[], members?: ProblemMembers): void;
  /**
   * prepares any response (a CORS preflight, a stored response of a cache…); return RESPOND after calling it.
   * `headers` is flat (name, value, name, value…); `body` is text (sent as UTF-8) or bytes (sent as they are, not
   * copied: do not change them afterwards). The gateway writes the framing (Content-Length) itself: leave
   * Content-Length and Transfer-Encoding out. A prepared response passes the response phase like an upstream one:
   * response hooks (headers, CORS) and response body filters (compression) see it through the same calls.
   */
  respond(status: number, headers: readonly string[], body?: string | Uint8Array): void;
  /**
   * Sends this request (as a GET, with the rewrite phase's changes and the upstream headers set so far) to the
   * route's upstream in the background, for a request about to be answered otherwise (a cache's
   * stale-while-revalidate refresh): one attempt through the cluster, never retried, never queued; the answer goes to
   * `sink`. Call it before preparing the response. False when it could not be sent (a rewrite hook answered).
   */
  refresh(sink: BackgroundSink): boolean;
  /** continues the pipeline after a hook returned PENDING */
  resume(result: typeof CONTINUE | typeof RESPOND): void;
  /** true once the client went away: an asynchronous hook should stop and not resume */
  readonly aborted: boolean;

  // --- facts for the response and log phases
  /** final status sent to the client (0 until known) */
  readonly status: number;
  readonly errorCode: ErrorCode | null;
  /**
   * high-resolution timestamps in ms (performance.now()); 0 when not reached, and all 0 on a route where no hook
   * says readsTiming or timesHooks (unless a hook called startTiming)
   */
  readonly timing: RequestTiming;
  /**
   * Takes this request's timestamps from here on, on a route where no hook asked for them when it was compiled: for
   * a hook that needs them for some requests only (tracing, for a sampled request). `start` is the arrival and
   * `routed` is now; the phases after this call are timed. Does nothing where the timestamps are taken anyway.
   */
  startTiming(): void;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly upstreamNode: string | null;
  /** the traffic-split version the request went to (route `traffic`), or null */
  readonly trafficVersion: string | null;
  /** node and cause of the last failed upstream attempt ("connect to 10.0.0.5:8080 failed (ECONNREFUSED)"); never sent to the client */
  readonly upstreamError: string | null;

  // --- the response head, during the response phase only (response hooks, PolicyHooks.responseBody)
  // What is about to be written: the upstream's head, or the one a hook prepared with respond(). Values are as
  // received, before this route's changes (addResponseHeader / removeResponseHeader); framing fields (Content-Length,
  // Transfer-Encoding, Connection) are not among them: see responseLength. Outside the response phase, and for the
  // gateway's own error responses, there is no head: undefined, [] and -1. Nothing is computed for a request until
  // a hook calls one of these (the upstream head is decoded into strings on the first call).
  /** the first value of a response header (lower-case name), or undefined */
  responseHeader(name: string): string | undefined;
  /** every value of a response header (lower-case name), one per field line, in order; [] when absent */
  responseHeaderValues(name: string): string[];
  /** the whole head: name, value, name, value… (names as received); [] when there is none */
  responseHeaders(): readonly string[];
  /** the body's length from the head (the upstream's Content-Length, a prepared body's size); -1 when not known (chunked, until close) */
  readonly responseLength: number;
  /** the upstream's Date header (not among the fields above: the gateway writes its own Date); undefined when none */
  readonly responseDate: string | undefined;
}

export interface RequestTiming {
  /** the handler was entered */
  start: number;
  routed: number;
  upstreamStart: number;
  /** a connection took the request (after any pool queueing and the TCP connect) */
  connected: number;
  upstreamHeaders: number;
  end: number;
  /**
   * Per-hook timing, only on routes where a hook asked for it (PolicyHooks.timesHooks): hooks[i] is the time the
   * i-th access-then-rewrite hook of the route finished (for a PENDING hook: when it resumed), hookNames[i] its policy.
   */
  hooks: number[] | null;
  hookNames: readonly string[] | null;
}

export interface PolicyHooks {
  /** authentication, authorization, limits; may be asynchronous (PENDING) */
  access?(ctx: PolicyContext): HookResult;
  /** request transformations; synchronous */
  rewrite?(ctx: PolicyContext): HookResult;
  /** the upstream (or gateway) response head is about to be written; add headers with ctx.addResponseHeader */
  response?(ctx: PolicyContext): void;
  /** the whole request body, held before it goes upstream (see RequestBodyTransform); null on most routes */
  readonly requestBody?: RequestBodyTransform;
  /**
   * Opens a response body filter for one response (see ResponseBodyFilter): called after the response hooks, for
   * every response with a body (not HEAD, 204, 304, nor the gateway's own problem+json answers), the head still
   * unwritten. The hook reads the head (ctx.responseHeader, ctx.status, ctx.responseLength), may change it
   * (ctx.addResponseHeader / removeResponseHeader: Content-Encoding, Vary, ETag…), and returns this response's filter,
   * or null to stay out of this response (it then costs nothing more, and no object is made for it). Filters of a
   * route run in policy order (higher priority first, nearer the upstream); each one's output is the next one's
   * input, the last one's goes to the client. A route without such a hook has no chain (RouteRuntime.responseBody
   * is null) and pays one null check per body chunk.
   */
  responseBody?(ctx: PolicyContext): ResponseBodyFilter | null;
  /**
   * The upstream's final answer is known, before anything of it is written: its head (ctx.status, ctx.responseHeader),
   * or its failure (ctx.status 0 and ctx.errorCode: connect, reset, timeout, no node, circuit open…). The hook may
   * answer in its place: it prepares a response with ctx.respond and returns true; the upstream's response is then
   * read to its end and dropped, and the prepared one passes the response phase as usual. A cache answers a 304 to
   * its revalidation from the store this way, and serves a stale response in place of an error (stale-if-error).
   * Returns false to let the upstream's answer through. Runs before the route's fallback.
   */
  answer?(ctx: PolicyContext): boolean;
  /** after the response was sent; must not block (logs, metrics) */
  log?(ctx: PolicyContext): void;
  /** ask for per-hook timestamps on this route (ctx.timing.hooks): Server-Timing, phase logs; off costs nothing */
  readonly timesHooks?: boolean;
  /**
   * the hook reads ctx.timing (start, end, the phases): the route takes each request's timestamps, and only then
   * (they cost a clock read each, and routes without such a hook keep the zeros of an untimed request). A hook that
   * reads them for a few requests only leaves this off and calls ctx.startTiming() for those.
   */
  readonly readsTiming?: boolean;
}

/**
 * A transform of the whole request body (JSON operations, masking, gzip decoding). On a route with one, a request
 * whose head it wants is held whole (never streamed) up to `maxBytes` (beyond: 413 NG_ERR_TRANSFORM_BODY_TOO_LARGE,
 * nothing sent upstream), then transformed once it has all arrived, after the rewrite phase, and forwarded with a
 * Content-Length. Routes without one pay one null check per request.
 */
export interface RequestBodyTransform {
  readonly maxBytes: number;
  /** asked once per request with a body, from its head (Content-Type, Content-Encoding): hold this body for transform? */
  wants(ctx: PolicyContext): boolean;
  /**
   * The body to forward (it may be `body` itself), or null after ctx.respondProblem (a malformed body: the prepared
   * answer is sent, nothing goes upstream), or a promise of either (work done off the event loop). Never throws.
   */
  transform(ctx: PolicyContext, body: Buffer): Buffer | null | PromiseLike<Buffer | null>;
}

/**
 * One response's body filter, returned by PolicyHooks.responseBody. It gets the body as it arrives and passes its
 * output on through `sink`, now (inside the call) or later (from an asynchronous callback, e.g. a zlib stream's
 * 'data' event: the Exchange corks such a write itself). The sink is the same object in every call to one filter:
 * keep it for asynchronous output.
 *
 *   responseBody(ctx) {                              // a cache store: sees the body, changes nothing
 *     if (ctx.status !== 200) return null;
 *     const parts: Buffer[] = [];
 *     return {
 *       changesLength: false,                        // the upstream's framing (Content-Length) stays
 *       onChunk(chunk, sink) { parts.push(Buffer.from(chunk)); sink.push(chunk); return true; },
 *       onEnd(sink) { sink.end(); store(Buffer.concat(parts)); },
 *       onClose() { parts.length = 0; },
 *     };
 *   }
 *
 * Backpressure: the Exchange pauses the upstream while the client does not drain (the filter's output goes through
 * the same writes as an unfiltered body), so a filter need not watch push()'s result. A filter that cannot take more
 * input (its own buffer is full) returns false from onChunk and calls sink.resume() once it can: the upstream stays
 * paused until every filter that said false has resumed and the client has drained.
 *
 * Request bodies have no filter chain yet: it would sit in Exchange.onClientData, between the copy of the uWS chunk
 * and conn.writeBody, opened after the rewrite phase (a length-changing one forwards the body chunked).
 */
export interface ResponseBodyFilter {
  /**
   * The filter changes the bytes (compression, a transform): the response then goes out chunked, without
   * Content-Length. False for an observer (a cache store): the response keeps the upstream's framing, and its
   * output must be exactly its input.
   */
  readonly changesLength: boolean;
  /**
   * The filter reads the whole body before it writes anything, and may refuse it (a JSON transform): the head is
   * then written with the chain's first output, not before, so that sink.refuse() can still answer a problem+json
   * in its place; and when that output comes with its end (sink.last), the response gets a Content-Length for it.
   */
  readonly holdsHead?: boolean;
  /**
   * A piece of the body, valid only during the call (copy what must live longer). Returns true to take more now,
   * false to hold the upstream until sink.resume().
   */
  onChunk(chunk: Buffer, sink: BodySink): boolean;
  /**
   * The body is complete: pass on what is left, then call sink.end() (now or later). For a body framed by
   * Content-Length an observer may get onEnd once its last byte has gone to the client.
   */
  onEnd(sink: BodySink): void;
  /**
   * The response is over however it ended (sent, the client went away, the upstream reset, a filter failed): free
   * what the filter holds (a zlib stream). Called exactly once per opened filter; sink calls after it do nothing.
   */
  onClose(): void;
}

/** Where a ResponseBodyFilter sends its output: the next filter of the route, or the client. */
export interface BodySink {
  /**
   * Passes a chunk on. Its memory must stay unchanged until the filter's current call returns (for a push from an
   * asynchronous callback: until push returns); what has to wait for the client is copied. Returns false while the
   * client is not draining (advisory: the Exchange pauses the upstream itself).
   */
  push(chunk: Buffer): boolean;
  /** the filter's output is complete (after onEnd) */
  end(): void;
  /** push(chunk), then end(), in one: the whole output at once (a response with a held head keeps a Content-Length) */
  last(chunk: Buffer): void;
  /**
   * A holdsHead filter refuses the body (too large, not parseable): while the head is still held, the client gets
   * the problem+json of `code` instead of the upstream's response, and the upstream's connection is given up; once
   * the head went out, the response is cut as with fail().
   */
  refuse(code: ErrorCode, detail: string): void;
  /** the filter takes input again after onChunk returned false */
  resume(): void;
  /**
   * The filter cannot go on (a zlib error): the response is cut, as when an upstream resets mid-body (the client sees
   * an incomplete message). The access log gets NG_ERR_GATEWAY_BODY_FILTER; `reason` never reaches the client.
   */
  fail(reason: string): void;
}

/** What a worker gives a policy when it creates hooks. Extended by the modules that own the resources. */
export interface PolicyEnv {
  readonly workerIndex: number;
  /** this policy instance's index into ctx.slots */
  readonly slot: number;
  readonly routeName: string;
  /** shared regions handed over from the control plane by name (see CompileContext.shared) */
  readonly services: Record<string, unknown>;
}

/** What the control plane gives a policy's compile step. */
export interface CompileContext {
  readonly routeName: string | null;
  /** the route's `match.methods` as written (null or absent: the route serves every method) */
  readonly routeMethods?: readonly string[] | null;
  /** the route's `http.route` (path template, a prefix as `<prefix>/*`); null or absent without a route or a path */
  readonly routeTemplate?: string | null;
  /** dotted path of this policy's config in the file, for error messages */
  readonly where: string;
  /** a SharedArrayBuffer of `bytes`, the same one across reloads for the same key and size */
  shared(key: string, bytes: number): SharedArrayBuffer;
  /** the whole validated config (read only) */
  readonly config: unknown;
}

export class PolicyConfigError extends Error {
  readonly path: string;
  readonly hint?: string;
  /** `path` is relative to the policy's own config, e.g. "keys[0].alg" */
  constructor(path: string, message: string, hint?: string) {
    super(message);
    this.path = path;
    this.hint = hint;
  }
}

export interface PolicyModule<Config = any, Data = any> {
  readonly name: string;
  readonly priority: number;
  readonly schema: TSchema;
  /** one line for docs and `nanogate --help` */
  readonly description: string;
  /**
   * True when the policy, with this compiled config, answers CORS preflights itself: the route then also matches
   * OPTIONS requests with Origin and Access-Control-Request-Method whatever its `methods`, so that they reach the
   * access phase instead of a 405. Asked once per plan and route.
   */
  answersPreflight?(data: Data): boolean;
  compile?(config: Config, cc: CompileContext): Data;
  create(data: Data, env: PolicyEnv): PolicyHooks;
}
