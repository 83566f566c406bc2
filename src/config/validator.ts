import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { ErrorObject } from 'ajv';
import { ConfigSchema, type Config } from './schema.js';

/**
 * The config validator. Compiling the schema with Ajv takes over a second (1.3–1.6 s measured on a shared 2-core
 * VM), which every `nanogate start` and `validate` paid at import. `npm run build` (scripts/build.mjs) compiles it
 * once into Ajv standalone code beside this file (validator.generated.cjs); a dist/ built by tsc alone falls back
 * to compiling here, on first use, and so does a generated file made from another schema (its digest differs).
 * test/unit/config-validator.test.ts keeps the two in step.
 */

/** Ajv options of both paths. verbose: errors carry their schema, so an unknown key can be matched against the keys allowed there. */
export const AJV_OPTIONS = { allErrors: true, useDefaults: true, strict: false, verbose: true, discriminator: true } as const;

export const GENERATED = fileURLToPath(new URL('./validator.generated.cjs', import.meta.url));

export interface ConfigValidator {
  (value: unknown): value is Config;
  errors?: ErrorObject[] | null;
  /** on the generated one: schemaDigest() of the schema it was made from */
  schemaDigest?: string;
}

/** Digest of the schema as JSON: which schema a generated validator was made from. */
export function schemaDigest(): string {
  return createHash('sha256').update(JSON.stringify(ConfigSchema)).digest('hex');
}

/** The generated validator, when the build made one from this very schema. */
export function generatedValidator(): ConfigValidator | null {
  if (!existsSync(GENERATED)) return null;
  const v = require(GENERATED) as ConfigValidator;
  return v.schemaDigest === schemaDigest() ? v : null;
}

const require = createRequire(import.meta.url);
let validator: ConfigValidator | null = null;

/**
 * The Ajv instance of both paths. `secret` marks credentials (src/config/secrets.ts): an annotation, declared so
 * that Ajv never mistakes it for a typo.
 */
export function createAjv(extra: Record<string, unknown> = {}): import('ajv').Ajv {
  const { Ajv } = require('ajv') as typeof import('ajv');
  const ajv = new Ajv({ ...AJV_OPTIONS, ...extra });
  ajv.addKeyword({ keyword: 'secret', schemaType: ['boolean', 'string'] });
  return ajv;
}

/** Compiles the schema now, with Ajv (the slow path; also what the build turns into standalone code). */
export function compileValidator(): ConfigValidator {
  return createAjv().compile<Config>(ConfigSchema) as ConfigValidator;
}

/** The validator: the prebuilt one when the build made it, otherwise compiled once here. */
export function configValidator(): ConfigValidator {
  if (validator === null) validator = generatedValidator() ?? compileValidator();
  return validator;
}
