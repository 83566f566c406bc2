/**
 * A stand-in for the worker's Exchange in authentication micro-benchmarks: the PolicyContext members the auth
 * methods read (headers) and write (identity, upstream headers, a prepared problem), without a socket behind it.
 * `use(value)` puts a credential in the header named at construction and clears what the last run wrote.
 */
export class BenchContext {
  requestId = 'r1';
  method = 'GET';
  path = '/orders';
  query = '';
  hostHeader = 'api.example';
  clientIp = '127.0.0.1';
  routeName = 'orders';
  readonly headerNames: string[];
  readonly headerValues: string[];
  readonly #credential: number;
  consumerId: string | null = null;
  consumerIndex = -1;
  consumerPlan: string | null = null;
  scopes: readonly string[] | null = null;
  roles: readonly string[] | null = null;
  slots: unknown[] = [undefined];
  upstreamExtra = '';
  upstreamRemove: string[] | null = null;
  prepared: unknown = null;
  aborted = false;

  constructor(credentialHeader: string) {
    this.headerNames = ['host', 'accept', 'user-agent', credentialHeader];
    this.headerValues = ['api.example', '*/*', 'bench', ''];
    this.#credential = 3;
  }

  header(name: string): string | undefined {
    const names = this.headerNames;
    for (let i = 0; i < names.length; i++) if (names[i] === name) return this.headerValues[i];
    return undefined;
  }
  setUpstreamHeader(name: string, value: string): void {
    this.upstreamExtra += name + ': ' + value + '\r\n';
  }
  removeUpstreamHeader(name: string): void {
    (this.upstreamRemove ??= []).push(name);
  }
  removeUpstreamQueryParam(): void {}
  respondProblem(code: string, detail?: string): void {
    this.prepared = { code, detail };
  }
  resume(): void {}

  use(credential: string): this {
    this.headerValues[this.#credential] = credential;
    this.consumerId = null;
    this.consumerIndex = -1;
    this.consumerPlan = null;
    this.scopes = null;
    this.roles = null;
    this.upstreamExtra = '';
    this.upstreamRemove = null;
    this.prepared = null;
    return this;
  }
}
