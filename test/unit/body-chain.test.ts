import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { BodyChain, openBodyChain, type ChainOwner } from '../../src/pipeline/body-chain.js';
import type { BodySink, PolicyContext, PolicyHooks, ResponseBodyFilter } from '../../src/pipeline/policy.js';

/**
 * The response body chain (src/pipeline/body-chain.ts) between filters and the Exchange: what reaches the client
 * side, in which writes and corks, and when the upstream may go on. The owner records what the Exchange would do.
 */
class Owner implements ChainOwner {
  writes: string[] = [];
  ended = 0;
  failed: string[] = [];
  ready = 0;
  corks = 0;
  inCork = false;
  /** writes that arrived outside a cork (the Exchange must never write so) */
  uncorked = 0;
  filteredChunk(chunk: Buffer, last?: boolean): boolean {
    if (!this.inCork) this.uncorked++;
    this.lastFlags.push(last === true);
    this.writes.push(chunk.toString());
    return true;
  }
  filteredEnd(): void {
    if (!this.inCork) this.uncorked++;
    this.ended++;
  }
  filterFailed(reason: string): void {
    this.failed.push(reason);
  }
  refused: string[] = [];
  lastFlags: boolean[] = [];
  filterRefused(code: string): void {
    this.refused.push(code);
  }
  filterReady(): void {
    this.ready++;
  }
  batch(fn: () => void): void {
    this.corks++;
    this.inCork = true;
    fn();
    this.inCork = false;
  }
}

/** An observer: passes every chunk on unchanged and keeps a copy. */
function tee(kept: string[]): ResponseBodyFilter {
  return {
    changesLength: false,
    onChunk(chunk, sink) {
      kept.push(chunk.toString());
      sink.push(chunk);
      return true;
    },
    onEnd(sink) {
      kept.push('<end>');
      sink.end();
    },
    onClose() {
      kept.push('<close>');
    },
  };
}

/** Upper-cases, in two pushes per chunk (to show they leave as one write). */
const upper = (closed: string[]): ResponseBodyFilter => ({
  changesLength: true,
  onChunk(chunk, sink) {
    const s = chunk.toString().toUpperCase();
    sink.push(Buffer.from(s.slice(0, 1)));
    sink.push(Buffer.from(s.slice(1)));
    return true;
  },
  onEnd(sink) {
    sink.push(Buffer.from('!'));
    sink.end();
  },
  onClose() {
    closed.push('upper');
  },
});

/** Answers later, like a zlib stream: output on the next turn, input held after each chunk until then. */
function later(): ResponseBodyFilter {
  let sink: BodySink | null = null;
  return {
    changesLength: true,
    onChunk(chunk, s) {
      sink = s;
      const copy = Buffer.from(`[${chunk.toString()}]`);
      setImmediate(() => {
        sink!.push(copy);
        sink!.resume();
      });
      return false;
    },
    onEnd(s) {
      setImmediate(() => s.end());
    },
    onClose() {},
  };
}

const ctx = {} as PolicyContext;

test('a chain runs its filters in order; pushes inside a call leave as one write, in the caller\'s cork', () => {
  const owner = new Owner();
  const kept: string[] = [];
  const closed: string[] = [];
  const chain = new BodyChain(owner, [tee(kept), upper(closed)]);
  assert.equal(chain.changesLength, true);
  assert.equal(chain.write(Buffer.from('abc')), true);
  assert.equal(chain.write(Buffer.from('de')), true);
  chain.complete();
  chain.complete(); // a second end (the Exchange may finish before the upstream's end) does nothing
  assert.deepEqual(owner.writes, ['ABC', 'DE', '!']);
  assert.equal(owner.ended, 1);
  assert.equal(owner.corks, 0, 'all of it ran inside the upstream\'s own cork');
  assert.deepEqual(kept, ['abc', 'de', '<end>']);
  chain.close();
  chain.close();
  assert.deepEqual(kept.at(-1), '<close>');
  assert.deepEqual(closed, ['upper'], 'onClose once per filter');
});

