import {
  GraphQLError,
  GraphQLSchema,
  GraphQLObjectType,
  GraphQLBoolean,
  parse,
  validate,
  specifiedRules,
  ExecutableDefinitionsRule,
  KnownFragmentNamesRule,
  LoneAnonymousOperationRule,
  NoFragmentCyclesRule,
  UniqueFragmentNamesRule,
  UniqueOperationNamesRule,
  type DocumentNode,
  type ValidationRule,
} from 'graphql';
import { LRUCache } from 'lru-cache';
import type { ErrorCode } from '../../errors/codes.js';

/** A parsed and validated document, or why it is refused; cached either way (a hostile repeat costs a lookup). */
export type Parsed = { readonly doc: DocumentNode; readonly error: null; readonly ops: Map<string, unknown> } | { readonly doc: null; readonly error: ErrorCode; readonly message: string };

/** Without a schema, the rules that need none: fragment cycles and unknown fragments above all (depth follows spreads). */
const SCHEMALESS_RULES: readonly ValidationRule[] = [ExecutableDefinitionsRule, UniqueOperationNamesRule, LoneAnonymousOperationRule, UniqueFragmentNamesRule, KnownFragmentNamesRule, NoFragmentCyclesRule];
/** validate() asks for a valid schema even when its rules read none: the smallest one there is */
const EMPTY_SCHEMA = new GraphQLSchema({ query: new GraphQLObjectType({ name: 'Query', fields: { _: { type: GraphQLBoolean } } }) });

/**
 * Parses with a token limit first (graphql-js stops at maxTokens, so the parser's work is bounded by the limit, not
 * by the document), then validates. Documents are kept in an LRU keyed by their text: a Map key is hashed by V8 once
 * per string and compared in full on a hit, so there is neither a digest to compute per request nor a collision to
 * fear (a SHA-256 of the text costs more than the lookup it would replace: bench/micro/graphql.bench.ts).
 */
export class DocumentCache {
  readonly #cache: LRUCache<string, Parsed>;
  readonly #maxTokens: number;
  readonly #schema: GraphQLSchema | null;
  readonly #rules: readonly ValidationRule[];

  constructor(maxEntries: number, maxBytes: number, maxTokens: number, schema: GraphQLSchema | null) {
    this.#cache = new LRUCache<string, Parsed>({ max: maxEntries, maxSize: maxBytes, sizeCalculation: (_v, k) => Math.max(1, k.length) });
    this.#maxTokens = maxTokens;
    this.#schema = schema;
    this.#rules = schema === null ? SCHEMALESS_RULES : specifiedRules;
  }

  get(text: string): Parsed {
    const hit = this.#cache.get(text);
    if (hit !== undefined) return hit;
    const parsed = this.parse(text);
    this.#cache.set(text, parsed);
    return parsed;
  }

  /** Parse and validate without the cache (also what a cache miss costs). */
  parse(text: string): Parsed {
    let doc: DocumentNode;
    try {
      doc = parse(text, { maxTokens: this.#maxTokens, noLocation: true });
    } catch (e) {
      const loc = e instanceof GraphQLError ? e.locations?.[0] : undefined;
      const message = e instanceof GraphQLError ? e.message + (loc ? ` (line ${loc.line}, column ${loc.column})` : '') : 'the document does not parse';
      // graphql-js: "Syntax Error: Document contains more that N tokens. Parsing aborted."
      if (message.includes('tokens. Parsing aborted')) return { doc: null, error: 'NG_ERR_GRAPHQL_TOO_MANY_TOKENS', message: `the document has more than ${this.#maxTokens} tokens` };
      return { doc: null, error: 'NG_ERR_GRAPHQL_SYNTAX', message };
    }
    const errors = validate(this.#schema ?? EMPTY_SCHEMA, doc, this.#rules, { maxErrors: 1 });
    if (errors.length > 0) return { doc: null, error: 'NG_ERR_GRAPHQL_INVALID', message: errors[0].message };
    return { doc, error: null, ops: new Map() };
  }
}
