import {
  ImportError,
  type ImportReport,
  type Obj,
  apiKeyProblem,
  asArray,
  consumerIdOk,
  convertActiveCheck,
  corsOriginOk,
  headerNameOk,
  isObj,
  jwtKey,
  nodeUrl,
  num,
  perOf,
  scaleWeights,
  sha256Hex,
  splitHostPort,
  str,
  uniqueName,
} from './common.js';
import { type JwtCredential, PolicyBuilder, sharedJwtKey } from './policies.js';

/**
 * APISIX standalone config (conf/apisix.yaml, ended by `#END`) to a nanogate config.
 *
 *   upstreams[] (by id), or a route's / service's inline upstream → upstreams.NAME
 *   routes[] with uri(s), methods, host(s), vars on headers/args → one nanogate route per uri
 *   services[]: their upstream, hosts and plugins under the route's own (the route's plugin of a name wins)
 *   consumers[] with key-auth / jwt-auth → consumers (keys as SHA-256 digests)
 *   global_rules[] → top-level policies (APISIX runs them besides the route's; nanogate's route entry replaces a
 *   global one of the same name, so where both exist the route's entry gets what the global one had)
 */

interface Plugin {
  name: string;
  config: Obj;
  path: string;
}

const ACCESS_PLUGINS = new Set([
  'key-auth', 'jwt-auth', 'basic-auth', 'hmac-auth', 'wolf-rbac', 'openid-connect', 'authz-keycloak', 'authz-casdoor', 'authz-casbin',
  'ldap-auth', 'opa', 'forward-auth', 'multi-auth', 'consumer-restriction', 'ip-restriction', 'ua-restriction', 'referer-restriction',
  'uri-blocker', 'cas-auth', 'jwe-decrypt', 'csrf',
]);
const BUILT_IN: Record<string, string> = { prometheus: 'metrics are always on (GET /metrics on the admin port)' };
const APISIX_TIMEOUT_S = 60;

