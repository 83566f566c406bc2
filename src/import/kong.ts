import {
  ImportError,
  type ImportReport,
  type Obj,
  apiKeyProblem,
  asArray,
  consumerIdOk,
  convertActiveCheck,
  corsOriginOk,
  deepEqual,
  headerNameOk,
  isObj,
  jwtKey,
  literalPathOk,
  nodeUrl,
  num,
  scaleWeights,
  sha256Hex,
  splitHostPort,
  str,
  uniqueName,
} from './common.js';
import { type JwtCredential, PolicyBuilder, sharedJwtKey } from './policies.js';

/**
 * Kong's declarative config (decK / DB-less, `_format_version: "3.0"`) to a nanogate config.
 *
 *   services[] ──host──▶ upstreams[].name ?  → upstreams.NAME with targets as nodes
 *                        else                → upstreams.SERVICE with the service host as its one node
 *   services[].routes[] (or routes[] naming their service) → one nanogate route per path
 *   consumers[] with keyauth_credentials / jwt_secrets / acls → consumers (keys as SHA-256 digests)
 *   plugins (global, service, route: the most specific of each name wins, as in Kong) → policies
 *
 * Global plugins become top-level policies; a route carries its own entry only where it differs.
 */

interface Plugin {
  name: string;
  config: Obj;
  path: string;
  /** declared on a service: rate-limit counters are shared by the service's routes */
  service?: string;
}

/** Plugins that guard access: one that cannot be converted keeps its routes out of the output. */
const ACCESS_PLUGINS = new Set([
  'key-auth', 'key-auth-enc', 'jwt', 'basic-auth', 'hmac-auth', 'oauth2', 'oauth2-introspection', 'ldap-auth', 'ldap-auth-advanced',
  'openid-connect', 'mtls-auth', 'acl', 'ip-restriction', 'bot-detection', 'request-termination', 'opa', 'session', 'vault-auth',
]);
/** Plugins with nothing to convert: nanogate does it always. */
const BUILT_IN: Record<string, string> = {
  prometheus: 'metrics are always on (GET /metrics on the admin port)',
};

const DEFAULT_PORT: Record<string, number> = { http: 80, https: 443 };
const KONG_TIMEOUT_MS = 60000;

