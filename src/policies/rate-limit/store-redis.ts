import { Redis, Cluster } from 'ioredis';
import type { RedisConfig } from '../../shared/redis-config.js';

/**
 * The Redis side of cluster-scope limits: one atomic Lua script per algorithm, each taking up to `want` tokens
 * for one key and answering { granted, remaining, retryMs }. Redis keeps the authoritative count; nodes hold what it
 * granted as local leases. Scripts run with EVALSHA, falling back to EVAL when the server does not know the script
 * yet (ioredis defineCommand), and touch one key each, so they work on Redis Cluster too.
 */

/** Token bucket as GCRA (as in store-shared.ts): the key holds the theoretical arrival time in µs of Redis time. */
const TOKEN_BUCKET = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local limitTat = now + burst * interval
local n = math.floor((limitTat - tat) / interval)
if n > want then n = want end
if n < 0 then n = 0 end
local nextTat = tat + n * interval
if n > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', nextTat), 'PX', math.ceil((nextTat - now) / 1000) + 1000)
end
local retry = 0
if n == 0 then retry = math.ceil((tat + interval - limitTat) / 1000) end
return { n, math.floor((limitTat - nextTat) / interval), retry }
`;

/**
 * Sliding window of 10 sub-windows plus the current one (as in store-shared.ts), in a hash: field = ring slot,
 * value = subIndex * 2^21 + count, and field t<slot> = when that sub-window last granted (µs of Redis time). A
 * sub-window counts until the window has passed since its last grant, so the retry time never exceeds the window.
 */
const SLIDING_WINDOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local sub = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local window = sub * 10
local cur = math.floor(now / sub)
local unit = 2097152
local vals = redis.call('HMGET', KEYS[1], '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10',
  't0', 't1', 't2', 't3', 't4', 't5', 't6', 't7', 't8', 't9', 't10')
local count = 0
local own = 0
local first = nil
for i = 1, 11 do
  local v = tonumber(vals[i] or '0')
  local s = math.floor(v / unit)
  local c = v - s * unit
  if s == cur then own = c end
  if c > 0 and s >= cur - 10 and s <= cur then
    local last = tonumber(vals[11 + i] or '0')
    if math.floor(last / sub) ~= s then last = math.min(now, (s + 1) * sub) end
    local leaves = last + window
    if leaves > now then
      count = count + c
      if first == nil or leaves < first then first = leaves end
    end
  end
end
local n = limit - count
if n > want then n = want end
if n < 0 then n = 0 end
if n > 0 then
  local slot = tostring(cur % 11)
  redis.call('HSET', KEYS[1], slot, string.format('%.0f', cur * unit + own + n), 't' .. slot, string.format('%.0f', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
end
local retry = 0
if n == 0 then retry = math.min(math.ceil(window / 1000), math.ceil((first - now) / 1000)) end
return { n, limit - count - n, retry }
`;

/** Quota: a counter per period (the period is part of the key); it expires some time after the period ends. */
const QUOTA = `
local limit = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = limit - used
if n > want then n = want end
if n < 0 then n = 0 end
if n > 0 then
  redis.call('INCRBY', KEYS[1], n)
  redis.call('PEXPIRE', KEYS[1], ttl)
end
local retry = 0
if n == 0 then retry = ttl end
return { n, limit - used - n, retry }
`;

export type Grant = [granted: number, remaining: number, retryMs: number];

interface Scripts {
  ngTokenBucket(key: string, intervalUs: number, burst: number, want: number): Promise<Grant>;
  ngSlidingWindow(key: string, subUs: number, limit: number, want: number): Promise<Grant>;
  ngQuota(key: string, limit: number, want: number, ttlMs: number): Promise<Grant>;
}

export type ScriptedRedis = (Redis | Cluster) & Scripts;

/**
 * A client for the `redis:` section. Commands fail at once while disconnected (no offline queue: a caller must
 * decide rather than wait), time out after commandTimeoutMs, and the client reconnects by itself forever.
 */
export function createRedisClient(cfg: RedisConfig, notPipelined: readonly string[] = []): ScriptedRedis {
  // commands sent at once rather than gathered into the next auto-pipeline (a setImmediate later, and a Pipeline
  // object each): for a lone lookup on the request path (the cache's L2 GET)
  const autoPipeliningIgnoredCommands = [...notPipelined];
  const common = {
    username: cfg.username,
    password: cfg.password,
    db: cfg.db,
    connectTimeout: cfg.connectTimeoutMs,
    commandTimeout: cfg.commandTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    enableAutoPipelining: true,
    autoPipeliningIgnoredCommands,
    lazyConnect: false,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    ...(cfg.tls ? { tls: {} } : {}),
  };
  let client: Redis | Cluster;
  if (cfg.mode === 'cluster') {
    client = new Cluster(cfg.nodes ?? [{ host: '127.0.0.1', port: 6379 }], {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      autoPipeliningIgnoredCommands,
      clusterRetryStrategy: common.retryStrategy,
      redisOptions: { ...common },
    });
  } else if (cfg.mode === 'sentinel') {
    client = new Redis({ ...common, sentinels: cfg.nodes, name: cfg.sentinelName ?? 'mymaster' });
  } else if (cfg.url) {
    client = new Redis(cfg.url, common);
  } else {
    const node = cfg.nodes?.[0] ?? { host: '127.0.0.1', port: 6379 };
    client = new Redis({ ...common, host: node.host, port: node.port });
  }
  client.defineCommand('ngTokenBucket', { numberOfKeys: 1, lua: TOKEN_BUCKET });
  client.defineCommand('ngSlidingWindow', { numberOfKeys: 1, lua: SLIDING_WINDOW });
  client.defineCommand('ngQuota', { numberOfKeys: 1, lua: QUOTA });
  return client as ScriptedRedis;
}
