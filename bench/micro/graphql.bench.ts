/**
 * The graphql policy per request (src/policies/graphql/): a 50-field query through the GET access hook with its
 * document cached (what a repeat query costs: read the query string, one cache lookup, the limit and scope checks),
 * the same query on a cache miss (parse + validate + analysis), its parts, and what a digest of the text would add
 * (why the cache is keyed by the text). The 5,000-token parse is the figure behind keeping parsing on the event loop
 * (docs/graphql.md).
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSchema, parse } from 'graphql';
import { defineSuite, consume, type MicroCase } from '../../src/bench/micro-api.js';
import { graphqlPolicy } from '../../src/policies/graphql/index.js';
import { DocumentCache } from '../../src/policies/graphql/documents.js';
import { analyzeOperation, pickOperation } from '../../src/policies/graphql/analyze.js';
import { sha256Hex } from '../../src/policies/graphql/persisted.js';
import type { GraphqlConfig } from '../../src/policies/graphql/schema.js';
import type { PolicyContext } from '../../src/pipeline/policy.js';

const SDL = `
type Query { me: User, users(first: Int): [User!]! }
type User { id: ID!, name: String!, email: String, age: Int, city: String, friends(first: Int): [User!]!, posts(first: Int): [Post!]! }
type Post { id: ID!, title: String!, body: String, likes: Int, author: User! }
`;

/** 50 fields: root, nested lists with first:, a fragment and an alias or two. */
export const QUERY_50 = `query Feed {
  me { id name email age city
    friends(first: 5) { id name email age city ...Card
      posts(first: 3) { id title body likes author { id name email age city } } }
    posts(first: 10) { id title body likes author { id name ...Card } } }
  other: users(first: 20) { id name email age city posts(first: 2) { id title likes } }
}
fragment Card on User { id name email age city }`;

function config(sdlPath: string): GraphqlConfig {
  return {
    maxTokens: 5000,
    maxBodyBytes: 1_048_576,
    limits: { depth: 10, aliases: 10, rootFields: 10, cost: 100_000 },
    cost: { object: 1, scalar: 0, fields: {}, listArguments: ['first', 'last', 'limit'], defaultListSize: 10 },
    introspection: { allowed: false, plans: [] },
    persisted: { mode: 'off', maxEntries: 1000, store: 'memory', ttlSeconds: 86400 },
    schema: sdlPath,
    fieldAuth: { rules: { 'User.email': 'users:email' }, mode: 'refuse' },
    cacheEntries: 1000,
    cacheBytes: 16_777_216,
    logFields: 16,
    operationMetrics: 0,
  };
}

function fakeContext(query: string): PolicyContext {
  const slots: unknown[] = [undefined];
  return {
    method: 'GET',
    queryParam: (name: string) => (name === 'query' ? query : null),
    scopes: ['users:email'],
    consumerPlan: null,
    requestCost: -1,
    bodyTransform: false,
    slots,
    respondProblem(code: string, detail: string) {
      throw new Error(`refused: ${code} ${detail}`);
    },
    addUpstreamQueryParam() {},
  } as unknown as PolicyContext;
}

export default defineSuite({
  name: 'graphql',
  description: 'the graphql policy per request: a 50-field query cached and uncached, and its parts',
  cases(): MicroCase[] {
    const dir = mkdtempSync(join(tmpdir(), 'nanogate-bench-graphql-'));
    const sdlPath = join(dir, 'schema.graphql');
    writeFileSync(sdlPath, SDL);
    const data = graphqlPolicy.compile!(config(sdlPath), { routeName: 'bench', where: 'routes[0].policies.graphql', shared: () => new SharedArrayBuffer(8), config: {} });
    const hooks = graphqlPolicy.create(data, { workerIndex: 0, slot: 0, routeName: 'bench', services: {} });
    const ctx = fakeContext(QUERY_50);
    if (hooks.access!(ctx) !== 0) throw new Error('graphql bench: the query was refused');
    const schema = buildSchema(SDL);
    const cold = new DocumentCache(10, 1 << 20, 5000, schema);
    const model = { object: 1, scalar: 0, fields: new Map<string, number>(), listArguments: new Set(['first']), defaultListSize: 10 };
    const doc = parse(QUERY_50, { noLocation: true });
    const op = pickOperation(doc, null)!;
    const big = `{ ${Array.from({ length: 1200 }, (_, i) => `f${i}: me { id }`).join(' ')} }`;
    return [
      { name: 'access hook, 50 fields, cached', fn: () => consume(hooks.access!(ctx)) },
      { name: 'parse + validate, 50 fields', fn: () => consume(cold.parse(QUERY_50)) },
      { name: 'parse only, 50 fields', fn: () => consume(parse(QUERY_50, { maxTokens: 5000, noLocation: true })) },
      { name: 'analysis, 50 fields', fn: () => consume(analyzeOperation(doc, op, model, schema)) },
      { name: 'sha256 of the 50-field text', fn: () => consume(sha256Hex(QUERY_50)) },
      { name: 'parse only, 5000 tokens', fn: () => consume(parse(big, { maxTokens: 10000, noLocation: true })) },
    ];
  },
});
