import { Type, type Static } from '@sinclair/typebox';
import { PRIORITY, type PolicyContext, type PolicyModule } from '../../pipeline/policy.js';
import { serverTimingValue } from '../../observe/phases.js';

/**
 * Tells the client where the time went, in a `Server-Timing` response header (W3C Server Timing):
 * `Server-Timing: route;dur=0.012, auth;dur=0.2, connect;dur=0.05, upstream;dur=1.3` (ms). Opt-in per route: it
 * shows internal timing to whoever calls the route. Turns on per-hook timestamps for the route.
 */
const Schema = Type.Object({}, { additionalProperties: false, description: 'Server-Timing response header with the time per phase' });
type Config = Static<typeof Schema>;

const hooks = {
  timesHooks: true,
  response(ctx: PolicyContext): void {
    const value = serverTimingValue(ctx.timing);
    if (value !== '') ctx.addResponseHeader('server-timing', value);
  },
};

export const serverTimingPolicy: PolicyModule<Config, null> = {
  name: 'serverTiming',
  priority: PRIORITY.observe,
  schema: Schema,
  description: 'Server-Timing response header with the time per phase',
  compile() {
    return null;
  },
  create() {
    return hooks;
  },
};
