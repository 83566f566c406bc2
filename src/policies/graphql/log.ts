import type { OperationFacts } from './analyze.js';
import { jsonString } from '../access-log/line.js';
import type { Removal } from './remove.js';

/**
 * What the access log writes of a GraphQL request (ctx.slots of the graphql policy): operation name and type, the
 * fields it touches (bounded by `logFields`), depth and cost. The access log recognises it by `graphqlOperation`.
 */
export class OperationLog {
  readonly graphqlOperation: string;
  readonly type: string;
  readonly depth: number;
  cost: number;
  /** the fields as a JSON array, made once per cached operation */
  readonly fields: string;
  readonly fieldCount: number;
  /** the fields taken out of the query (fieldAuth.mode: remove), for the response's errors; null when none */
  removed: Removal | null = null;
  /** the operation's slot in the route's operation metrics (-1: none) */
  readonly metricSlot: number;
  constructor(f: OperationFacts, fields: string, metricSlot: number) {
    this.graphqlOperation = f.name ?? '';
    this.type = f.type;
    this.depth = f.depth;
    this.cost = f.cost;
    this.fields = fields;
    this.fieldCount = f.coordinates.length;
    this.metricSlot = metricSlot;
  }

  /** the JSON of the access log's "graphql" member */
  json(): string {
    return '{"operation":' + jsonString(this.graphqlOperation) + ',"type":"' + this.type + '","depth":' + this.depth + ',"cost":' + this.cost + ',"fieldCount":' + this.fieldCount + ',"fields":' + this.fields + (this.removed === null ? '}' : ',"removed":' + this.removed.count + '}');
  }
}
