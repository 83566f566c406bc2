import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { PromWriter } from '../observe/prometheus.js';
import { expiryWarnings, filesDigest, type PlanListenerTls } from './compile.js';

const DAY_MS = 86_400_000;
const DEBOUNCE_MS = 250;

/**
 * Control-plane side of the listener certificates: watches the directories of the certificate and key files (a
 * renewal tool such as certbot or cert-manager replaces files by rename or symlink swap, so a watch on the file
 * itself would go stale) and asks for a reload when their contents change; the reload recompiles and checks them
 * like any config change, so a broken pair is refused and the previous certificates keep serving. It also repeats
 * the expiry warning daily and renders the expiry gauge. Nothing runs while the listener is plain HTTP.
 */
export class TlsWatch {
  readonly #log: Logger;
  readonly #onChange: () => void;
  #tls: PlanListenerTls | null = null;
  #watchers: FSWatcher[] = [];
  #debounce: NodeJS.Timeout | null = null;
  #daily: NodeJS.Timeout | null = null;

  constructor(log: Logger, onChange: () => void) {
    this.#log = log;
    this.#onChange = onChange;
  }

  /** follows the plan in service: (re)watches the files of its listener, or stops when it has none */
  sync(tls: PlanListenerTls | null): void {
    const same = this.#tls !== null && tls !== null && this.#tls.files.join('\n') === tls.files.join('\n') && this.#tls.watch === tls.watch;
    this.#tls = tls;
    if (same) return;
    this.#stopWatch();
    if (tls === null) return;
    this.#hintMigrate();
    if (tls.watch) {
      for (const dir of new Set(tls.files.map((f) => dirname(f)))) {
        try {
          const w = watch(dir, { persistent: false }, () => this.#poke());
          w.on('error', (err) => this.#log.error({ err: err.message }, 'certificate file watch failed; SIGHUP still reloads'));
          this.#watchers.push(w);
        } catch (err) {
          this.#log.error({ dir, err: (err as Error).message }, 'cannot watch the certificate directory; SIGHUP still reloads');
        }
      }
    }
    if (tls.expiryWarningDays > 0) {
      this.#daily = setInterval(() => this.#warnExpiry(), DAY_MS);
      this.#daily.unref();
    }
  }

  #hinted = false;

  /**
   * A certificate reload swaps listen sockets (src/tls/uws-listener.ts), and unless net.ipv4.tcp_migrate_req is 1 the
   * kernel resets the connections still waiting in the old socket's accept queue instead of handing them to the new
   * one (native-bench/tls.sh, 2026-12-03: 9 to 16 connects reset over 9 reloads at about 1,000 new connections a
   * second with 0, none with 1). Said once per process, where the setting can be read (not under systemd's
   * ProcSubset=pid, nor off Linux).
   */
  #hintMigrate(): void {
    if (this.#hinted) return;
    this.#hinted = true;
    let value: string;
    try {
      value = readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim();
    } catch {
      return;
    }
    if (value === '0') {
      this.#log.info(
        { sysctl: 'net.ipv4.tcp_migrate_req', value: 0 },
        'a certificate reload resets the connections still in the old listen socket\'s queue: set net.ipv4.tcp_migrate_req=1 to hand them to the new one (docs/tls.md)',
      );
    }
  }

  #poke(): void {
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = null;
      const tls = this.#tls;
      if (tls !== null && filesDigest(tls.files, '') !== tls.contentDigest) this.#onChange();
    }, DEBOUNCE_MS);
    this.#debounce.unref();
  }

  #warnExpiry(): void {
    if (this.#tls === null) return;
    for (const w of expiryWarnings(this.#tls)) this.#log.warn(w);
  }

  /** `nanogate_tls_certificate_expiry_seconds{certificate}`: seconds until each served certificate expires (negative: expired) */
  render(out: PromWriter, now = Date.now()): void {
    out.help('nanogate_tls_certificate_expiry_seconds', 'gauge', 'per listener certificate (default, or the first SNI name of its entry): seconds until it expires, negative once expired');
    if (this.#tls === null) return;
    for (const c of this.#tls.certificates) out.sample('nanogate_tls_certificate_expiry_seconds', out.labels('certificate', c.name), Math.round((c.notAfter - now) / 1000));
  }

  #stopWatch(): void {
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = null;
    if (this.#daily) clearInterval(this.#daily);
    this.#daily = null;
  }

  close(): void {
    this.#stopWatch();
    this.#tls = null;
  }
}
