import { buildSchema, graphql } from 'graphql';
import { startUpstream, type TestUpstream } from './upstream.js';

/** The schema of the test upstream (also written to a file for the gateway's `schema:`). */
export const TEST_SDL = `
type Query {
  me: User
  user(id: ID!): User
  users(first: Int): [User!]!
  search(term: String!, limit: Int): [User!]!
}
type Mutation {
  rename(name: String!): User
}
type User {
  id: ID!
  name: String!
  email: String
  friends(first: Int): [User!]!
}
`;

const schema = buildSchema(TEST_SDL);
const people = Array.from({ length: 50 }, (_, i) => ({ id: String(i + 1), name: `user${i + 1}`, email: `user${i + 1}@example.test` }));
type Person = (typeof people)[number];
const withFriends = (p: Person) => ({ ...p, friends: ({ first = 3 }: { first?: number }) => people.slice(0, first).map(withFriends) });
const root = {
  me: () => withFriends(people[0]),
  user: ({ id }: { id: string }) => {
    const p = people.find((x) => x.id === id);
    return p ? withFriends(p) : null;
  },
  users: ({ first = 10 }: { first?: number }) => people.slice(0, first).map(withFriends),
  search: ({ term, limit = 10 }: { term: string; limit?: number }) => people.filter((p) => p.name.includes(term)).slice(0, limit).map(withFriends),
  rename: ({ name }: { name: string }) => ({ ...withFriends(people[0]), name }),
};

/**
 * A real GraphQL server: graphql-js `graphql()` over node:http, answering GET (query string) and POST
 * (application/json, application/graphql) like a typical server. It knows nothing of persisted queries: a request
 * without `query` gets an error, so a test sees whether the gateway filled the text in.
 */
export function startGraphqlUpstream(): Promise<TestUpstream> {
  return startUpstream((req, res, body) => {
    const url = new URL(req.url!, 'http://x');
    let source: string | null = null;
    let variables: Record<string, unknown> | undefined;
    let operationName: string | undefined;
    if (req.method === 'GET') {
      source = url.searchParams.get('query');
      const v = url.searchParams.get('variables');
      variables = v ? JSON.parse(v) : undefined;
      operationName = url.searchParams.get('operationName') ?? undefined;
    } else if ((req.headers['content-type'] ?? '').startsWith('application/graphql')) {
      source = body.toString('utf8');
    } else {
      const o = JSON.parse(body.toString('utf8'));
      source = o.query ?? null;
      variables = o.variables ?? undefined;
      operationName = o.operationName ?? undefined;
    }
    const send = (status: number, out: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(out));
    if (source === null) return send(400, { errors: [{ message: 'no query' }] });
    graphql({ schema, source, rootValue: root, variableValues: variables, operationName }).then(
      (r) => send(200, r),
      (e) => send(500, { errors: [{ message: String(e) }] }),
    );
  });
}
