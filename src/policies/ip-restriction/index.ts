import { Type, type Static } from '@sinclair/typebox';
import { CONTINUE, PRIORITY, RESPOND, PolicyConfigError, type PolicyContext, type PolicyModule } from '../../pipeline/policy.js';
import { CidrSet, IP_INVALID, parseCidr, parseIpInto } from '../../shared/cidr.js';

/**
 * Allow and deny lists of IPv4/IPv6 CIDR blocks, checked against ctx.clientIp (the peer, or behind
 * `proxy.trustedProxies` the right-most X-Forwarded-For hop that is not a trusted proxy). Deny wins; an empty allow
 * list allows every address the deny list does not name. A denied client gets 403 NG_ERR_ACCESS_IP_DENIED.
 *
 * The blocks become sorted numeric ranges when the policy is created; a request costs one char-code parse of the
 * address into a scratch array and one binary search per list, with no allocation.
 */
const Cidr = Type.String({ minLength: 2, maxLength: 64, description: 'an IPv4 or IPv6 address or CIDR block, e.g. 10.0.0.0/8 or 2001:db8::/32' });
const Schema = Type.Object(
  {
    allow: Type.Array(Cidr, { default: [], description: 'only these addresses may call (empty: every address not denied)' }),
    deny: Type.Array(Cidr, { default: [], description: 'these addresses may not call; deny wins over allow' }),
  },
  { additionalProperties: false, description: 'allow or deny clients by IP address (CIDR lists, IPv4 and IPv6)' },
);
type Config = Static<typeof Schema>;

interface Data {
  allow: string[];
  deny: string[];
}

/** The address being checked: one per worker thread, filled and read within one synchronous hook call. */
const scratch = new Uint32Array(4);

const DETAIL = 'the client address is not allowed to call this route';

function check(list: string[], path: string): string[] {
  return list.map((text, i) => {
    if (!parseCidr(text)) {
      throw new PolicyConfigError(`${path}[${i}]`, `"${text}" is not an IP address or CIDR block`, 'write e.g. 192.168.0.0/16, 203.0.113.7 or 2001:db8::/32');
    }
    return text;
  });
}

export const ipRestrictionPolicy: PolicyModule<Config, Data> = {
  name: 'ipRestriction',
  priority: PRIORITY.ipRestriction,
  schema: Schema,
  description: 'allow or deny clients by IP address (CIDR lists, IPv4 and IPv6)',
  compile(config) {
    return { allow: check(config.allow, 'allow'), deny: check(config.deny, 'deny') };
  },
  create(data) {
    // Both lists empty (e.g. a route switching off a global entry): no hook at all.
    if (data.allow.length === 0 && data.deny.length === 0) return {};
    const allow = new CidrSet(data.allow);
    const deny = new CidrSet(data.deny);
    const allowAll = allow.size === 0;
    const hasDeny = deny.size > 0;
    return {
      access(ctx: PolicyContext) {
        const family = parseIpInto(ctx.clientIp, scratch);
        // An address that does not parse (a garbled X-Forwarded-For hop from a trusted proxy) is refused: fail closed.
        if (family === IP_INVALID || (hasDeny && deny.contains(family, scratch)) || !(allowAll || allow.contains(family, scratch))) {
          ctx.respondProblem('NG_ERR_ACCESS_IP_DENIED', DETAIL);
          return RESPOND;
        }
        return CONTINUE;
      },
    };
  },
};
