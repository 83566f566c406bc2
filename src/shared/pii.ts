import { createHash, createHmac } from 'node:crypto';

/**
 * PII detection and masking shared by the access log (src/observe/redact.ts: configured patterns over path, query
 * and header values) and the transform policy (src/policies/transform/: bodies). Detectors are compiled once per
 * config; masking a string is a few indexOf pre-checks, then only the regular expressions that can match.
 *
 * Built-in kinds, each with a check beyond its pattern so that look-alikes stay as they are:
 *   card   13-19 digits (spaces or dashes between groups allowed) that pass the Luhn check
 *   iban   two letters, two check digits, 11-30 letters or digits, passing the ISO 13616 mod-97 check
 *   email  local@domain.tld
 *   phone  international form: "+", then 8-15 digits (spaces, dots, dashes, one pair of parentheses allowed)
 * National ids (and anything else) are configured as patterns.
 */

/** What a fully masked value becomes, in logs and bodies alike. */
export const REDACTED = '[redacted]';

export const MASK_KINDS = ['card', 'iban', 'email', 'phone'] as const;
export type MaskKind = (typeof MASK_KINDS)[number];
export const MASK_STYLES = ['full', 'last4', 'hash'] as const;
export type MaskStyle = (typeof MASK_STYLES)[number];

/** A regular expression from a config, compiled with the global flag; the error names what is wrong with it. */
export function compilePattern(source: string): RegExp {
  const re = new RegExp(source, 'g');
  // A pattern that matches the empty string would "mask" between every character.
  if (re.test('')) throw new Error('the pattern matches the empty string');
  re.lastIndex = 0;
  return re;
}

/** Luhn (ISO/IEC 7812-1) over the digits of `s`. */
export function luhn(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** ISO 13616 IBAN check: move the first four characters to the end, letters to 10..35, the number mod 97 is 1. */
export function ibanValid(compact: string): boolean {
  if (compact.length < 15 || compact.length > 34) return false;
  const s = compact.slice(4) + compact.slice(0, 4);
  let rem = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) rem = (rem * 10 + (c - 48)) % 97;
    else if (c >= 65 && c <= 90) rem = (rem * 100 + (c - 55)) % 97;
    else return false;
  }
  return rem === 1;
}

const CARD = /(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)/g;
const IBAN = /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b/g;
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;
const PHONE = /\+\d(?:[ .-]?(?:\(\d{1,4}\)|\d)){7,18}(?!\d)/g;

function onlyDigits(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) out += s[i];
  }
  return out;
}

function alnum(s: string): string {
  return s.replace(/[^A-Za-z0-9]/g, '');
}

interface Detector {
  readonly re: RegExp;
  /** the kind's check beyond the pattern (Luhn, mod-97, digit count); null: every match */
  readonly accept: ((match: string) => boolean) | null;
  /** what a string must contain for the pattern to have a chance: '@' or a digit */
  readonly needsAt: boolean;
  readonly style: MaskStyle;
  /** what is hashed: the match without separators (cards, IBANs, phones), lower-cased (emails) */
  readonly normalize: (match: string) => string;
}

const KIND: Record<MaskKind, { re: RegExp; accept: ((m: string) => boolean) | null; needsAt: boolean; normalize: (m: string) => string }> = {
  card: { re: CARD, accept: (m) => luhn(onlyDigits(m)), needsAt: false, normalize: onlyDigits },
  iban: { re: IBAN, accept: (m) => ibanValid(m.replace(/ /g, '')), needsAt: false, normalize: alnum },
  email: { re: EMAIL, accept: null, needsAt: true, normalize: (m) => m.toLowerCase() },
  phone: {
    re: PHONE,
    accept: (m) => {
      const n = onlyDigits(m).length;
      return n >= 8 && n <= 15;
    },
    needsAt: false,
    normalize: (m) => '+' + onlyDigits(m),
  },
};

export interface DetectorConfig {
  kind: MaskKind | 'pattern';
  /** for kind "pattern" */
  regex?: string;
  style: MaskStyle;
}

/**
 * Masks PII in strings. `hashKey` makes "hash" an HMAC-SHA256 (without it, a plain SHA-256: short values such as
 * card numbers can then be found again by trying them all; set a key where that matters).
 */
export class PiiMasker {
  readonly #detectors: Detector[];
  readonly #hashKey: string | null;
  readonly #anyDigit: boolean;
  readonly #anyAt: boolean;
  readonly #patterns: boolean;

  constructor(detectors: readonly DetectorConfig[], hashKey: string | null = null) {
    this.#hashKey = hashKey;
    // Kinds whose matches can contain another kind's come first: an IBAN's digits are not a card's, a card's not a phone's.
    const order = (d: DetectorConfig) => (d.kind === 'pattern' ? 4 : ['iban', 'card', 'email', 'phone'].indexOf(d.kind));
    this.#detectors = [...detectors].sort((a, b) => order(a) - order(b)).map((d) => {
      if (d.kind === 'pattern') return { re: compilePattern(d.regex!), accept: null, needsAt: false, style: d.style, normalize: (m: string) => m };
      const k = KIND[d.kind];
      return { re: new RegExp(k.re.source, 'g'), accept: k.accept, needsAt: k.needsAt, style: d.style, normalize: k.normalize };
    });
    this.#patterns = this.#detectors.some((d) => d.accept === null && !d.needsAt);
    this.#anyDigit = this.#detectors.some((d) => !d.needsAt);
    this.#anyAt = this.#detectors.some((d) => d.needsAt);
  }

  get empty(): boolean {
    return this.#detectors.length === 0;
  }

  /** `s` with every detected value masked (the same string when nothing was found). */
  mask(s: string): string {
    // Cheap pre-checks: the built-in kinds need a digit or an "@"; configured patterns are always tried.
    const hasAt = this.#anyAt && s.indexOf('@') >= 0;
    const hasDigit = this.#anyDigit && (this.#patterns || /\d/.test(s));
    if (!hasAt && !hasDigit) return s;
    for (let i = 0; i < this.#detectors.length; i++) {
      const d = this.#detectors[i];
      if (d.needsAt ? !hasAt : !hasDigit) continue;
      d.re.lastIndex = 0;
      s = s.replace(d.re, (m) => (d.accept === null || d.accept(m) ? this.apply(m, d.style, d.normalize) : m));
    }
    return s;
  }

  /** One value masked in the given style. */
  apply(value: string, style: MaskStyle, normalize: (v: string) => string = (v) => v): string {
    if (style === 'full') return REDACTED;
    if (style === 'last4') {
      const a = alnum(value);
      return a.length <= 4 ? '*'.repeat(a.length) : '*'.repeat(a.length - 4) + a.slice(-4);
    }
    const input = normalize(value);
    const digest = this.#hashKey !== null ? createHmac('sha256', this.#hashKey).update(input).digest('hex') : createHash('sha256').update(input).digest('hex');
    return 'sha256:' + digest.slice(0, 16);
  }
}
