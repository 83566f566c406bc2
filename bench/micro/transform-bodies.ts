import type { ProgramConfig } from '../../src/policies/transform/program.js';

/**
 * JSON bodies of about 1 KB, 16 KB and 256 KB for the transform benchmarks: an API-like list of records with
 * strings, numbers, nested objects and PII (emails, card numbers, phones) in some fields.
 */
export function body(targetBytes: number): Buffer {
  const rows: unknown[] = [];
  let size = 20;
  for (let i = 0; size < targetBytes; i++) {
    const row = {
      id: i,
      name: `Customer ${i}`,
      email: `customer${i}@example.com`,
      card: i % 3 === 0 ? '4111 1111 1111 1111' : null,
      phone: '+44 20 7946 0958',
      note: 'order shipped on 2024-01-15, reference 123456789',
      address: { street: `${i} Main Street`, city: 'Springfield', zip: '12345' },
      tags: ['a', 'b', 'c'],
      balance: i * 12.5,
      internal: { cost: i, margin: 0.3 },
    };
    size += JSON.stringify(row).length + 1;
    rows.push(row);
  }
  return Buffer.from(JSON.stringify({ total: rows.length, rows }));
}

export const SIZES: [string, number][] = [
  ['1KB', 1024],
  ['16KB', 16 * 1024],
  ['256KB', 256 * 1024],
];

const none: ProgramConfig = { operations: [], scopes: [], mask: null, versions: {} };

/** What is measured: parse + serialise alone (the floor), operations, masking, and everything together. */
export const PROGRAMS: [string, ProgramConfig][] = [
  ['parse+stringify', none],
  [
    'operations',
    {
      ...none,
      operations: [{ remove: ['rows[*].internal'] }, { rename: { from: 'rows[*].name', to: 'rows[*].fullName' } }, { set: { path: 'meta.version', value: 2 } }],
    },
  ],
  ['mask', { ...none, mask: { detect: [{ type: 'card', style: 'last4' }, { type: 'email' }, { type: 'phone' }, { type: 'iban' }], patterns: [], fields: [], keys: [{ name: 'balance' }], style: 'full' } }],
  [
    'all',
    {
      operations: [{ remove: ['rows[*].internal'] }, { rename: { from: 'rows[*].name', to: 'rows[*].fullName' } }],
      scopes: [{ path: 'rows[*].balance', anyOf: ['finance'] }],
      mask: { detect: [{ type: 'card', style: 'last4' }, { type: 'email' }, { type: 'phone' }, { type: 'iban' }], patterns: [], fields: [], keys: [], style: 'full' },
      versions: {},
    },
  ],
];
