import type { PolicyModule } from '../pipeline/policy.js';
import { headersPolicy } from './headers/index.js';
import { authPolicy } from './auth/index.js';
import { authorizePolicy } from './authorize/index.js';
import { ipRestrictionPolicy } from './ip-restriction/index.js';
import { corsPolicy } from './cors/index.js';
import { rateLimitPolicy } from './rate-limit/index.js';
import { accessLogPolicy } from './access-log/index.js';
import { serverTimingPolicy } from './server-timing/index.js';
import { tracingPolicy } from './tracing/index.js';
import { transformPolicy } from './transform/index.js';
import { cachePolicy } from './cache/index.js';
import { compressionPolicy } from './compression/index.js';
import { graphqlPolicy } from './graphql/index.js';

/**
 * Every policy the gateway knows, in one list. Adding a policy = a folder under src/policies/ and one line here;
 * its schema joins the config schema under `policies.<name>` automatically.
 */
export const POLICIES: readonly PolicyModule[] = [ipRestrictionPolicy, corsPolicy, authPolicy, authorizePolicy, graphqlPolicy, rateLimitPolicy, headersPolicy, transformPolicy, cachePolicy, compressionPolicy, tracingPolicy, accessLogPolicy, serverTimingPolicy];

export const POLICY_BY_NAME: ReadonlyMap<string, PolicyModule> = new Map(POLICIES.map((p) => [p.name, p]));
