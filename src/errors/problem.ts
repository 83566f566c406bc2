import { STATUS_CODES } from 'node:http';
import type { HttpResponse } from 'uWebSockets.js';
import { ERRORS, type ErrorCode } from './codes.js';

/**
 * The single writer of gateway-produced errors: RFC 9457 `application/problem+json` with a stable code and the
 * request id. It never includes stack traces or upstream internals; `detail` is written by gateway code only.
 */

/** Precomputed per code: the status line and the constant part of the body (no per-error string building). */
interface CompiledProblem {
  readonly statusLine: string;
  readonly bodyHead: string;
}

const COMPILED: Record<string, CompiledProblem> = Object.create(null);
for (const code of Object.keys(ERRORS) as ErrorCode[]) {
  const { status, title } = ERRORS[code];
  COMPILED[code] = {
    statusLine: `${status} ${STATUS_CODES[status] ?? ''}`,
    bodyHead: `{"type":"urn:nanogate:problem:${code}","title":${JSON.stringify(title)},"status":${status},"code":"${code}"`,
  };
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/**
 * What a client is told when an upstream attempt fails: one fixed sentence per code. The node's address and the
 * cause ("connect to 10.0.0.5:8080 failed (ECONNREFUSED)") would map the internal network for anyone who can make
 * a request fail; they go to the access log (`upstreamError`) and GET /upstreams (`lastError`) instead.
 */
const UPSTREAM_DETAIL: Partial<Record<ErrorCode, string>> = {
  NG_ERR_UPSTREAM_CONNECT: 'the upstream service could not be reached',
  NG_ERR_UPSTREAM_RESET: 'the upstream service closed the connection before it responded',
  NG_ERR_UPSTREAM_BAD_RESPONSE: 'the upstream service sent an invalid or incomplete response',
  NG_ERR_UPSTREAM_TIMEOUT: 'the upstream service did not respond in time',
};

export function upstreamDetail(code: ErrorCode): string | undefined {
  return UPSTREAM_DETAIL[code];
}

export function problemStatusLine(code: ErrorCode): string {
  return COMPILED[code].statusLine;
}

/** Extension members of a problem body (RFC 9457 section 3.2), written by gateway code only. */
export type ProblemMembers = Readonly<Record<string, string | number | readonly object[]>>;

/** The members every problem body has; an extension member of the same name is dropped, never written twice. */
const STANDARD_MEMBERS = new Set(['type', 'title', 'status', 'code', 'detail', 'requestId', 'instance']);

export function problemBody(code: ErrorCode, requestId: string, detail?: string, members?: ProblemMembers | null): string {
  let body = COMPILED[code].bodyHead;
  if (detail !== undefined) body += `,"detail":${JSON.stringify(detail)}`;
  if (members) for (const k in members) if (!STANDARD_MEMBERS.has(k)) body += `,${JSON.stringify(k)}:${JSON.stringify(members[k])}`;
  return body + `,"requestId":${JSON.stringify(requestId)}}`;
}

/**
 * Writes the whole error response. Call inside `res.cork` when not in the synchronous part of a uWS handler.
 * `extraHeaders` is a flat [name, value, name, value…] list (Allow, WWW-Authenticate, Retry-After…).
 */
export function writeProblem(
  res: HttpResponse,
  code: ErrorCode,
  requestId: string,
  detail?: string,
  extraHeaders?: readonly string[] | null,
  closeConnection = false,
  members?: ProblemMembers | null,
): void {
  res.writeStatus(COMPILED[code].statusLine);
  res.writeHeader('content-type', PROBLEM_CONTENT_TYPE);
  res.writeHeader('x-request-id', requestId);
  if (extraHeaders) for (let i = 0; i < extraHeaders.length; i += 2) res.writeHeader(extraHeaders[i], extraHeaders[i + 1]);
  res.end(problemBody(code, requestId, detail, members), closeConnection);
}
