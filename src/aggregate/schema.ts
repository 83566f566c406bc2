import { Type, type Static } from '@sinclair/typebox';

/**
 * `aggregate:` on a route: the route answers by calling several upstream requests in parallel and merging their JSON
 * answers into one object (docs/aggregate.md). The calls go through the upstream clusters like proxied requests
 * (balancer, health, circuit, in-flight limits); templates are compiled when the config loads.
 */
const Template = Type.String({
  minLength: 1,
  maxLength: 2048,
  pattern: '^[^\\r\\n\\x00]*$',
  description: 'text with ${params.NAME}, ${query.NAME}, ${header.NAME}, ${consumer.id}, ${consumer.plan}, ${request.id}, ${client.ip}',
});

const Call = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_.-]*$', maxLength: 64, description: 'the part: its key in the merged answer (unless `into`), in error entries and logs' }),
    upstream: Type.String({ minLength: 1, description: 'the upstream (a key of upstreams) the call goes to' }),
    method: Type.Union([Type.Literal('GET'), Type.Literal('HEAD'), Type.Literal('DELETE'), Type.Literal('OPTIONS')], { default: 'GET', description: 'the call has no body, so only methods without one' }),
    path: Type.String({ pattern: '^/', maxLength: 2048, description: 'the path of the call, a template (values are percent-encoded), optionally with ?query' }),
    query: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Template, { description: 'query parameters added to the call, templates (values are percent-encoded; an empty value leaves the parameter out)' })),
    headers: Type.Optional(
      Type.Record(Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", maxLength: 256 }), Template, {
        secret: true,
        description: "request headers of the call, templates (an empty value leaves the header out); secret, as they often carry the upstream's credential",
      }),
    ),
    forwardHeaders: Type.Array(Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }), { default: [], secret: false, description: "client request headers passed to the call as they are (e.g. authorization, accept-language); none by default" }),
    timeoutMs: Type.Integer({ minimum: 1, maximum: 600000, default: 2000, description: 'the whole call (connect, head and body) must be done in this many ms, or it is a failed part' }),
    maxBodyBytes: Type.Integer({ minimum: 1, maximum: 67108864, default: 1048576, description: 'larger answers are a failed part' }),
    pick: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_$-]+(\\.[A-Za-z0-9_$-]+)*$', description: 'take this dot path of the answer instead of all of it (a missing path gives null)' })),
    into: Type.Optional(Type.String({ pattern: '^(\\.|[A-Za-z0-9_$-]+(\\.[A-Za-z0-9_$-]+)*)$', description: 'where the part goes in the merged answer, a dot path (default: its name); "." merges its members into the top level' })),
    required: Type.Boolean({ default: false, description: 'a failure of this part fails the whole answer, whatever onPartialFailure says' }),
    statuses: Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { default: [], description: 'answers with these statuses count as success besides 2xx (e.g. 404 for "none yet"); their body is used if JSON, else null' }),
  },
  { additionalProperties: false },
);

export const AggregateSchema = Type.Object(
  {
    calls: Type.Array(Call, { minItems: 1, maxItems: 32, description: 'the calls, all sent at once; merged in this order' }),
    onPartialFailure: Type.Union([Type.Literal('partial'), Type.Literal('fail')], {
      default: 'partial',
      description: '"partial": answer with what succeeded plus an error entry per failed part; "fail": any failed part fails the whole answer (502)',
    }),
    partialStatus: Type.Integer({ minimum: 200, maximum: 299, default: 207, description: 'status of an answer in which some parts failed (x-nanogate-completed: false says so too)' }),
    errorsKey: Type.String({ pattern: '^[A-Za-z0-9_$-]+$', default: 'errors', secret: false, description: 'member of the merged answer that lists the failed parts' }),
  },
  { additionalProperties: false, description: 'answer by calling several upstreams in parallel and merging their JSON (docs/aggregate.md); the route then needs no upstream' },
);

export type AggregateConfig = Static<typeof AggregateSchema>;
