/**
 * Close codes a side may put in a close frame (RFC 6455 section 7.4): 1000-1003, 1007-1014 and 3000-4999. 1005 (no
 * code), 1006 (no close frame: the connection dropped) and 1015 (TLS failure) are only ever reported, never sent.
 */
export function sendable(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/** RFC 6455 section 5.5: a close frame's payload is at most 125 bytes, 2 of them the code. */
export function clipReason(reason: Buffer): Buffer {
  return reason.length <= 123 ? reason : reason.subarray(0, 123);
}

export const NORMAL = 1000;
export const GOING_AWAY = 1001;
export const NO_STATUS = 1005;
export const ABNORMAL = 1006;
export const POLICY_VIOLATION = 1008;
export const TOO_BIG = 1009;
export const INTERNAL_ERROR = 1011;
export const TRY_AGAIN_LATER = 1013;
/** the upstream went away without a close frame (IANA registry: "Bad Gateway") */
export const BAD_GATEWAY = 1014;
