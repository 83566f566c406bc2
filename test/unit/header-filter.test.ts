import { test } from 'node:test';
import assert from 'node:assert/strict';
import { maybeSpecial, setCertificateHeaders } from '../../src/worker/handler.js';

/**
 * The request handler looks a header name up in its table of names with a role (framing, hop-by-hop, forwarding,
 * client claims, certificate headers) only when a filter says it may be there. A name the filter passed over would
 * be forwarded untouched: a Transfer-Encoding unframed, an X-Forwarded-For spoofed, a certificate header forged.
 */
test('every header name with a role passes the filter, certificate headers too once configured', () => {
  const roles = [
    'host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
    'proxy-authorization', 'proxy-authenticate', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'via', 'expect',
    'forwarded', 'x-real-ip',
  ];
  for (const name of roles) assert.ok(maybeSpecial(name), name);
  const certs = ['x-client-cert', 'x-client-verify', 'x-ssl-client-s-dn'];
  try {
    setCertificateHeaders(certs);
    for (const name of [...roles, ...certs]) assert.ok(maybeSpecial(name), name);
  } finally {
    setCertificateHeaders([]);
  }
  for (const name of roles) assert.ok(maybeSpecial(name), `${name}, after the certificate headers are gone`);
});
