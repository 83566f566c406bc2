import type { HttpRequest } from 'uWebSockets.js';
import type { MatchInput } from '../worker/runtime.js';

/**
 * What an upgrade request holds, copied out of the uWS request synchronously (it dies when the upgrade handler
 * returns). Upgrades are far rarer than requests, so this is a fresh object per upgrade rather than a reused scratch.
 */
export class UpgradeRequest implements MatchInput {
  readonly method = 'GET';
  readonly path: string;
  readonly query: string;
  readonly headerNames: string[] = [];
  readonly headerValues: string[] = [];
  headerCount = 0;
  host = '';
  hostCount = 0;
  key = '';
  version = '';
  /** Sec-WebSocket-Protocol entries in the client's order */
  protocols: string[] = [];
  connection: string | null = null;
  xff: string | null = null;
  xfp: string | null = null;
  xfh: string | null = null;
  via: string | null = null;
  requestId: string | null = null;
  bytes = 0;

  constructor(req: HttpRequest, requestIdHeader: string) {
    this.path = req.getUrl();
    this.query = req.getQuery() ?? '';
    req.forEach((name, value) => {
      this.headerNames.push(name);
      this.headerValues.push(value);
      this.headerCount++;
      this.bytes += name.length + value.length + 4;
      switch (name) {
        case 'host':
          this.host = value;
          this.hostCount++;
          break;
        case 'sec-websocket-key':
          this.key = value;
          break;
        case 'sec-websocket-version':
          this.version = value;
          break;
        case 'sec-websocket-protocol':
          for (const p of value.split(',')) {
            const t = p.trim();
            if (t !== '') this.protocols.push(t);
          }
          break;
        case 'connection':
          this.connection = this.connection === null ? value : this.connection + ', ' + value;
          break;
        case 'x-forwarded-for':
          this.xff = this.xff === null ? value : this.xff + ', ' + value;
          break;
        case 'x-forwarded-proto':
          this.xfp = value;
          break;
        case 'x-forwarded-host':
          this.xfh = value;
          break;
        case 'via':
          this.via = this.via === null ? value : this.via + ', ' + value;
          break;
        default:
          if (name === requestIdHeader) this.requestId = value;
      }
    });
  }
}

/**
 * Request headers that are not passed to the upstream's handshake: the hop-by-hop ones, those the WebSocket client
 * writes itself (key, version, extensions, protocols), and those the gateway sets (forwarding, Via).
 */
export const NOT_FORWARDED = new Set([
  'host',
  'connection',
  'upgrade',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'content-length',
  'expect',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-extensions',
  'sec-websocket-protocol',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'via',
  'forwarded',
  'x-real-ip',
]);
