import { constants, createBrotliCompress, createGzip, type BrotliCompress, type BrotliOptions, type Gzip, type ZlibOptions } from 'node:zlib';
import type { BodySink, ResponseBodyFilter } from '../../pipeline/policy.js';

/** What one coding's streams are made with, resolved when the config loads. */
export interface GzipSettings {
  readonly level: number;
  readonly windowBits: number;
  readonly memLevel: number;
}
export interface BrotliSettings {
  readonly quality: number;
  /** lgwin: the sliding window is 2^window - 16 bytes */
  readonly window: number;
}

/**
 * Input a stream takes before onChunk asks the upstream to wait: one upstream read (the lean client hands over up to
 * 64 KiB at a time) is accepted whole, and zlib then compresses it on the libuv thread pool while the next is read.
 */
const INPUT_HIGH_WATER = 64 * 1024;
/** zlib passes its options on to its Transform (node lib/zlib.js), whose buffer sizes @types/node does not list */
type StreamOptions = { highWaterMark: number };

/**
 * One response's compressor: a node:zlib stream (async API: deflate/brotli run on the libuv thread pool, not on the
 * worker's event loop), output passed to the sink as zlib produces it.
 *
 * Every write is flushed (Z_SYNC_FLUSH / BROTLI_OPERATION_FLUSH as the stream's default flush): what the upstream
 * sent in one read leaves compressed before the next arrives, so a slow or event stream (SSE) reaches the client as it
 * comes instead of waiting for 16 KiB of output. The price is a few bytes per read and a compressor that starts its
 * block afresh (docs/compression.md has the measurement: a 5 MB JSON body in 64 KiB writes changes by -0.2 % with
 * gzip, +0.4 % with brotli).
 *
 * Memory per stream is bounded by the settings: deflate 2^(windowBits+2) + 2^(memLevel+9) bytes (256 KiB at 15/8),
 * brotli about 2^window for the window plus its hash tables, INPUT_HIGH_WATER of input and one 16 KiB output chunk.
 * The stream is destroyed when the response ends however it ends (onClose), which frees the native state at once.
 */
export class ZlibFilter implements ResponseBodyFilter {
  readonly changesLength = true;
  readonly #stream: Gzip | BrotliCompress;
  #sink: BodySink | null = null;
  /** onChunk said false: resume the upstream at the stream's next 'drain' */
  #holding = false;
  #closed = false;

  constructor(stream: Gzip | BrotliCompress) {
    this.#stream = stream;
    stream.on('data', (out: Buffer) => {
      if (!this.#closed) this.#sink!.push(out);
    });
    stream.on('end', () => {
      if (!this.#closed) this.#sink!.end();
    });
    stream.on('drain', () => {
      if (this.#holding && !this.#closed) {
        this.#holding = false;
        this.#sink!.resume();
      }
    });
    // A zlib error costs this response only (the sink cuts it); it must never reach the process as an uncaught error.
    stream.on('error', (err: Error) => {
      if (!this.#closed) this.#sink!.fail(`compression failed: ${err.message}`);
    });
  }

  onChunk(chunk: Buffer, sink: BodySink): boolean {
    this.#sink = sink;
    // the chunk is the upstream's read buffer, reused after this call; zlib reads it later, on its thread
    if (this.#stream.write(Buffer.from(chunk))) return true;
    this.#holding = true;
    return false;
  }

  onEnd(sink: BodySink): void {
    this.#sink = sink;
    this.#stream.end();
  }

  onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stream.destroy();
  }
}

export function gzipFilter(s: GzipSettings): ZlibFilter {
  return new ZlibFilter(
    createGzip({
      level: s.level,
      windowBits: s.windowBits,
      memLevel: s.memLevel,
      flush: constants.Z_SYNC_FLUSH,
      finishFlush: constants.Z_FINISH,
      highWaterMark: INPUT_HIGH_WATER,
    } as ZlibOptions & StreamOptions),
  );
}

export function brotliFilter(s: BrotliSettings, sizeHint: number): ZlibFilter {
  const params: Record<number, number> = {
    [constants.BROTLI_PARAM_QUALITY]: s.quality,
    [constants.BROTLI_PARAM_LGWIN]: s.window,
    [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
  };
  // a known length lets brotli size its tables for the body instead of for the window
  if (sizeHint > 0) params[constants.BROTLI_PARAM_SIZE_HINT] = sizeHint;
  return new ZlibFilter(
    createBrotliCompress({
      params,
      flush: constants.BROTLI_OPERATION_FLUSH,
      finishFlush: constants.BROTLI_OPERATION_FINISH,
      highWaterMark: INPUT_HIGH_WATER,
    } as BrotliOptions & StreamOptions),
  );
}