test('asynchronous output is written in a cork of its own, and the upstream waits until the filter resumes', async () => {
  const owner = new Owner();
  const chain = new BodyChain(owner, [later()]);
  assert.equal(chain.write(Buffer.from('a')), false, 'the filter held its input');
  assert.equal(chain.ready, false);
  await nextTurn();
  await nextTurn();
  assert.equal(chain.ready, true);
  assert.equal(owner.ready, 1);
  chain.complete();
  await nextTurn();
  await nextTurn();
  assert.deepEqual(owner.writes, ['[a]']);
  assert.equal(owner.ended, 1);
  assert.equal(owner.uncorked, 0);
  assert.ok(owner.corks >= 2);
});

test('after close, late output and ends are ignored; a throwing filter fails the response instead of the worker', async () => {
  const owner = new Owner();
  const chain = new BodyChain(owner, [later()]);
  chain.write(Buffer.from('a'));
  chain.close();
  await nextTurn();
  await nextTurn();
  assert.deepEqual(owner.writes, []);
  assert.equal(owner.ready, 0);

  const broken = new BodyChain(owner, [
    {
      changesLength: true,
      onChunk() {
        throw new Error('boom');
      },
      onEnd() {},
      onClose() {},
    },
  ]);
  assert.doesNotThrow(() => broken.write(Buffer.from('x')));
  assert.deepEqual(owner.failed, ['boom']);
});

test('openBodyChain: null when every hook declines, and an observer-only chain keeps the framing', () => {
  const owner = new Owner();
  const declines: PolicyHooks = { responseBody: () => null };
  assert.equal(openBodyChain([declines, declines], ctx, owner), null);
  const kept: string[] = [];
  const chain = openBodyChain([declines, { responseBody: () => tee(kept) }], ctx, owner)!;
  assert.equal(chain.changesLength, false);
  chain.write(Buffer.from('same'));
  assert.deepEqual(owner.writes, ['same']);
});

test('a filter holding the whole body: its one output says it is all (a Content-Length), and a refusal reaches the owner', async () => {
  const whole = (refuseOn: string | null): ResponseBodyFilter => {
    const parts: Buffer[] = [];
    return {
      changesLength: true,
      holdsHead: true,
      onChunk(chunk) {
        parts.push(Buffer.from(chunk));
        return true;
      },
      onEnd(sink) {
        const all = Buffer.concat(parts).toString();
        if (all === refuseOn) sink.refuse('NG_ERR_TRANSFORM_UPSTREAM_BAD_JSON', 'no');
        else sink.last(Buffer.from(all.toUpperCase()));
      },
      onClose() {},
    };
  };
  const owner = new Owner();
  const chain = new BodyChain(owner, [whole(null), tee([])]);
  assert.equal(chain.holdsHead, true);
  chain.write(Buffer.from('ab'));
  chain.write(Buffer.from('cd'));
  assert.deepEqual(owner.writes, []);
  chain.complete();
  assert.deepEqual(owner.writes, ['ABCD']);
  assert.deepEqual(owner.lastFlags, [true]);
  assert.equal(owner.ended, 1);
  const refusing = new Owner();
  const c2 = new BodyChain(refusing, [whole('bad')]);
  c2.write(Buffer.from('bad'));
  c2.complete();
  assert.deepEqual(refusing.refused, ['NG_ERR_TRANSFORM_UPSTREAM_BAD_JSON']);
  assert.deepEqual(refusing.writes, []);
  // from an asynchronous callback, last() writes and ends in one cork
  const later = new Owner();
  let sinkOf: BodySink | null = null;
  const c3 = new BodyChain(later, [{ changesLength: true, holdsHead: true, onChunk: () => true, onEnd: (sink) => void (sinkOf = sink), onClose() {} }]);
  c3.write(Buffer.from('x'));
  c3.complete();
  await nextTurn();
  sinkOf!.last(Buffer.from('done'));
  assert.deepEqual(later.writes, ['done']);
  assert.deepEqual(later.lastFlags, [true]);
  assert.equal(later.ended, 1);
  assert.equal(later.corks, 1);
});
