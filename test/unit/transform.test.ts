import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePath, ANY_INDEX, ANY_KEY } from '../../src/policies/transform/path.js';
import { applyAll, compileOperation, OperationError, type OperationConfig } from '../../src/policies/transform/ops.js';
import { BodyProgram, ProgramError, type ProgramConfig } from '../../src/policies/transform/program.js';
import { BAD_JSON, transformBody } from '../../src/policies/transform/run.js';
import { PiiMasker, REDACTED, ibanValid, luhn } from '../../src/shared/pii.js';
import { compileTemplate, render, TemplateError } from '../../src/pipeline/template.js';
import type { PolicyContext } from '../../src/pipeline/policy.js';

const run = (ops: OperationConfig[], doc: unknown) => applyAll(ops.map(compileOperation), structuredClone(doc));

test('paths parse into keys, indexes and wildcards; malformed ones are refused with the reason', () => {
  assert.deepEqual(parsePath('user.name'), ['user', 'name']);
  assert.deepEqual(parsePath('items[*].price'), ['items', ANY_INDEX, 'price']);
  assert.deepEqual(parsePath('items[2]'), ['items', 2]);
  assert.deepEqual(parsePath('meta.*'), ['meta', ANY_KEY]);
  assert.deepEqual(parsePath('["a.b"].c'), ['a.b', 'c']);
  assert.deepEqual(parsePath('[*]'), [ANY_INDEX]);
  for (const bad of ['', 'a..b', 'a.', '.a', 'a[', 'a[x]', 'a]b', 'a[0]b', '__proto__.x', 'a["constructor"]', '[""]']) {
    assert.throws(() => parsePath(bad), Error, bad);
  }
});

test('set creates the path, add only fills what is absent, both through wildcards', () => {
  const doc = { user: { name: 'a' }, items: [{ id: 1 }, { id: 2, tag: 'x' }] };
  assert.deepEqual(run([{ set: { path: 'user.tier', value: 'gold' } }, { set: { path: 'meta.v', value: 2 } }], doc), {
    user: { name: 'a', tier: 'gold' },
    items: doc.items,
    meta: { v: 2 },
  });
  const out = run([{ add: { path: 'items[*].tag', value: 'new' } }], doc) as typeof doc;
  assert.deepEqual(out.items.map((i) => i.tag), ['new', 'x']);
  // a value from the config is copied for each place: changing one result does not change another
  const two = run([{ set: { path: 'items[*].o', value: { k: 1 } } }], doc) as { items: { o: { k: number } }[] };
  two.items[0].o.k = 9;
  assert.equal(two.items[1].o.k, 1);
});

test('remove drops fields, elements and wildcards; paths into the wrong shape reach nothing', () => {
  const doc = { a: { b: 1, c: 2 }, list: [1, 2, 3], items: [{ p: 1, q: 2 }, 'str', null], s: 'text' };
  assert.deepEqual(run([{ remove: ['a.b', 'list[1]', 'items[*].q', 's.x', 'nope.deep'] }], doc), {
    a: { c: 2 },
    list: [1, 3],
    items: [{ p: 1 }, 'str', null],
    s: 'text',
  });
  assert.deepEqual(run([{ remove: ['a.*'] }], doc), { ...doc, a: {} });
});

test('rename moves values within each element of a wildcard, and across objects without one', () => {
  const doc = { name: 'n', items: [{ name: 'a' }, { other: 1 }] };
  assert.deepEqual(run([{ rename: { from: 'name', to: 'profile.fullName' } }, { rename: { from: 'items[*].name', to: 'items[*].title' } }], doc), {
    profile: { fullName: 'n' },
    items: [{ title: 'a' }, { other: 1 }],
  });
  assert.throws(() => compileOperation({ rename: { from: 'items[*].name', to: 'other[*].name' } }), (e: OperationError) => e.where === 'rename.to');
  assert.throws(() => compileOperation({ rename: { from: 'items[*]', to: 'items[*]' } }), (e: OperationError) => e.where === 'rename.from');
});

test('keep is an allow-list that fails closed', () => {
  const doc = { id: 1, secret: 's', user: { name: 'n', password: 'p' }, items: [{ id: 1, cost: 2 }, { id: 2 }], odd: 'scalar' };
  assert.deepEqual(run([{ keep: ['id', 'user.name', 'items[*].id', 'odd.inner'] }], doc), { id: 1, user: { name: 'n' }, items: [{ id: 1 }, { id: 2 }] });
  assert.deepEqual(run([{ keep: ['a'] }], 'not an object'), {});
});

test('Luhn and IBAN checks accept valid numbers and refuse near-misses', () => {
  assert.ok(luhn('4111111111111111'));
  assert.ok(!luhn('4111111111111112'));
  assert.ok(ibanValid('DE89370400440532013000'));
  assert.ok(ibanValid('GB82WEST12345698765432'));
  assert.ok(!ibanValid('DE89370400440532013001'));
});

