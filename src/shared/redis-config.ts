import { Type, type Static } from '@sinclair/typebox';

/**
 * The top-level `redis:` section: how a node reaches the Redis shared by a cluster of gateway nodes (cluster-wide
 * rate limits and quotas today). One of three deployments:
 *   standalone  url: redis://[user:pass@]host:port/db   (or nodes: [{ host, port }])
 *   sentinel    nodes: the sentinels; sentinelName: the monitored master's name
 *   cluster     nodes: some of the cluster's nodes (the rest are discovered)
 */
const RedisNode = Type.Object(
  {
    host: Type.String({ minLength: 1, description: 'host name or address of the Redis server, sentinel or cluster node' }),
    port: Type.Integer({ minimum: 1, maximum: 65535, default: 6379, description: 'its port (sentinels usually listen on 26379)' }),
  },
  { additionalProperties: false },
);

export const RedisSchema = Type.Object(
  {
    mode: Type.Union([Type.Literal('standalone'), Type.Literal('sentinel'), Type.Literal('cluster')], {
      default: 'standalone',
      description: 'standalone: one server (url or nodes); sentinel: the master that the sentinels in nodes name; cluster: a Redis Cluster reached through nodes',
    }),
    url: Type.Optional(Type.String({ pattern: '^rediss?://', secret: 'url', description: 'standalone only: redis://[user:pass@]host:port[/db]' })),
    nodes: Type.Optional(Type.Array(RedisNode, { minItems: 1, description: 'standalone: the server; sentinel: the sentinels; cluster: seed nodes' })),
    sentinelName: Type.Optional(Type.String({ minLength: 1, description: 'sentinel mode: name of the monitored master' })),
    username: Type.Optional(Type.String({ description: 'ACL user name (Redis 6 and later); omitted: the default user' })),
    password: Type.Optional(Type.String({ secret: true, description: 'password of that user (or of requirepass); use ${ENV} interpolation' })),
    db: Type.Integer({ minimum: 0, maximum: 255, default: 0, description: 'database number (standalone and sentinel; a cluster has only 0)' }),
    tls: Type.Boolean({ default: false, description: 'connect with TLS' }),
    keyPrefix: Type.String({ secret: false, default: 'nanogate:', maxLength: 128, description: 'prefix of every key nanogate writes' }),
    connectTimeoutMs: Type.Integer({ minimum: 50, maximum: 60000, default: 1000, description: 'ms allowed for connecting to Redis' }),
    commandTimeoutMs: Type.Integer({
      minimum: 10,
      maximum: 60000,
      default: 250,
      description: 'a command slower than this counts as a failure (Redis is then treated as down until it answers again)',
    }),
  },
  { additionalProperties: false, description: 'the Redis shared by the nodes of a cluster (scope: cluster rate limits and quotas)' },
);

export type RedisConfig = Static<typeof RedisSchema>;
