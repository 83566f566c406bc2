/**
 * What the control plane's rate-limit service hands to workers in plan.services.rateLimit (structured-clone safe),
 * and the message a worker sends when a cluster lease runs low. Kept apart from the service itself so that workers
 * never load the Redis client.
 */
export const RATE_LIMIT_SERVICE = 'rateLimit';

export interface RateLimitServiceData {
  /** BroadcastChannel name for lease requests (unique per gateway instance) */
  readonly channel: string;
  /** status cells (layout.ts, S_*) */
  readonly status: SharedArrayBuffer;
}

/** "Fetch a lease for this key": region id, entry index, key, entry tag (0 for fixed keys), epoch (quota period). */
export interface LeaseRequest {
  readonly r: string;
  readonly e: number;
  readonly k: string;
  readonly t: number;
  readonly p: number;
}
