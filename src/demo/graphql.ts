import type { ServerResponse } from 'node:http';
import { buildSchema, graphql, type GraphQLSchema } from 'graphql';

/**
 * The demo upstream's GraphQL endpoint (any path ending in /graphql): graphql-js over the schema of
 * config/examples/graphql/schema.graphql (inlined here so the demo needs no file), GET and POST, for trying the
 * graphql policy by hand. It knows nothing of persisted queries: the gateway answers those.
 */
const SDL = `
type Query { products(first: Int): [Product!]!, product(id: ID!): Product, customer(id: ID!): Customer }
type Mutation { rename(id: ID!, name: String!): Product }
type Product { id: ID!, name: String!, price: Float!, related(first: Int): [Product!]! }
type Customer { id: ID!, name: String!, email: String, orders(first: Int): [Product!]! }
`;

let schema: GraphQLSchema | null = null;
const catalog = Array.from({ length: 30 }, (_, i) => ({ id: String(i + 1), name: `product ${i + 1}`, price: 5 + i }));
type Item = (typeof catalog)[number];
const product = (p: Item): unknown => ({ ...p, related: ({ first = 3 }: { first?: number }) => catalog.slice(0, first).map(product) });
const root = {
  products: ({ first = 10 }: { first?: number }) => catalog.slice(0, first).map(product),
  product: ({ id }: { id: string }) => {
    const p = catalog.find((x) => x.id === id);
    return p === undefined ? null : product(p);
  },
  customer: ({ id }: { id: string }) => ({ id, name: `customer ${id}`, email: `c${id}@example.com`, orders: ({ first = 3 }: { first?: number }) => catalog.slice(0, first).map(product) }),
  rename: ({ id, name }: { id: string; name: string }) => ({ ...product(catalog[0]) as object, id, name }),
};

export function answerGraphql(method: string, url: URL, contentType: string, body: Buffer, res: ServerResponse): void {
  schema ??= buildSchema(SDL);
  const send = (status: number, out: unknown) => {
    const text = JSON.stringify(out);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  let source: string | null;
  let variables: Record<string, unknown> | undefined;
  let operationName: string | undefined;
  try {
    if (method === 'GET') {
      source = url.searchParams.get('query');
      const v = url.searchParams.get('variables');
      variables = v ? JSON.parse(v) : undefined;
      operationName = url.searchParams.get('operationName') ?? undefined;
    } else if (contentType.startsWith('application/graphql')) {
      source = body.toString('utf8');
    } else {
      const o = JSON.parse(body.toString('utf8')) as { query?: string; variables?: Record<string, unknown>; operationName?: string };
      source = o.query ?? null;
      variables = o.variables;
      operationName = o.operationName;
    }
  } catch {
    return send(400, { errors: [{ message: 'the request is not valid JSON' }] });
  }
  if (source === null) return send(400, { errors: [{ message: 'no query' }] });
  graphql({ schema, source, rootValue: root, variableValues: variables, operationName }).then(
    (r) => send(200, r),
    () => send(500, { errors: [{ message: 'the demo failed' }] }),
  );
}
