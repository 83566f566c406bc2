import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import http2, { type Http2SecureServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { PlanListenerTls } from '../tls/compile.js';
import type { PlanHttp2Listener } from './compile.js';
import { NodeRequest, NodeResponse } from './adapter.js';
import { admitConnection, clientCertOf } from './client-cert.js';
import { IP_V4, IP_V6, parseIpInto } from '../shared/cidr.js';

/**
 * The node:http2 front end of a worker: HTTP/2 and HTTP/1.1 over TLS on one port (ALPN "h2", "http/1.1"), or h2c
 * (cleartext HTTP/2, prior knowledge). Each request is wrapped in the adapter pair (adapter.ts) and given to the same
 * handler the uWS listener calls, so routing, policies and upstreams are shared.
 *
 * Certificates are those of `listen.tls` (src/tls/compile.ts, the same files and SNI entries as the uWS listener);
 * a reload of them swaps the secure contexts in place (setSecureContext and the SNI map): new connections get the
 * new certificates, open ones keep theirs. With client certificates (mTLS) every connection is judged once, at the
 * end of its handshake (client-cert.ts), before its first request is read.
 *
 * Only one thread can own this port: Node 20 has no SO_REUSEPORT for its own listeners (a second worker's listen
 * fails with EADDRINUSE; `reusePort` came in Node 22.12), and a worker thread cannot be handed sockets. So worker 0
 * runs it (docs/http2.md has the measurements and the consequence).
 */

type Handler = (res: HttpResponse, req: HttpRequest) => void;

/**
 * Remote address of a connection in uWS's binary form (getRemoteAddress: 4 bytes for IPv4, IPv4-mapped IPv6
 * included, 16 for IPv6; none when unknown), kept on its socket; the handler makes the text (worker/peer-address.ts).
 */
const REMOTE = Symbol('nanogate.remote');
const ipWords = new Uint32Array(4);

function remoteOf(socket: Socket & { [REMOTE]?: ArrayBuffer }): ArrayBuffer {
  let r = socket[REMOTE];
  if (r === undefined) {
    const family = parseIpInto(socket.remoteAddress ?? '', ipWords);
    const words = family === IP_V4 ? 1 : family === IP_V6 ? 4 : 0;
    const bytes = new DataView(new ArrayBuffer(words * 4));
    for (let i = 0; i < words; i++) bytes.setUint32(i * 4, ipWords[i]);
    r = bytes.buffer;
    socket[REMOTE] = r;
  }
  return r;
}

function contextOptions(tls: PlanListenerTls, cert: string, key: string, passphrase: string | undefined, ca: string | null): SecureContextOptions {
  const o: SecureContextOptions = { cert: readFileSync(cert), key: readFileSync(key), minVersion: 'TLSv1.2' };
  if (passphrase !== undefined) o.passphrase = passphrase;
  if (tls.ciphers !== null) o.ciphers = tls.ciphers;
  if (tls.dhParams !== null) o.dhparam = readFileSync(tls.dhParams);
  if (ca !== null) o.ca = ca;
  return o;
}

/** The default context's options and one context per SNI name, read from the files now. */
function contexts(plan: PlanHttp2Listener): { defaults: SecureContextOptions; byName: Map<string, SecureContext> } {
  const tls = plan.tls!;
  const ca = plan.clientCertificates?.ca ?? null;
  const byName = new Map<string, SecureContext>();
  for (const s of tls.servers) byName.set(s.hostname, createSecureContext(contextOptions(tls, s.cert, s.key, s.passphrase, ca)));
  return { defaults: contextOptions(tls, tls.cert, tls.key, tls.passphrase, ca), byName };
}

/** the client-certificate header names of a plan (dropped from client requests by the handler, src/worker/handler.ts) */
export function certificateHeaderNames(plan: PlanHttp2Listener | null): string[] {
  const h = plan?.clientCertificates?.headers;
  return h === undefined ? [] : [h.subject, h.sha256, h.san].filter((n): n is string => n !== null);
}

export class NodeListener {
  readonly #handler: Handler;
  readonly #server: Http2SecureServer | Http2Server;
  #plan: PlanHttp2Listener;
  #byName: Map<string, SecureContext> = new Map();
  readonly #sockets = new Set<Socket>();
  readonly #sessions = new Set<ServerHttp2Session>();
  #listening = false;

  constructor(plan: PlanHttp2Listener, handler: Handler) {
    this.#plan = plan;
    this.#handler = handler;
    const onRequest = (req: Http2ServerRequest | IncomingMessage, res: Http2ServerResponse | ServerResponse) => this.#request(req, res);
    const settings = { maxConcurrentStreams: plan.maxConcurrentStreams };
    if (plan.h2c) {
      this.#server = http2.createServer({ settings }, onRequest);
    } else {
      const { defaults, byName } = contexts(plan);
      this.#byName = byName;
      const cc = plan.clientCertificates;
      const server = http2.createSecureServer(
        {
          ...defaults,
          allowHTTP1: true,
          settings,
          SNICallback: (name, cb) => cb(null, this.#contextFor(name)),
          // every mode required: the handshake itself refuses a client without a valid certificate (a TLS alert);
          // with an optional name the verdict comes right after the handshake (admitConnection)
          requestCert: cc !== null,
          rejectUnauthorized: cc !== null && cc.allRequired,
        },
        onRequest,
      );
      server.prependListener('secureConnection', (socket: TLSSocket) => {
        const c = this.#plan.clientCertificates;
        if (c !== null && !admitConnection(socket, c)) socket.destroy();
      });
      // a failed handshake (wrong CA, no certificate when required, a port scan) is the client's problem
      server.on('tlsClientError', () => {});
      this.#server = server;
    }
    this.#server.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
    this.#server.on('session', (s: ServerHttp2Session) => {
      this.#sessions.add(s);
      s.on('close', () => this.#sessions.delete(s));
      s.on('error', () => {});
    });
    this.#server.on('sessionError', () => {});
  }

  #contextFor(name: string): SecureContext | undefined {
    const n = name.toLowerCase();
    const exact = this.#byName.get(n);
    if (exact !== undefined) return exact;
    const dot = n.indexOf('.');
    return dot > 0 ? this.#byName.get('*' + n.slice(dot)) : undefined;
  }

  #request(req: Http2ServerRequest | IncomingMessage, res: Http2ServerResponse | ServerResponse): void {
    const h2 = req.httpVersionMajor === 2;
    const socket = (h2 ? (req as Http2ServerRequest).stream.session!.socket : req.socket) as Socket;
    let cert = null;
    if (this.#plan.clientCertificates !== null) {
      cert = clientCertOf(socket);
      // a connection opened before mTLS was turned on, or never judged: refused like any other without a verdict
      if (cert === null && (socket as TLSSocket).getPeerX509Certificate?.() !== undefined) {
        res.destroy();
        return;
      }
    }
    const nreq = new NodeRequest(req, h2);
    const nres = new NodeResponse(req, res, h2, remoteOf(socket), cert);
    this.#handler(nres as unknown as HttpResponse, nreq as unknown as HttpRequest);
  }

  listen(done: (port: number) => void): void {
    const server = this.#server;
    const fail = () => done(0);
    server.once('error', fail);
    server.listen({ host: this.#plan.host, port: this.#plan.port }, () => {
      server.off('error', fail);
      this.#listening = true;
      const addr = server.address();
      done(typeof addr === 'object' && addr !== null ? addr.port : 0);
    });
  }

  /**
   * New certificates (or CA bundle, or per-name modes and headers) for new connections. Whether client
   * certificates are asked for at all is fixed when the server starts: false when a change needs a restart.
   */
  swap(plan: PlanHttp2Listener): boolean {
    const before = this.#plan.clientCertificates;
    const after = plan.clientCertificates;
    if ((before === null) !== (after === null) || (before !== null && after !== null && before.allRequired !== after.allRequired) || plan.h2c !== this.#plan.h2c) return false;
    if (!plan.h2c) {
      let next: ReturnType<typeof contexts>;
      try {
        next = contexts(plan);
      } catch {
        return false;
      }
      (this.#server as Http2SecureServer).setSecureContext(next.defaults);
      this.#byName = next.byName;
    }
    this.#plan = plan;
    return true;
  }

  /** stops accepting; HTTP/2 clients get a GOAWAY and finish their streams */
  closeListen(): void {
    if (this.#listening) {
      this.#listening = false;
      this.#server.close();
    }
    for (const s of this.#sessions) s.close();
  }

  /** cuts every connection (thread exit) */
  close(): void {
    this.closeListen();
    for (const s of this.#sockets) s.destroy();
  }
}
