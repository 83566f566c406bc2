import type { Authenticator } from './authenticator.js';

/** Every authentication method, by kind. Adding one = a file beside this one and an entry here. */
export const AUTHENTICATORS: readonly Authenticator[] = [];