test('the masker finds each kind and leaves look-alikes alone', () => {
  const m = new PiiMasker([
    { kind: 'card', style: 'last4' },
    { kind: 'iban', style: 'full' },
    { kind: 'email', style: 'full' },
    { kind: 'phone', style: 'full' },
    { kind: 'pattern', regex: '\\b\\d{3}-\\d{2}-\\d{4}\\b', style: 'full' },
  ]);
  assert.equal(m.mask('card 4111 1111 1111 1111 ok'), 'card ************1111 ok');
  assert.equal(m.mask('4111-1111-1111-1111'), '************1111');
  assert.equal(m.mask('order 4111111111111112'), 'order 4111111111111112', 'fails Luhn');
  assert.equal(m.mask('IBAN DE89 3704 0044 0532 0130 00.'), `IBAN ${REDACTED}.`);
  assert.equal(m.mask('DE89370400440532013001'), 'DE89370400440532013001', 'wrong check digits');
  assert.equal(m.mask('mail a.b+c@example.co.uk now'), `mail ${REDACTED} now`);
  assert.equal(m.mask('not@mail'), 'not@mail');
  assert.equal(m.mask('call +44 20 7946 0958'), `call ${REDACTED}`);
  assert.equal(m.mask('room +12'), 'room +12', 'too few digits');
  assert.equal(m.mask('date 2024-01-15, id 42'), 'date 2024-01-15, id 42');
  assert.equal(m.mask('ssn 078-05-1120'), `ssn ${REDACTED}`);
  const h = new PiiMasker([{ kind: 'email', style: 'hash' }], 'a-key-of-16-chars-or-more');
  const one = h.mask('A@Example.com');
  assert.match(one, /^sha256:[0-9a-f]{16}$/);
  assert.equal(h.mask('a@example.com'), one, 'emails hash case-insensitively');
  assert.notEqual(new PiiMasker([{ kind: 'email', style: 'hash' }], 'another-key-of-16-chars').mask('a@example.com'), one);
});

const program = (c: Partial<ProgramConfig>, side: 'request' | 'response' = 'response') =>
  new BodyProgram({ operations: [], scopes: [], mask: null, versions: {}, ...c }, side);

test('scope filtering keeps a field only for consumers holding one of its scopes', () => {
  const p = program({ scopes: [{ path: 'salary', anyOf: ['hr:read', 'admin'] }, { path: 'items[*].cost', anyOf: ['finance'] }] });
  const doc = () => ({ name: 'n', salary: 10, items: [{ id: 1, cost: 5 }] });
  assert.deepEqual(p.apply(doc(), ['hr:read'], null), { name: 'n', salary: 10, items: [{ id: 1 }] });
  assert.deepEqual(p.apply(doc(), ['finance', 'admin'], null), doc());
  assert.deepEqual(p.apply(doc(), null, null), { name: 'n', items: [{ id: 1 }] });
});

test('masking by detector, by path and by key name, numbers included', () => {
  const p = program({
    mask: { detect: [{ type: 'card', style: 'last4' }, { type: 'email' }], patterns: [], fields: [{ path: 'user.dob' }], keys: [{ name: 'password', style: 'full' }], style: 'full' },
  });
  const out = p.apply({ note: 'paid with 4111111111111111', card: 4111111111111111, n: 4111111111111112, user: { dob: { y: 1990 }, mail: 'x@y.io' }, deep: [{ password: 'hunter2' }] }, null, null);
  assert.deepEqual(out, { note: 'paid with ************1111', card: '************1111', n: 4111111111111112, user: { dob: REDACTED, mail: REDACTED }, deep: [{ password: REDACTED }] });
});

test('versions map between shapes: request before the operations, response after everything', () => {
  const versions = { '1': [{ rename: { from: 'name', to: 'fullName' } } as OperationConfig] };
  const rq = program({ versions, operations: [{ set: { path: 'seen', value: true } }] }, 'request');
  assert.deepEqual(rq.apply({ name: 'a' }, null, '1'), { fullName: 'a', seen: true });
  assert.deepEqual(rq.apply({ name: 'a' }, null, '2'), { name: 'a', seen: true });
  const rs = program({ versions: { '1': [{ rename: { from: 'fullName', to: 'name' } }] }, scopes: [{ path: 'fullName', anyOf: ['x'] }] });
  assert.deepEqual(rs.apply({ fullName: 'a' }, ['x'], '1'), { name: 'a' });
});

test('program errors name the operation and the part of it', () => {
  assert.throws(() => program({ operations: [{ remove: ['ok'] }, { rename: { from: 'a', to: 'b[' } }] }), (e: ProgramError) => e.where === 'operations[1].rename.to' && /cannot parse/.test(e.message));
  assert.throws(() => program({ scopes: [{ path: 'a..b', anyOf: ['x'] }] }), (e: ProgramError) => e.where === 'scopes[0].path');
});

test('a body that does not parse gives BAD_JSON and nothing else', () => {
  const p = program({ operations: [{ remove: ['a'] }] });
  assert.equal(transformBody(p, 'json', Buffer.from('{"a":1,'), null, null), BAD_JSON);
  assert.equal(transformBody(p, 'json', Buffer.from('{"a":1,"b":2}'), null, null).toString(), '{"b":2}');
});

test('templates compile once into parts; unknown variables are refused; CR and LF never reach a value', () => {
  const ctx = {
    consumerId: 'c-1',
    requestId: 'r-1',
    clientIp: '10.0.0.1',
    routeName: 'users',
    header: (n: string) => (n === 'x-tenant' ? 'acme' : undefined),
    queryParam: (n: string) => (n === 'q' ? 'a\r\nset-cookie: x' : null),
  } as unknown as PolicyContext;
  assert.equal(compileTemplate('plain'), 'plain');
  assert.equal(render(compileTemplate('${consumer.id}/${request.id}/${client.ip}/${route}/${header.X-Tenant}/${header.none}'), ctx), 'c-1/r-1/10.0.0.1/users/acme/');
  assert.equal(render(compileTemplate('q=${query.q}'), ctx), 'q=a  set-cookie: x');
  assert.throws(() => compileTemplate('${consumer.name}'), TemplateError);
  assert.throws(() => compileTemplate('${route'), TemplateError);
});