export function convertKong(doc: unknown, report: ImportReport, text = ''): Obj {
  if (!isObj(doc)) throw new ImportError('not a Kong declarative config: the file is not a YAML/JSON object');
  const version = String(doc._format_version ?? '');
  if (!/^3(\.\d+)?$/.test(version)) {
    throw new ImportError(`not a Kong declarative config for Kong 3.x: _format_version is ${doc._format_version === undefined ? 'missing' : `"${version}"`} ("3.0" expected; decK 1.x files: deck file convert first)`);
  }
  if (text.includes('${{')) report.add('_format_version', 'decK env templates (${{ env "..." }}) are copied as written; render the file first (deck file render)');
  for (const key of Object.keys(doc)) {
    if (['_format_version', '_transform', '_info', '_workspace', 'services', 'routes', 'upstreams', 'targets', 'consumers', 'plugins', 'keyauth_credentials', 'jwt_secrets', 'acls'].includes(key)) continue;
    if (asArray(doc[key]).length || isObj(doc[key])) report.add(key, `"${key}" has no nanogate counterpart here; not converted`);
  }

  const out: { limits?: Obj; upstreams: Obj; consumers: Obj[]; policies?: Obj; routes: Obj[] } = { upstreams: {}, consumers: [], routes: [] };
  const upstreamNames = new Set<string>();
  const routeNames = new Set<string>();

  // ---------------------------------------------------------------- upstreams and targets
  const kongUpstreams = new Map<string, { src: Obj; path: string; targets: { target: string; weight: number; path: string }[] }>();
  asArray(doc.upstreams).forEach((u, i) => {
    if (!isObj(u) || !str(u.name)) return report.add(`upstreams[${i}]`, 'an upstream without a name; not converted');
    const targets = asArray(u.targets).map((t, j) => ({ t, path: `upstreams[${i}].targets[${j}]` }));
    kongUpstreams.set(u.name as string, { src: u, path: `upstreams[${i}]`, targets: [] });
    for (const { t, path } of targets) addTarget(u.name as string, t, path);
  });
  asArray(doc.targets).forEach((t, i) => {
    const ref = isObj(t) ? refName(t.upstream) : undefined;
    if (!ref) return report.add(`targets[${i}]`, 'a target without its upstream; not converted');
    addTarget(ref, t, `targets[${i}]`);
  });
  function addTarget(upstream: string, t: unknown, path: string) {
    const u = kongUpstreams.get(upstream);
    if (!u) return report.add(path, `target of unknown upstream "${upstream}"; not converted`);
    if (!isObj(t) || !str(t.target)) return report.add(path, 'a target without "target"; not converted');
    u.targets.push({ target: t.target as string, weight: num(t.weight) ?? 100, path });
  }
  /** nanogate upstream name of each Kong upstream, made on first use by a service */
  const madeUpstreams = new Map<string, string>();
  function upstreamFor(name: string, scheme: 'http' | 'https', svc: Obj): string | null {
    const key = `${name}\n${scheme}`;
    const made = madeUpstreams.get(key);
    if (made !== undefined) return made;
    const u = kongUpstreams.get(name)!;
    const nodes: Obj[] = [];
    for (const t of u.targets) {
      const hp = splitHostPort(t.target, 8000); // Kong's default target port
      if (!hp) {
        report.add(t.path, `"${t.target}" is not host:port; not converted`);
        continue;
      }
      nodes.push({ url: nodeUrl(scheme, hp.host, hp.port), weight: t.weight });
    }
    const scaled = scaleWeights(nodes.map((n) => n.weight as number));
    if (scaled) {
      nodes.forEach((n, k) => (n.weight = scaled[k]));
      report.add(`${u.path}.targets`, 'weights above 1000 scaled into 0..1000 keeping their ratios');
    }
    if (!nodes.length) {
      report.add(u.path, 'no usable targets; the services using it are not converted');
      madeUpstreams.set(key, '');
      return null;
    }
    const up: Obj = { nodes, ...timeoutsOf(svc) };
    balancerOf(u.src, u.path, up, report);
    const hc = isObj(u.src.healthchecks) ? u.src.healthchecks : undefined;
    if (hc && isObj(hc.active)) {
      const check = convertActiveCheck(hc.active, isObj(hc.passive) ? hc.passive : undefined, `${u.path}.healthchecks`, report, {
        interval: 0, successes: 0, httpFailures: 0, tcpFailures: 0, timeouts: 0,
      });
      if (check) up.healthCheck = check;
    }
    const nm = uniqueName(name, upstreamNames);
    out.upstreams[nm] = up;
    madeUpstreams.set(key, nm);
    return nm;
  }

  // ---------------------------------------------------------------- consumers and credentials
  const consumers = new Map<string, { out: Obj; path: string }>(); // by username and by custom_id
  const jwtCredentials: JwtCredential[] = [];
  asArray(doc.consumers).forEach((c, i) => {
    const path = `consumers[${i}]`;
    if (!isObj(c)) return;
    const id = str(c.username) ?? str(c.custom_id);
    if (!id || !consumerIdOk(id)) return report.add(path, `consumer ${id ? `"${id}"` : 'without username'}: nanogate ids are 1-256 visible ASCII characters; not converted`);
    const nc: Obj = { id, keys: [] as Obj[], jwt: [] as Obj[], roles: [] as string[] };
    out.consumers.push(nc);
    const entry = { out: nc, path };
    consumers.set(id, entry);
    if (str(c.custom_id)) consumers.set(c.custom_id as string, entry);
    asArray(c.keyauth_credentials).forEach((k, j) => addKey(entry, k, `${path}.keyauth_credentials[${j}]`));
    asArray(c.jwt_secrets).forEach((k, j) => addJwt(entry, k, `${path}.jwt_secrets[${j}]`));
    asArray(c.acls).forEach((a, j) => addAcl(entry, a, `${path}.acls[${j}]`));
    for (const kind of ['basicauth_credentials', 'hmacauth_credentials', 'oauth2_credentials', 'mtls_auth_credentials']) {
      if (asArray(c[kind]).length) report.add(`${path}.${kind}`, `${kind.replace(/_credentials$/, '')} credentials have no nanogate method; not converted`);
    }
    asArray(c.plugins).forEach((p, j) => report.add(`${path}.plugins[${j}]`, `consumer-scoped plugin "${isObj(p) ? p.name : '?'}": nanogate policies are per route or global (per-consumer limits: rateLimit plans); not converted`));
  });
  for (const [kind, add] of [['keyauth_credentials', addKey], ['jwt_secrets', addJwt], ['acls', addAcl]] as const) {
    asArray(doc[kind]).forEach((k, i) => {
      const ref = isObj(k) ? refName(k.consumer) : undefined;
      const entry = ref ? consumers.get(ref) : undefined;
      if (!entry) return report.add(`${kind}[${i}]`, `credential of unknown consumer${ref ? ` "${ref}"` : ''}; not converted`);
      add(entry, k, `${kind}[${i}]`);
    });
  }
  function addKey(entry: { out: Obj }, k: unknown, path: string) {
    const key = isObj(k) ? str(k.key) : undefined;
    if (!key) return report.add(path, 'a key-auth credential without a key; not converted');
    const problem = apiKeyProblem(key);
    if (problem) return report.add(path, `${problem}; not converted`);
    (entry.out.keys as Obj[]).push({ keySha256: sha256Hex(key) });
  }
  function addJwt(entry: { out: Obj }, k: unknown, path: string) {
    if (!isObj(k) || !str(k.key)) return report.add(path, 'a jwt secret without "key" (the iss it is found by); not converted');
    if (/^\{vault:\/\//.test(String(k.secret ?? ''))) return report.add(`${path}.secret`, 'a vault reference: put the secret in an environment variable and write ${VAR} in the nanogate config; not converted');
    const key = jwtKey(str(k.algorithm) ?? 'HS256', str(k.secret), str(k.rsa_public_key));
    if (typeof key === 'string') return report.add(path, `${key}; not converted`);
    const id = entry.out.id as string;
    (entry.out.jwt as Obj[]).push({ issuer: k.key, subject: id });
    jwtCredentials.push({ consumer: id, issuer: k.key as string, key, path });
    report.add(path, `Kong finds the consumer by the "iss" claim alone; nanogate maps iss + sub: its tokens must carry iss "${k.key}" and sub "${id}"`);
  }
  function addAcl(entry: { out: Obj }, a: unknown, path: string) {
    const group = isObj(a) ? str(a.group) : undefined;
    if (!group || !/^[\x21-\x2b\x2d-\x7e]{1,128}$/.test(group)) return report.add(path, `acl group ${group ? `"${group}"` : ''} is not a nanogate role (visible ASCII without comma); not converted`);
    (entry.out.roles as string[]).push(group);
  }

  // ---------------------------------------------------------------- plugins by scope
  const globalPlugins: Plugin[] = [];
  const byService = new Map<string, Plugin[]>();
  const byRoute = new Map<string, Plugin[]>();
  const push = (map: Map<string, Plugin[]>, key: string, p: Plugin) => (map.get(key) ?? map.set(key, []).get(key)!).push(p);
  const plugin = (p: unknown, path: string, service?: string): Plugin | null => {
    if (!isObj(p) || !str(p.name)) {
      report.add(path, 'a plugin without a name; not converted');
      return null;
    }
    if (p.enabled === false) return null;
    if (p.consumer !== undefined && p.consumer !== null) {
      report.add(path, `plugin "${p.name}" scoped to a consumer: nanogate policies are per route or global; not converted`);
      return null;
    }
    return { name: p.name as string, config: isObj(p.config) ? p.config : {}, path, service };
  };
  asArray(doc.plugins).forEach((p, i) => {
    const x = plugin(p, `plugins[${i}]`);
    if (!x) return;
    const q = p as Obj;
    const route = refName(q.route);
    const service = refName(q.service);
    if (route) push(byRoute, route, x);
    else if (service) push(byService, service, { ...x, service });
    else globalPlugins.push(x);
  });

  // ---------------------------------------------------------------- services and routes
  const routesOf = new Map<string, { r: Obj; path: string }[]>();
  asArray(doc.routes).forEach((r, i) => {
    const ref = isObj(r) ? refName(r.service) : undefined;
    if (!ref) return report.add(`routes[${i}]`, 'a route without a service answers 503 in Kong; not converted');
    (routesOf.get(ref) ?? routesOf.set(ref, []).get(ref)!).push({ r: r as Obj, path: `routes[${i}]` });
  });

  const globalConverted = convertPlugins(globalPlugins, report);
  if (globalConverted.blocked) throw new ImportError(`global plugins: ${globalConverted.blocked}; nothing can be converted safely`);
  if (Object.keys(globalConverted.policies).length) out.policies = globalConverted.policies;
  if (globalConverted.maxBodyBytes !== undefined) out.limits = { maxBodyBytes: globalConverted.maxBodyBytes };

  asArray(doc.services).forEach((s, i) => {
    const path = `services[${i}]`;
    if (!isObj(s)) return;
    const name = str(s.name) ?? str(s.id) ?? `service-${i}`;
    const nested = asArray(s.routes).map((r, j) => ({ r: r as Obj, path: `${path}.routes[${j}]` }));
    const routes = [...nested, ...(routesOf.get(name) ?? []), ...(str(s.id) ? (routesOf.get(s.id as string) ?? []) : [])];
    if (s.enabled === false) return report.add(path, `service "${name}" is disabled; not converted`);
    const target = serviceTarget(s);
    if (typeof target === 'string') return report.add(path, `${target}; the service and its ${routes.length} route(s) are not converted`);
    const servicePlugins: Plugin[] = [];
    asArray(s.plugins).forEach((p, j) => {
      const x = plugin(p, `${path}.plugins[${j}]`, name);
      if (x) servicePlugins.push(x);
    });
    servicePlugins.push(...(byService.get(name) ?? []));

    let upstream: string | null;
    let hostHeader: string | undefined;
    if (kongUpstreams.has(target.host)) {
      upstream = upstreamFor(target.host, target.scheme, s);
      // Kong sends the chosen target's host:port as Host (as nanogate does) unless the upstream sets host_header
      hostHeader = str(kongUpstreams.get(target.host)!.src.host_header);
    } else {
      upstream = uniqueName(name, upstreamNames);
      out.upstreams[upstream] = { nodes: [{ url: nodeUrl(target.scheme, target.host, target.port) }], ...timeoutsOf(s) };
    }
    if (upstream === null || upstream === '') return;
    const retries = num(s.retries);
    if (retries !== undefined && retries !== 5) report.add(`${path}.retries`, `retries ${retries}: nanogate retries by failure kind under a retry budget (routes[].retries, docs/resilience.md); not converted`);
    const write = num(s.write_timeout);
    if (write !== undefined && write !== KONG_TIMEOUT_MS) report.add(`${path}.write_timeout`, 'nanogate has no separate write timeout; not converted');
    // an upstream shared by services with other timeouts: those go on the routes
    const own = timeoutsOf(s);
    const up = out.upstreams[upstream] as Obj;
    const timeouts: Obj = {};
    if (own.connectTimeoutMs !== up.connectTimeoutMs) timeouts.connectMs = own.connectTimeoutMs;
    if (own.readTimeoutMs !== up.readTimeoutMs) timeouts.readMs = own.readTimeoutMs;
    for (const { r, path: rpath } of routes) convertRoute(r, rpath, name, upstream, target.path, hostHeader, servicePlugins, timeouts);
  });

  function convertRoute(r: Obj, path: string, service: string, upstream: string, servicePath: string, upstreamHost: string | undefined, servicePlugins: Plugin[], timeouts: Obj) {
    const name = str(r.name) ?? str(r.id) ?? `${service}-route`;
    const protocols = asArray(r.protocols).filter((p) => p !== 'http' && p !== 'https');
    if (protocols.length) return report.add(`${path}.protocols`, `route "${name}": protocols ${protocols.join(', ')} are not proxied by nanogate (HTTP only); not converted`);
    for (const field of ['snis', 'sources', 'destinations']) {
      if (asArray(r[field]).length) return report.add(`${path}.${field}`, `route "${name}": matching on ${field} is not supported; not converted (it would take more requests than in Kong)`);
    }
    const routePlugins: Plugin[] = [];
    asArray(r.plugins).forEach((p, j) => {
      const x = plugin(p, `${path}.plugins[${j}]`);
      if (x) routePlugins.push(x);
    });
    routePlugins.push(...(byRoute.get(name) ?? []), ...(str(r.id) ? (byRoute.get(r.id as string) ?? []) : []));

    // the most specific plugin of each name wins: route, then service, then global
    const effective = new Map<string, Plugin>();
    for (const p of [...globalPlugins, ...servicePlugins, ...routePlugins]) effective.set(p.name, p);
    const methods = asArray(r.methods).filter((m): m is string => typeof m === 'string').map((m) => m.toUpperCase());
    const converted = convertPlugins([...effective.values()], report);
    if (converted.blocked) return report.add(path, `route "${name}" is left out, not served unguarded: ${converted.blocked}`);
    const policies: Obj = {};
    for (const [k, v] of Object.entries(converted.policies)) if (!deepEqual(v, globalConverted.policies[k])) policies[k] = v;
    for (const k of Object.keys(globalConverted.policies)) {
      if (!(k in converted.policies)) report.add(path, `the global "${k}" policy also applies to this route in nanogate`);
    }

    const match: Obj = {};
    if (methods.length) match.methods = methods;
    const hosts: string[] = [];
    for (const [j, h] of asArray(r.hosts).entries()) {
      if (typeof h !== 'string') continue;
      const host = h.replace(/:\d+$/, '');
      if (!/^(\*\.)?[A-Za-z0-9.-]+$/.test(host)) return report.add(`${path}.hosts[${j}]`, `route "${name}": host "${h}" (a suffix wildcard) is not supported; not converted`);
      if (host !== h) report.add(`${path}.hosts[${j}]`, `the port of "${h}" is dropped: nanogate matches hosts without the port`);
      hosts.push(host);
    }
    if (hosts.length) match.hosts = hosts;
    if (isObj(r.headers) && Object.keys(r.headers).length) {
      const headers: Obj = {};
      for (const [h, values] of Object.entries(r.headers)) {
        const list = asArray(values).filter((v): v is string => typeof v === 'string');
        if (!headerNameOk(h) || list.length !== 1) return report.add(`${path}.headers.${h}`, `route "${name}": a header condition with ${list.length} values (nanogate matches one value or one regex); not converted`);
        headers[h] = list[0].startsWith('~*') ? { regex: list[0].slice(2) } : list[0];
        if (list[0].startsWith('~*')) report.add(`${path}.headers.${h}`, 'Kong header regexes are case-insensitive; the nanogate regex is case-sensitive');
      }
      match.headers = headers;
    }

    const paths = asArray(r.paths).filter((p): p is string => typeof p === 'string');
    if (!paths.length) paths.push('/');
    const stripPath = r.strip_path !== false; // Kong's default is true
    const preserveHost = r.preserve_host === true;
    paths.forEach((p, j) => {
      const ppath = `${path}.paths[${j}]`;
      if (p.startsWith('~')) return report.add(ppath, `route "${name}": regex path "${p}": nanogate matches exact paths, :params, /* wildcards and prefixes; not converted`);
      if (!literalPathOk(p)) return report.add(ppath, `route "${name}": path "${p}" is not a literal prefix; not converted`);
      const prefix = p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
      const route: Obj = { name: uniqueName(paths.length > 1 ? `${name}-${j + 1}` : name, routeNames), match: { ...match, prefix } };
      route.upstream = upstream;
      const base = servicePath === '/' ? '' : servicePath.replace(/\/$/, '');
      if (stripPath) {
        if (base) route.rewrite = `${base}/*`;
        else if (prefix !== '/') route.stripPrefix = true;
      } else if (base) route.rewrite = prefix === '/' ? `${base}/*` : `${base}${prefix}/*`;
      if (preserveHost) route.hostHeader = 'preserve';
      else if (upstreamHost) route.hostHeader = upstreamHost;
      if (Object.keys(timeouts).length) route.timeouts = timeouts;
      if (converted.maxBodyBytes !== undefined && converted.maxBodyBytes !== globalConverted.maxBodyBytes) route.maxBodyBytes = converted.maxBodyBytes;
      if (Object.keys(policies).length) route.policies = policies;
      out.routes.push(route);
    });
    if (r.regex_priority !== undefined && num(r.regex_priority) !== 0) report.add(`${path}.regex_priority`, 'nanogate ranks routes by specificity (README, "Which route wins"); regex_priority is not carried over');
  }

  // consumers: drop empty lists so the output reads like a hand-written config
  for (const c of out.consumers) for (const k of ['keys', 'jwt', 'roles']) if (!(c[k] as unknown[]).length) delete c[k];
  // the jwt method of every route verifies with the key all jwt consumers share (checked in convertPlugins)
  return out;

  // ---------------------------------------------------------------- plugin conversion
  function convertPlugins(plugins: Plugin[], report: ImportReport): PolicyBuilder {
    const b = new PolicyBuilder();
    let acl: Plugin | undefined;
    for (const p of plugins) {
      const c = p.config;
      switch (p.name) {
        case 'key-auth': {
          const names = asArray(c.key_names).filter((n): n is string => typeof n === 'string');
          const keyName = names[0] ?? 'apikey';
          if (names.length > 1) report.add(`${p.path}.config.key_names`, `only the first key name, "${keyName}", is read`);
          const inHeader = c.key_in_header !== false;
          const inQuery = c.key_in_query !== false;
          if (c.key_in_body === true) report.add(`${p.path}.config.key_in_body`, 'keys in the request body are not read');
          if (!inHeader && !inQuery) {
            b.block(`${p.path}: key-auth reads the key from the body only`);
            break;
          }
          if (!headerNameOk(keyName)) {
            b.block(`${p.path}: key name "${keyName}" is not a header name`);
            break;
          }
          const method: Obj = {};
          if (inHeader) method.header = keyName;
          if (inQuery) method.query = keyName;
          if (str(c.anonymous)) report.add(`${p.path}.config.anonymous`, `requests without a key pass with no consumer (not as consumer "${c.anonymous}")`);
          b.addAuth('apiKey', method, { hideCredentials: c.hide_credentials === true, anonymous: !!str(c.anonymous), identityHeader: 'X-Consumer-Username' });
          break;
        }
        case 'jwt': {
          if ((str(c.key_claim_name) ?? 'iss') !== 'iss') {
            b.block(`${p.path}: key_claim_name "${c.key_claim_name}": nanogate finds jwt consumers by iss + sub`);
            break;
          }
          if (c.secret_is_base64 === true) {
            b.block(`${p.path}: secret_is_base64: nanogate takes HS secrets as UTF-8 text`);
            break;
          }
          const key = sharedJwtKey(jwtCredentials);
          if (typeof key === 'string') {
            b.block(`${p.path}: ${key}`);
            break;
          }
          const headers = asArray(c.header_names).map((h) => String(h).toLowerCase());
          if (headers.length && !(headers.length === 1 && headers[0] === 'authorization')) report.add(`${p.path}.config.header_names`, 'tokens are read from Authorization: Bearer only');
          const params = asArray(c.uri_param_names);
          if (params.length && !(params.length === 1 && params[0] === 'jwt')) report.add(`${p.path}.config.uri_param_names`, 'tokens in query parameters are not read');
          if (asArray(c.cookie_names).length) report.add(`${p.path}.config.cookie_names`, 'tokens in cookies are not read');
          if ((num(c.maximum_expiration) ?? 0) > 0) report.add(`${p.path}.config.maximum_expiration`, 'a longest token lifetime is not enforced');
          const claims = asArray(c.claims_to_verify).filter((x): x is string => x === 'exp' || x === 'nbf');
          const issuers = [...new Set(jwtCredentials.map((j) => j.issuer))];
          const method: Obj = {
            keys: [key],
            issuer: issuers.length === 1 ? issuers[0] : issuers,
            requiredClaims: [...new Set([...claims, 'sub'])],
            mapConsumer: 'required',
          };
          if (str(c.anonymous)) report.add(`${p.path}.config.anonymous`, `requests without a token pass with no consumer (not as consumer "${c.anonymous}")`);
          b.addAuth('jwt', method, { hideCredentials: false, anonymous: !!str(c.anonymous), identityHeader: 'X-Consumer-Username' });
          break;
        }
        case 'acl':
          acl = p;
          break;
        case 'rate-limiting':
          rateLimiting(p, b, report);
          break;
        case 'cors': {
          const origins = asArray(c.origins).filter((o): o is string => typeof o === 'string');
          const ok = origins.filter(corsOriginOk);
          for (const o of origins.filter((x) => !corsOriginOk(x))) report.add(`${p.path}.config.origins`, `origin "${o}" looks like a regex; nanogate takes exact origins and one * wildcard; left out`);
          if (origins.length && !ok.length) {
            report.add(p.path, 'no origin left to allow; cors not converted');
            break;
          }
          const cors: Obj = { origins: ok.length ? ok : ['*'] };
          const m = asArray(c.methods).filter((x): x is string => typeof x === 'string' && /^[A-Z]{1,16}$/.test(x));
          if (m.length) cors.methods = m;
          const h = asArray(c.headers).filter((x): x is string => typeof x === 'string' && headerNameOk(x));
          if (h.length) cors.allowHeaders = h;
          const e = asArray(c.exposed_headers).filter((x): x is string => typeof x === 'string' && headerNameOk(x));
          if (e.length) cors.exposeHeaders = e;
          if (c.credentials === true) cors.credentials = true;
          const age = num(c.max_age);
          if (age !== undefined) cors.maxAge = Math.min(86400, Math.max(0, Math.round(age)));
          if (c.preflight_continue === true) report.add(`${p.path}.config.preflight_continue`, 'preflights are always answered by nanogate, never forwarded');
          b.policies.cors = cors;
          break;
        }
        case 'request-size-limiting': {
          const unit = ({ bytes: 1, kilobytes: 1024, megabytes: 1048576 } as Record<string, number>)[str(c.size_unit) ?? 'megabytes'];
          const size = num(c.allowed_payload_size) ?? 128;
          if (unit === undefined || size < 0) report.add(`${p.path}.config.size_unit`, `size_unit "${c.size_unit}" is not bytes, kilobytes or megabytes; not converted`);
          else b.maxBodyBytes = Math.round(size * unit);
          break;
        }
        case 'ip-restriction': {
          const allow = asArray(c.allow).filter((x): x is string => typeof x === 'string');
          const deny = asArray(c.deny).filter((x): x is string => typeof x === 'string');
          if (!allow.length && !deny.length) break;
          const ip: Obj = {};
          if (allow.length) ip.allow = allow;
          if (deny.length) ip.deny = deny;
          if (num(c.status) !== undefined && c.status !== 403) report.add(`${p.path}.config.status`, `refusals are 403 NG_ERR_ACCESS_IP_DENIED, not ${c.status}`);
          b.policies.ipRestriction = ip;
          break;
        }
        case 'request-transformer':
        case 'response-transformer':
          transformer(p, p.name === 'request-transformer' ? 'request' : 'response', b, report);
          break;
        default:
          if (p.name in BUILT_IN) break;
          if (ACCESS_PLUGINS.has(p.name)) b.block(`${p.path}: plugin "${p.name}" has no nanogate counterpart`);
          else report.add(p.path, `plugin "${p.name}" has no nanogate counterpart; not converted`);
      }
    }
    if (acl) {
      const allow = asArray(acl.config.allow).filter((x): x is string => typeof x === 'string');
      if (asArray(acl.config.deny).length) b.block(`${acl.path}: acl deny lists have no nanogate counterpart (authorize lists what is required)`);
      else if (!b.authMethods) b.block(`${acl.path}: acl without an authentication plugin`);
      else if (allow.length) b.policies.authorize = { subscription: false, roles: { anyOf: allow } };
    }
    if (b.authMethods > 1) report.add(plugins.find((p) => p.name === 'jwt')!.path, 'with key-auth and jwt on one route Kong requires both (unless anonymous is set); nanogate accepts either');
    return b;
  }

  function rateLimiting(p: Plugin, b: PolicyBuilder, report: ImportReport) {
    const c = p.config;
    const by = str(c.limit_by) ?? 'consumer';
    let key: string;
    if (by === 'consumer') key = 'consumer';
    else if (by === 'credential') {
      key = 'consumer';
      report.add(`${p.path}.config.limit_by`, 'counted per consumer, not per credential');
    } else if (by === 'ip') key = 'ip';
    else if (by === 'service') key = 'route';
    else if (by === 'header' && str(c.header_name) && headerNameOk(c.header_name as string)) key = `header:${(c.header_name as string).toLowerCase()}`;
    else {
      report.add(`${p.path}.config.limit_by`, `limit_by "${by}" has no nanogate key; rate-limiting not converted`);
      return;
    }
    const limits: Obj[] = [];
    for (const per of ['second', 'minute', 'hour', 'day'] as const) {
      const rate = num(c[per]);
      if (rate === undefined) continue;
      if (!Number.isInteger(rate) || rate < 1) {
        report.add(`${p.path}.config.${per}`, `${rate} is not a whole number of requests of 1 or more; not converted`);
        continue;
      }
      const limit: Obj = { key, algorithm: 'slidingWindow', rate, per };
      // a service's plugin counts across all its routes: one named bucket for them
      if (p.service) limit.name = `${p.service}-${per}`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
      limits.push(limit);
    }
    let quota: Obj | undefined;
    const month = num(c.month);
    if (month !== undefined && Number.isInteger(month) && month >= 1) quota = { per: 'month', limit: month, key };
    if (num(c.year) !== undefined) report.add(`${p.path}.config.year`, 'a yearly limit has no nanogate counterpart (quotas are per day or month); not converted');
    const policy = str(c.policy) ?? 'local';
    if (policy !== 'local') report.add(`${p.path}.config.policy`, `policy "${policy}": converted as a per-node limit; for one limit across nodes set the top-level redis: and scope: cluster`);
    if (num(c.error_code) !== undefined && c.error_code !== 429) report.add(`${p.path}.config.error_code`, `refusals are 429 NG_ERR_RATE_LIMITED, not ${c.error_code}`);
    if (!limits.length && !quota) return;
    b.addLimits(limits, quota, c.hide_client_headers === true);
  }

  function transformer(p: Plugin, side: 'request' | 'response', b: PolicyBuilder, report: ImportReport) {
    const c = p.config;
    const set: Record<string, string> = {};
    const headersOf = (section: string): [string, string][] => {
      const s = c[section];
      const list = isObj(s) ? asArray(s.headers) : [];
      const pairs: [string, string][] = [];
      for (const h of list) {
        if (typeof h !== 'string') continue;
        const at = h.indexOf(':');
        const name = at < 0 ? h : h.slice(0, at);
        if (!headerNameOk(name)) {
          report.add(`${p.path}.config.${section}.headers`, `"${h}" is not a header name; left out`);
          continue;
        }
        const value = at < 0 ? '' : h.slice(at + 1);
        if (value.includes('$(')) report.add(`${p.path}.config.${section}.headers`, `"${h}" is a template; nanogate sends the value as written`);
        pairs.push([name.toLowerCase(), value]);
      }
      return pairs;
    };
    const remove = headersOf('remove').map(([n]) => n);
    const note: Record<string, string> = {
      add: 'Kong adds these only when absent; nanogate sets them, replacing a value the client (or upstream) sent',
      replace: 'Kong replaces these only when present; nanogate sets them always',
      append: 'Kong appends another value; nanogate sets one value, replacing any other',
    };
    for (const section of ['add', 'replace', 'append']) {
      const pairs = headersOf(section);
      if (!pairs.length) continue;
      report.add(`${p.path}.config.${section}.headers`, note[section]);
      for (const [n, v] of pairs) set[n] = v;
    }
    if (headersOf('rename').length) report.add(`${p.path}.config.rename.headers`, 'header renames have no nanogate counterpart; not converted');
    for (const section of ['remove', 'rename', 'replace', 'add', 'append']) {
      const s = c[section];
      if (!isObj(s)) continue;
      for (const field of ['querystring', 'body', 'json', 'json_types', 'uri']) {
        const v = s[field];
        if ((Array.isArray(v) && v.length) || (typeof v === 'string' && v)) report.add(`${p.path}.config.${section}.${field}`, `${field} transforms have no nanogate counterpart; not converted`);
      }
    }
    if (str(c.http_method)) report.add(`${p.path}.config.http_method`, 'changing the method has no nanogate counterpart; not converted');
    b.addHeaders(side, set, remove);
  }
}

/** A foreign key in decK: "name", { name } or { id }. */
function refName(v: unknown): string | undefined {
  if (typeof v === 'string') return v || undefined;
  if (isObj(v)) return str(v.name) ?? str(v.id);
  return undefined;
}

/** A service's scheme, host, port and path, from `url` or the separate fields. */
function serviceTarget(s: Obj): { scheme: 'http' | 'https'; host: string; port: number; path: string } | string {
  let protocol = str(s.protocol) ?? 'http';
  let host = str(s.host);
  let port = num(s.port);
  let path = str(s.path) ?? '';
  if (str(s.url)) {
    let u: URL;
    try {
      u = new URL(s.url as string);
    } catch {
      return `url "${s.url}" is not a URL`;
    }
    protocol = u.protocol.replace(/:$/, '');
    host = u.hostname.replace(/^\[|\]$/g, '');
    port = u.port ? Number(u.port) : undefined;
    path = u.pathname === '/' && !(s.url as string).replace(/^[a-z]+:\/\/[^/]+/, '').startsWith('/') ? '' : u.pathname;
  }
  if (protocol !== 'http' && protocol !== 'https') return `protocol "${protocol}" is not proxied by nanogate (http and https are)`;
  if (!host) return 'no host';
  return { scheme: protocol, host, port: port ?? DEFAULT_PORT[protocol], path: path === '/' ? '' : path };
}

function timeoutsOf(s: Obj): Obj {
  const out: Obj = {};
  const connect = num(s.connect_timeout) ?? KONG_TIMEOUT_MS;
  const read = num(s.read_timeout) ?? KONG_TIMEOUT_MS;
  out.connectTimeoutMs = Math.min(3_600_000, Math.max(1, Math.round(connect)));
  out.readTimeoutMs = Math.min(3_600_000, Math.max(1, Math.round(read)));
  return out;
}

function balancerOf(u: Obj, path: string, up: Obj, report: ImportReport): void {
  const algorithm = str(u.algorithm) ?? 'round-robin';
  if (algorithm === 'round-robin') return;
  if (algorithm === 'least-connections') up.balancer = 'least-request';
  else if (algorithm === 'latency') up.balancer = 'peak-ewma';
  else if (algorithm === 'consistent-hashing') {
    const sources: string[] = [];
    for (const [on, hdr, cookie, query, where] of [
      [u.hash_on, u.hash_on_header, u.hash_on_cookie, u.hash_on_query_arg, 'hash_on'],
      [u.hash_fallback, u.hash_fallback_header, u.hash_on_cookie, u.hash_fallback_query_arg, 'hash_fallback'],
    ] as const) {
      const s = hashSource(str(on) ?? 'none', str(hdr), str(cookie), str(query));
      if (s === null) continue;
      if (s === undefined) report.add(`${path}.${where}`, `hashing on "${on}" has no nanogate source; left out`);
      else sources.push(s);
    }
    if (!sources.length) return; // Kong with hash_on none balances round robin
    up.balancer = 'consistent-hash';
    up.balancing = { consistentHash: { hashOn: sources } };
  } else report.add(`${path}.algorithm`, `algorithm "${algorithm}" has no nanogate counterpart; round robin`);
}

/** null: nothing to hash on; undefined: a source nanogate lacks. */
function hashSource(on: string, header?: string, cookie?: string, query?: string): string | null | undefined {
  switch (on) {
    case 'none':
      return null;
    case 'consumer':
      return 'consumer';
    case 'ip':
      return 'ip';
    case 'path':
      return 'path';
    case 'header':
      return header ? `header:${header.toLowerCase()}` : undefined;
    case 'cookie':
      return cookie ? `cookie:${cookie}` : undefined;
    case 'query_arg':
      return query ? `query:${query}` : undefined;
    default:
      return undefined;
  }
}
