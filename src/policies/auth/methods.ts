import type { Authenticator } from './authenticator.js';
import { jwtAuthenticator } from './jwt.js';
import { introspectionAuthenticator } from './introspection.js';
import { apiKeyAuthenticator } from './api-key.js';
import { clientCertAuthenticator } from './client-cert.js';

/** Every authentication method, by kind. Adding one = a file beside this one and an entry here. */
export const AUTHENTICATORS: readonly Authenticator[] = [apiKeyAuthenticator, jwtAuthenticator, introspectionAuthenticator, clientCertAuthenticator];