export function convertApisix(doc: unknown, text: string, report: ImportReport): Obj {
  if (!isObj(doc)) throw new ImportError('not an APISIX standalone config: the file is not a YAML/JSON object');
  if ('_format_version' in doc) throw new ImportError('this is a Kong declarative config (_format_version): use nanogate import kong');
  if (!['routes', 'upstreams', 'services', 'consumers', 'global_rules'].some((k) => k in doc)) {
    throw new ImportError('not an APISIX standalone config: none of routes, upstreams, services, consumers, global_rules');
  }
  if (!/^#END\s*$/m.test(text)) report.add('#END', 'the file has no #END line: APISIX does not load such a file (it is converted anyway)');
  for (const key of Object.keys(doc)) {
    if (['routes', 'upstreams', 'services', 'consumers', 'global_rules'].includes(key)) continue;
    if (asArray(doc[key]).length || isObj(doc[key])) report.add(key, `"${key}" has no nanogate counterpart here; not converted`);
  }

  const out: { limits?: Obj; upstreams: Obj; consumers: Obj[]; policies?: Obj; routes: Obj[] } = { upstreams: {}, consumers: [], routes: [] };
  const upstreamNames = new Set<string>();
  const routeNames = new Set<string>();

  // ---------------------------------------------------------------- upstreams
  const upstreamById = new Map<string, { src: Obj; path: string; made?: { name: string; hostHeader: string } | null }>();
  asArray(doc.upstreams).forEach((u, i) => {
    if (!isObj(u) || u.id === undefined) return report.add(`upstreams[${i}]`, 'an upstream without an id; not converted');
    upstreamById.set(String(u.id), { src: u, path: `upstreams[${i}]` });
  });
  /** Makes the nanogate upstream once; returns its name and the route hostHeader its pass_host asks for. */
  function makeUpstream(u: Obj, path: string, fallbackName: string): { name: string; hostHeader: string } | null {
    if (str(u.discovery_type) || str(u.service_name)) {
      report.add(path, `discovery "${u.discovery_type ?? ''}": configure upstreams.NAME.discovery (docs/discovery.md); the routes using it are not converted`);
      return null;
    }
    const scheme = str(u.scheme) ?? 'http';
    if (scheme !== 'http' && scheme !== 'https') {
      report.add(`${path}.scheme`, `scheme "${scheme}" is not proxied by nanogate (http and https are); the routes using it are not converted`);
      return null;
    }
    const list: { host: string; port: number; weight: number; priority: number; path: string }[] = [];
    if (isObj(u.nodes)) {
      for (const [target, w] of Object.entries(u.nodes)) {
        const hp = splitHostPort(target, scheme === 'https' ? 443 : 80);
        if (!hp) report.add(`${path}.nodes.${target}`, 'not host:port; not converted');
        else list.push({ ...hp, weight: num(w) ?? 1, priority: 0, path: `${path}.nodes.${target}` });
      }
    } else {
      asArray(u.nodes).forEach((n, j) => {
        if (!isObj(n) || !str(n.host)) return report.add(`${path}.nodes[${j}]`, 'a node without host; not converted');
        list.push({ host: n.host as string, port: num(n.port) ?? (scheme === 'https' ? 443 : 80), weight: num(n.weight) ?? 1, priority: num(n.priority) ?? 0, path: `${path}.nodes[${j}]` });
      });
    }
    if (new Set(list.map((n) => n.priority)).size > 1) report.add(`${path}.nodes`, 'node priorities (backup nodes) are not supported: every node takes traffic by its weight');
    if (!list.length) {
      report.add(path, 'no usable nodes; the routes using it are not converted');
      return null;
    }
    const nodes: Obj[] = list.map((n) => ({ url: nodeUrl(scheme, n.host, n.port), weight: n.weight }));
    const scaled = scaleWeights(nodes.map((n) => n.weight as number));
    if (scaled) {
      nodes.forEach((n, k) => (n.weight = scaled[k]));
      report.add(`${path}.nodes`, 'weights above 1000 scaled into 0..1000 keeping their ratios');
    }
    const up: Obj = { nodes };
    const t = isObj(u.timeout) ? u.timeout : {};
    up.connectTimeoutMs = Math.max(1, Math.round((num(t.connect) ?? APISIX_TIMEOUT_S) * 1000));
    up.readTimeoutMs = Math.max(1, Math.round((num(t.read) ?? APISIX_TIMEOUT_S) * 1000));
    if (num(t.send) !== undefined && t.send !== APISIX_TIMEOUT_S) report.add(`${path}.timeout.send`, 'nanogate has no separate send timeout; not converted');
    const type = str(u.type) ?? 'roundrobin';
    if (type === 'least_conn') up.balancer = 'least-request';
    else if (type === 'ewma') up.balancer = 'peak-ewma';
    else if (type === 'chash') {
      const source = chashSource(str(u.hash_on) ?? 'vars', str(u.key) ?? 'remote_addr');
      if (source) {
        up.balancer = 'consistent-hash';
        up.balancing = { consistentHash: { hashOn: [source] } };
      } else report.add(`${path}.key`, `hashing on ${u.hash_on ?? 'vars'} "${u.key}" has no nanogate source; round robin`);
    } else if (type !== 'roundrobin') report.add(`${path}.type`, `balancer "${type}" has no nanogate counterpart; round robin`);
    if (isObj(u.checks) && isObj(u.checks.active)) {
      const check = convertActiveCheck(u.checks.active, isObj(u.checks.passive) ? u.checks.passive : undefined, `${path}.checks`, report, {
        interval: 1, successes: 2, httpFailures: 5, tcpFailures: 2, timeouts: 3,
      });
      if (check) up.healthCheck = check;
    } else if (isObj(u.checks) && isObj(u.checks.passive)) {
      report.add(`${path}.checks.passive`, 'passive checks without active ones: nanogate ejects nodes that refuse, reset or time out by default (outlierDetection)');
    }
    if (num(u.retries) !== undefined) report.add(`${path}.retries`, 'nanogate retries by failure kind under a retry budget (routes[].retries, docs/resilience.md); not converted');
    if (isObj(u.keepalive_pool)) report.add(`${path}.keepalive_pool`, 'see upstreams.NAME.connections and keepAliveMs; not converted');
    const name = uniqueName(str(u.name) ?? fallbackName, upstreamNames);
    out.upstreams[name] = up;
    // APISIX passes the client's Host by default (pass_host: pass)
    const pass = str(u.pass_host) ?? 'pass';
    const hostHeader = pass === 'node' ? 'upstream' : pass === 'rewrite' && str(u.upstream_host) ? (u.upstream_host as string) : 'preserve';
    return { name, hostHeader };
  }
  function upstreamRef(id: unknown, path: string): { name: string; hostHeader: string } | null {
    const entry = upstreamById.get(String(id));
    if (!entry) {
      report.add(path, `unknown upstream_id "${id}"`);
      return null;
    }
    if (entry.made === undefined) entry.made = makeUpstream(entry.src, entry.path, `upstream-${id}`);
    return entry.made;
  }

  // ---------------------------------------------------------------- consumers
  const jwtCredentials: JwtCredential[] = [];
  asArray(doc.consumers).forEach((c, i) => {
    const path = `consumers[${i}]`;
    if (!isObj(c)) return;
    const id = str(c.username);
    if (!id || !consumerIdOk(id)) return report.add(path, 'a consumer without a usable username; not converted');
    const nc: Obj = { id };
    const plugins = isObj(c.plugins) ? c.plugins : {};
    for (const [name, conf] of Object.entries(plugins)) {
      const ppath = `${path}.plugins.${name}`;
      const cf = isObj(conf) ? conf : {};
      if (name === 'key-auth') {
        const key = str(cf.key);
        const problem = key ? apiKeyProblem(key) : 'no key';
        if (problem || !key) report.add(ppath, `${problem}; not converted`);
        else nc.keys = [{ keySha256: sha256Hex(key) }];
      } else if (name === 'jwt-auth') {
        if (!str(cf.key)) {
          report.add(ppath, 'jwt-auth without "key"; not converted');
          continue;
        }
        if (cf.base64_secret === true) {
          report.add(ppath, 'base64_secret: nanogate takes HS secrets as UTF-8 text; not converted');
          continue;
        }
        const key = jwtKey(str(cf.algorithm) ?? 'HS256', str(cf.secret), str(cf.public_key));
        if (typeof key === 'string') {
          report.add(ppath, `${key}; not converted`);
          continue;
        }
        nc.jwt = [{ issuer: cf.key, subject: id }];
        jwtCredentials.push({ consumer: id, issuer: cf.key as string, key, path: ppath });
        report.add(ppath, `APISIX finds the consumer by the token's "key" claim; nanogate maps iss + sub: its tokens must carry iss "${cf.key}" and sub "${id}"`);
      } else report.add(ppath, `consumer plugin "${name}": nanogate policies are per route or global (per-consumer limits: rateLimit plans); not converted`);
    }
    if (c.group_id !== undefined) report.add(`${path}.group_id`, 'consumer groups are not converted');
    out.consumers.push(nc);
  });

  // ---------------------------------------------------------------- global rules
  const globalPlugins: Plugin[] = [];
  asArray(doc.global_rules).forEach((g, i) => {
    if (isObj(g) && isObj(g.plugins)) globalPlugins.push(...pluginList(g.plugins, `global_rules[${i}].plugins`));
  });
  const global = convertPlugins(globalPlugins, true);
  if (global.blocked) throw new ImportError(`global_rules: ${global.blocked}; nothing can be converted safely`);
  if (Object.keys(global.policies).length) out.policies = global.policies;
  if (global.maxBodyBytes !== undefined) out.limits = { maxBodyBytes: global.maxBodyBytes };

  // ---------------------------------------------------------------- services and routes
  const serviceById = new Map<string, { src: Obj; path: string; upstream?: { name: string; hostHeader: string } | null }>();
  asArray(doc.services).forEach((s, i) => {
    if (isObj(s) && s.id !== undefined) serviceById.set(String(s.id), { src: s, path: `services[${i}]` });
  });

  asArray(doc.routes).forEach((r, i) => {
    if (!isObj(r)) return;
    const label = `routes[${i}]`;
    const name = str(r.name) ?? `route-${r.id ?? i}`;
    const fail = (reason: string, at = label) => report.add(at, `route "${name}": ${reason}; not converted`);
    if (r.status === 0) return report.add(label, `route "${name}" is disabled; not converted`);
    const svc = r.service_id !== undefined ? serviceById.get(String(r.service_id)) : undefined;
    if (r.service_id !== undefined && !svc) return fail(`unknown service_id "${r.service_id}"`);
    for (const field of ['remote_addr', 'remote_addrs', 'filter_func', 'script', 'plugin_config_id']) {
      if (r[field] !== undefined) return fail(`"${field}" is not supported`, `${label}.${field}`);
    }
    if (r.enable_websocket === true || svc?.src.enable_websocket === true) return fail('WebSocket upgrades are not proxied by nanogate', `${label}.enable_websocket`);

    let target: { name: string; hostHeader: string } | null = null;
    if (isObj(r.upstream)) target = makeUpstream(r.upstream, `${label}.upstream`, name);
    else if (r.upstream_id !== undefined) target = upstreamRef(r.upstream_id, `${label}.upstream_id`);
    else if (svc && isObj(svc.src.upstream)) {
      // one upstream per service, however many routes use it
      if (svc.upstream === undefined) svc.upstream = makeUpstream(svc.src.upstream, `${svc.path}.upstream`, str(svc.src.name) ?? `service-${svc.src.id}`);
      target = svc.upstream;
    }
    else if (svc && svc.src.upstream_id !== undefined) target = upstreamRef(svc.src.upstream_id, `${svc.path}.upstream_id`);
    else return fail('no upstream');
    if (target === null) return fail('its upstream is not converted');

    const plugins = new Map<string, Plugin>();
    if (svc && isObj(svc.src.plugins)) for (const p of pluginList(svc.src.plugins, `${svc.path}.plugins`)) plugins.set(p.name, p);
    if (isObj(r.plugins)) for (const p of pluginList(r.plugins, `${label}.plugins`)) plugins.set(p.name, p);
    const rewrite = plugins.get('proxy-rewrite');
    plugins.delete('proxy-rewrite');
    const converted = convertPlugins([...plugins.values()], false);
    if (converted.blocked) return report.add(label, `route "${name}" is left out, not served unguarded: ${converted.blocked}`);
    if (rewrite) proxyRewriteHeaders(rewrite, converted);
    const policies = converted.policies;
    // APISIX runs global rules besides the route's plugins; nanogate's route entry replaces the global one
    for (const [k, v] of Object.entries(global.policies)) {
      if (!(k in policies)) continue;
      if (k === 'rateLimit') (policies.rateLimit as { limits: Obj[] }).limits.unshift(...(v as { limits: Obj[] }).limits);
      else if (k === 'headers') policies.headers = mergeHeaders(v as HeadersPolicy, policies.headers as HeadersPolicy);
      else report.add(label, `the route's "${k}" replaces the global rule's on this route (APISIX runs both)`);
    }

    const match: Obj = {};
    const methods = asArray(r.methods).filter((m): m is string => typeof m === 'string');
    if (methods.length) match.methods = methods;
    const hosts = [...asArray(r.hosts), ...(str(r.host) ? [r.host] : [])];
    const svcHosts = svc ? [...asArray(svc.src.hosts)] : [];
    const allHosts = (hosts.length ? hosts : svcHosts).filter((h): h is string => typeof h === 'string');
    for (const h of allHosts) if (!/^(\*\.)?[A-Za-z0-9.-]+$/.test(h)) return fail(`host "${h}" is not an exact host or *.domain pattern`, `${label}.hosts`);
    if (allHosts.length) match.hosts = allHosts;
    if (r.vars !== undefined) {
      const conditions = varsToMatch(r.vars);
      if (typeof conditions === 'string') return fail(`${conditions}: it would take requests the route does not take in APISIX`, `${label}.vars`);
      Object.assign(match, conditions);
    }

    const uris = [...asArray(r.uris), ...(str(r.uri) ? [r.uri] : [])].filter((u): u is string => typeof u === 'string');
    if (!uris.length) return fail('no uri');
    uris.forEach((uri, j) => {
      const upath = r.uris !== undefined ? `${label}.uris[${j}]` : `${label}.uri`;
      const m = uriMatch(uri);
      if (typeof m === 'string') return fail(m, upath);
      if (m.note) report.add(upath, m.note);
      const route: Obj = { name: uniqueName(uris.length > 1 ? `${name}-${j + 1}` : name, routeNames), match: { ...match, ...m.match }, upstream: target!.name };
      if (target!.hostHeader !== 'upstream') route.hostHeader = target!.hostHeader;
      if (num(r.priority) !== undefined && r.priority !== 0) route.priority = r.priority;
      if (rewrite) proxyRewrite(rewrite, route, m.match);
      if (isObj(r.timeout)) {
        const t: Obj = {};
        if (num(r.timeout.connect) !== undefined) t.connectMs = Math.max(1, Math.round((r.timeout.connect as number) * 1000));
        if (num(r.timeout.read) !== undefined) t.readMs = Math.max(1, Math.round((r.timeout.read as number) * 1000));
        if (Object.keys(t).length) route.timeouts = t;
      }
      // the route's client-control runs after the global rule's in APISIX: its size is the one that holds
      if (converted.maxBodyBytes !== undefined && converted.maxBodyBytes !== global.maxBodyBytes) route.maxBodyBytes = converted.maxBodyBytes;
      if (Object.keys(policies).length) route.policies = policies;
      out.routes.push(route);
    });
  });
  return out;

  // ---------------------------------------------------------------- plugins
  function pluginList(plugins: Obj, path: string): Plugin[] {
    const list: Plugin[] = [];
    for (const [name, conf] of Object.entries(plugins)) {
      const c = isObj(conf) ? conf : {};
      if (isObj(c._meta) && c._meta.disable === true) continue;
      list.push({ name, config: c, path: `${path}.${name}` });
    }
    return list;
  }

  function convertPlugins(plugins: Plugin[], isGlobal: boolean): PolicyBuilder {
    const b = new PolicyBuilder();
    let limitIndex = 0;
    for (const p of plugins) {
      const c = p.config;
      switch (p.name) {
        case 'key-auth': {
          const header = str(c.header) ?? 'apikey';
          const query = str(c.query) ?? 'apikey';
          if (!headerNameOk(header)) {
            b.block(`${p.path}: "${header}" is not a header name`);
            break;
          }
          b.addAuth('apiKey', { header, query }, { hideCredentials: c.hide_credentials === true, anonymous: !!str(c.anonymous_consumer), identityHeader: 'X-Consumer-Username' });
          if (str(c.anonymous_consumer)) report.add(`${p.path}.anonymous_consumer`, `requests without a key pass with no consumer (not as consumer "${c.anonymous_consumer}")`);
          break;
        }
        case 'jwt-auth': {
          const key = sharedJwtKey(jwtCredentials);
          if (typeof key === 'string') {
            b.block(`${p.path}: ${key}`);
            break;
          }
          if (str(c.header) && (c.header as string).toLowerCase() !== 'authorization') report.add(`${p.path}.header`, 'tokens are read from Authorization: Bearer only');
          if (str(c.query) && c.query !== 'jwt') report.add(`${p.path}.query`, 'tokens in query parameters are not read');
          if (str(c.cookie) && c.cookie !== 'jwt') report.add(`${p.path}.cookie`, 'tokens in cookies are not read');
          const issuers = [...new Set(jwtCredentials.map((j) => j.issuer))];
          b.addAuth('jwt', { keys: [key], issuer: issuers.length === 1 ? issuers[0] : issuers, requiredClaims: ['exp', 'sub'], mapConsumer: 'required' }, {
            hideCredentials: c.hide_credentials === true,
            anonymous: false,
            identityHeader: 'X-Consumer-Username',
          });
          break;
        }
        case 'limit-count': {
          const count = num(c.count);
          const window = num(c.time_window);
          const per = window === undefined ? undefined : perOf(window);
          if (count === undefined || !Number.isInteger(count) || count < 1 || per === undefined) {
            report.add(p.path, `${count} per ${window} s: nanogate windows are a second, minute, hour or day; not converted`);
            break;
          }
          const key = limitKey(c, p.path);
          if (key === undefined) break;
          const limit: Obj = { key, algorithm: 'slidingWindow', rate: count, per };
          // global limits keep one bucket when a route's own rateLimit carries them too
          if (isGlobal) limit.name = `global-${++limitIndex}`;
          limitCommon(c, p.path);
          b.addLimits([limit], undefined, c.show_limit_quota_header === false);
          break;
        }
        case 'limit-req': {
          const rate = num(c.rate);
          const burst = num(c.burst) ?? 0;
          if (rate === undefined || !Number.isInteger(rate) || rate < 1 || !Number.isInteger(burst)) {
            report.add(p.path, `rate ${rate}, burst ${burst}: nanogate token buckets take whole requests per second; not converted`);
            break;
          }
          const key = limitKey(c, p.path);
          if (key === undefined) break;
          if (c.nodelay !== true && burst > 0) report.add(`${p.path}.nodelay`, 'requests over the rate within the burst pass at once; APISIX delays them');
          const limit: Obj = { key, algorithm: 'tokenBucket', rate, per: 'second', burst: rate + burst };
          if (isGlobal) limit.name = `global-${++limitIndex}`;
          limitCommon(c, p.path);
          b.addLimits([limit], undefined, false);
          break;
        }
        case 'cors': {
          const origins = list(c.allow_origins ?? '*');
          const ok = origins.filter(corsOriginOk);
          for (const o of origins.filter((x) => !corsOriginOk(x))) report.add(`${p.path}.allow_origins`, `origin "${o}" is not an exact origin or one * wildcard; left out`);
          if (asArray(c.allow_origins_by_regex).length) report.add(`${p.path}.allow_origins_by_regex`, 'regex origins are not supported; left out');
          if (!ok.length) {
            report.add(p.path, 'no origin left to allow; cors not converted');
            break;
          }
          const cors: Obj = { origins: ok };
          const methods = list(c.allow_methods ?? '*');
          if (!methods.includes('*')) cors.methods = methods;
          const allow = list(c.allow_headers ?? '*');
          cors.allowHeaders = allow.filter((h) => h === '*' || headerNameOk(h));
          const expose = list(c.expose_headers ?? '');
          if (expose.length) cors.exposeHeaders = expose.filter((h) => h === '*' || headerNameOk(h));
          if (c.allow_credential === true) cors.credentials = true;
          const age = num(c.max_age) ?? 5;
          cors.maxAge = Math.min(86400, Math.max(0, Math.round(age)));
          b.policies.cors = cors;
          break;
        }
        case 'client-control': {
          const max = num(c.max_body_size);
          if (max !== undefined && max > 0) b.maxBodyBytes = Math.round(max);
          break;
        }
        case 'ip-restriction': {
          const allow = asArray(c.whitelist ?? c.allowlist).filter((x): x is string => typeof x === 'string');
          const deny = asArray(c.blacklist ?? c.denylist).filter((x): x is string => typeof x === 'string');
          if (!allow.length && !deny.length) break;
          const ip: Obj = {};
          if (allow.length) ip.allow = allow;
          if (deny.length) ip.deny = deny;
          b.policies.ipRestriction = ip;
          break;
        }
        case 'response-rewrite': {
          const headers = isObj(c.headers) ? c.headers : {};
          const hs = headerOps(headers, `${p.path}.headers`);
          b.addHeaders('response', hs.set, hs.remove);
          for (const field of ['status_code', 'body', 'filters', 'body_base64']) {
            if (c[field] !== undefined) report.add(`${p.path}.${field}`, `${field} has no nanogate counterpart; not converted`);
          }
          break;
        }
        default:
          if (p.name in BUILT_IN) break;
          if (ACCESS_PLUGINS.has(p.name)) b.block(`${p.path}: plugin "${p.name}" has no nanogate counterpart`);
          else report.add(p.path, `plugin "${p.name}" has no nanogate counterpart; not converted`);
      }
    }
    return b;
  }

  function limitKey(c: Obj, path: string): string | undefined {
    if ((str(c.key_type) ?? 'var') !== 'var') {
      report.add(`${path}.key_type`, `key_type "${c.key_type}" has no nanogate key; not converted`);
      return undefined;
    }
    const key = str(c.key) ?? 'remote_addr';
    if (key === 'remote_addr' || key === 'realip_remote_addr') return 'ip';
    if (key === 'consumer_name') return 'consumer';
    if (key === 'server_addr' || key === 'route_id' || key === 'service_id') return 'route';
    const h = /^http_([a-z0-9_]+)$/i.exec(key);
    if (h) return `header:${h[1].toLowerCase().replace(/_/g, '-')}`;
    report.add(`${path}.key`, `key "${key}" has no nanogate key; not converted`);
    return undefined;
  }

  function limitCommon(c: Obj, path: string) {
    const code = num(c.rejected_code) ?? 503; // APISIX's default
    if (code !== 429) report.add(`${path}.rejected_code`, `refusals are 429 NG_ERR_RATE_LIMITED with Retry-After, not ${code}`);
    const policy = str(c.policy) ?? 'local';
    if (policy !== 'local') report.add(`${path}.policy`, `policy "${policy}": converted as a per-node limit; for one limit across nodes set the top-level redis: and scope: cluster`);
  }

  function headerOps(headers: Obj, path: string): { set: Record<string, string>; remove: string[] } {
    const set: Record<string, string> = {};
    const remove: string[] = [];
    const put = (n: string, v: unknown, at: string) => {
      if (!headerNameOk(n)) return report.add(at, `"${n}" is not a header name; left out`);
      if (typeof v !== 'string' && typeof v !== 'number') return report.add(at, 'not a plain value; left out');
      if (/\$/.test(String(v))) report.add(at, `"${v}" names APISIX variables; nanogate sends it as written`);
      set[n.toLowerCase()] = String(v);
    };
    const structured = 'set' in headers || 'add' in headers || 'remove' in headers;
    if (!structured) {
      for (const [n, v] of Object.entries(headers)) {
        if (v === '') remove.push(n.toLowerCase());
        else put(n, v, `${path}.${n}`);
      }
      return { set, remove };
    }
    if (isObj(headers.set)) for (const [n, v] of Object.entries(headers.set)) put(n, v, `${path}.set.${n}`);
    if (isObj(headers.add)) {
      report.add(`${path}.add`, 'APISIX adds another value; nanogate sets one value, replacing any other');
      for (const [n, v] of Object.entries(headers.add)) put(n, v, `${path}.add.${n}`);
    }
    for (const n of asArray(headers.remove)) if (typeof n === 'string' && headerNameOk(n)) remove.push(n.toLowerCase());
    return { set, remove };
  }

  /** proxy-rewrite: the upstream path (uri, or the common regex_uri that strips a prefix), Host and headers. */
  function proxyRewrite(p: Plugin, route: Obj, m: Obj) {
    const c = p.config;
    if (str(c.uri)) {
      if ((c.uri as string).includes('$')) report.add(`${p.path}.uri`, `"${c.uri}" uses APISIX variables; not converted`);
      else route.rewrite = c.uri;
    } else if (Array.isArray(c.regex_uri)) {
      const [pattern, replacement] = c.regex_uri as string[];
      const base = typeof m.path === 'string' && m.path.endsWith('/*') ? m.path.slice(0, -2) : typeof m.prefix === 'string' ? m.prefix : undefined;
      const esc = base?.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      // "^/api/(.*)" → "/$1" on /api/*: strip the prefix; "/v2/$1": put another in its place
      const strips = esc !== undefined && (pattern === `^${esc}/(.*)` || pattern === `^${esc}(/.*)`);
      const to = strips ? (pattern.endsWith('/(.*)') ? /^(\/[^$]*?)\/?\$1$/.exec(replacement ?? '') : /^([^$]*)\$1$/.exec(replacement ?? '')) : null;
      if (strips && to) {
        const rest = to[1] === '/' || to[1] === '' ? '' : to[1].replace(/\/$/, '');
        if (rest) route.rewrite = `${rest}/*`;
        else route.stripPrefix = true;
      } else report.add(`${p.path}.regex_uri`, `regex rewrite "${pattern}" → "${replacement}" is not a prefix strip; not converted (rewrite takes :params and *)`);
    }
    if (str(c.host)) route.hostHeader = c.host;
  }

  /** proxy-rewrite's request headers and method (once per route). */
  function proxyRewriteHeaders(p: Plugin, b: PolicyBuilder) {
    const c = p.config;
    if (str(c.method)) report.add(`${p.path}.method`, 'changing the method has no nanogate counterpart; not converted');
    if (isObj(c.headers)) {
      const hs = headerOps(c.headers, `${p.path}.headers`);
      b.addHeaders('request', hs.set, hs.remove);
    }
  }
}

type HeadersPolicy = Partial<Record<'request' | 'response', { set?: Record<string, string>; remove?: string[] }>>;

/** Both header transforms, as APISIX runs a global rule's and the route's: the route's value wins. */
function mergeHeaders(global: HeadersPolicy, route: HeadersPolicy): HeadersPolicy {
  const out: HeadersPolicy = {};
  for (const side of ['request', 'response'] as const) {
    const g = global[side];
    const r = route[side];
    if (!g && !r) continue;
    const set = { ...g?.set, ...r?.set };
    const remove = [...new Set([...(g?.remove ?? []), ...(r?.remove ?? [])])].filter((n) => !(n in set));
    out[side] = { ...(Object.keys(set).length ? { set } : {}), ...(remove.length ? { remove } : {}) };
  }
  return out;
}

/** "a,b" or [a, b] → [a, b] */
function list(v: unknown): string[] {
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
  return asArray(v).filter((x): x is string => typeof x === 'string');
}

/** An APISIX uri as a nanogate match (radixtree: exact, `/p/*`, `/p*`, `:param`). */
function uriMatch(uri: string): { match: Obj; note?: string } | string {
  if (!uri.startsWith('/')) return `uri "${uri}" does not start with /`;
  if (uri === '/*' || uri === '*') return { match: { prefix: '/' } };
  if (uri.endsWith('/*')) {
    const base = uri.slice(0, -2);
    if (/[*]/.test(base)) return `uri "${uri}": only a trailing * is supported`;
    if (base.includes(':')) return { match: { path: uri } };
    return { match: { prefix: base || '/' } }; // also takes "/p" itself (docs/migrating-from-apisix.md)
  }
  if (uri.endsWith('*')) {
    const base = uri.slice(0, -1);
    if (/[*:]/.test(base)) return `uri "${uri}": only a trailing * is supported`;
    const cut = base.length > 1 && base.endsWith('/') ? base.slice(0, -1) : base;
    return { match: { prefix: cut }, note: `"${uri}" matches by text in APISIX ("${base}x" too); nanogate's prefix "${cut}" matches whole segments` };
  }
  if (uri.includes('*')) return `uri "${uri}": only a trailing * is supported`;
  return { match: { path: uri } };
}

/** APISIX `vars` on request headers and query arguments as match conditions, or why not. */
function varsToMatch(vars: unknown): Obj | string {
  const headers: Obj = {};
  const query: Obj = {};
  for (const v of asArray(vars)) {
    if (!Array.isArray(v) || v.length !== 3 || typeof v[0] !== 'string' || typeof v[2] !== 'string') return 'vars other than [name, op, value] triples';
    const [name, op, value] = v as [string, string, string];
    let pred: unknown;
    if (op === '==') pred = value;
    else if (op === '~~') pred = { regex: value };
    else return `vars operator "${op}" is not supported (== and ~~ are)`;
    const h = /^http_([a-z0-9_]+)$/i.exec(name);
    const a = /^arg_(.+)$/.exec(name);
    if (h) headers[h[1].toLowerCase().replace(/_/g, '-')] = pred;
    else if (a) query[a[1]] = pred;
    else return `vars on "${name}" (only http_* headers and arg_* query arguments are)`;
  }
  const out: Obj = {};
  if (Object.keys(headers).length) out.headers = headers;
  if (Object.keys(query).length) out.query = query;
  return out;
}

function chashSource(on: string, key: string): string | undefined {
  if (on === 'consumer') return 'consumer';
  if (on === 'header') return `header:${key.toLowerCase()}`;
  if (on === 'cookie') return `cookie:${key}`;
  if (on !== 'vars') return undefined;
  if (key === 'remote_addr') return 'ip';
  if (key === 'uri' || key === 'request_uri') return 'path';
  const a = /^arg_(.+)$/.exec(key);
  if (a) return `query:${a[1]}`;
  const h = /^http_([a-z0-9_]+)$/i.exec(key);
  if (h) return `header:${h[1].toLowerCase().replace(/_/g, '-')}`;
  const c = /^cookie_(.+)$/.exec(key);
  if (c) return `cookie:${c[1]}`;
  return undefined;
}
