// The part of autocannon 9's API the bench uses (the package ships no types).
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';
  export interface AutocannonRequest {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: Buffer | string;
  }
  export interface AutocannonOptions {
    url: string;
    connections?: number;
    duration?: number;
    pipelining?: number;
    timeout?: number;
    method?: string;
    headers?: Record<string, string>;
    body?: Buffer | string;
    requests?: AutocannonRequest[];
    /** called with each client (an EventEmitter emitting 'request' and 'response') before it connects */
    setupClient?: (client: any) => void;
    sampleInt?: number;
    excludeErrorStats?: boolean;
    skipAggregateResult?: boolean;
  }
  export interface AutocannonResult {
    errors: number;
    timeouts: number;
    mismatches: number;
    non2xx: number;
    resets: number;
    totalCompletedRequests: number;
    totalRequests: number;
    totalBytes: number;
    statusCodeStats: Record<string, { count: number }>;
    duration: number;
  }
  export interface Instance extends EventEmitter {
    stop(): void;
  }
  function autocannon(opts: AutocannonOptions, cb: (err: Error | null, result: AutocannonResult) => void): Instance;
  export default autocannon;
}
