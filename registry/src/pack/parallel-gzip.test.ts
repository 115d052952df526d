import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import { CompressionPool } from './compression-pool.ts';
import type { RawDeflate } from './compression-pool.ts';
import { DeflateError } from './errors.ts';
import { BLOCK_SIZE } from './parallel-gzip.ts';
import { runSync } from '../test-support/programs.ts';
import { collect, parallelGzip } from './test-support.ts';

/** Text-like and incompressible stretches, so blocks differ in how well they compress. */
function sample(size: number): Buffer {
  const out = Buffer.alloc(size);
  let x = 12345;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = (i >> 16) % 2 === 0 ? 97 + ((i * 7) % 13) : x >>> 24;
  }
  return out;
}

/** Feeds `data` in chunks of the given sizes, cycling, so block cuts fall inside chunks. */
function source(data: Buffer, chunkSizes: number[]): Readable {
  const chunks: Buffer[] = [];
  for (let offset = 0, i = 0; offset < data.length; i++) {
    const size = chunkSizes[i % chunkSizes.length]!;
    chunks.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return Readable.from(chunks);
}

async function gzip(data: Buffer, threads: number, chunkSizes = [65536]): Promise<Buffer> {
  return collect(source(data, chunkSizes).pipe(parallelGzip({ pool: new CompressionPool({ threads }) })));
}

describe('parallelGzip', () => {
  const data = sample(5 * BLOCK_SIZE + 4321);

  it('reports the SHA-256 and size of its input, however it was chunked', async () => {
    const stream = parallelGzip({ pool: new CompressionPool({ threads: 2 }) });
    const out = collect(source(data, [1000, 70_000, 333]).pipe(stream));
    assert.deepEqual(await stream.input, { digest: `sha256:${createHash('sha256').update(data).digest('hex')}`, size: data.length });
    assert.ok(zlib.gunzipSync(await out).equals(data));
  });

  it('gives the same bytes for any thread count and input chunking', async () => {
    const one = await gzip(data, 1);
    assert.ok((await gzip(data, 2, [1000, 70_000, 333])).equals(one));
    assert.ok((await gzip(data, 3, [BLOCK_SIZE * 2 + 1])).equals(one));
    assert.ok(zlib.gunzipSync(one).equals(data));
    // Preset dictionaries keep the ratio of one stream.
    assert.ok(one.length < zlib.gzipSync(data).length * 1.01, `${one.length} vs ${zlib.gzipSync(data).length}`);
  });

  it('is one gzip member that stock gzip reads back exactly', async () => {
    assert.equal(runSync('gzip', ['--version']).status, 0, 'gzip is installed (Debian: essential; scripts/setup.sh runs on Debian)');
    const gz = await gzip(data, 2);
    const unzipped = runSync('gzip', ['-dc'], { input: gz });
    assert.equal(unzipped.status, 0, unzipped.stderr);
    assert.ok(unzipped.stdout.equals(data));
    // No file time in the header.
    assert.equal(gz.readUInt32LE(4), 0);
  });

  it('handles empty input and input of whole blocks', async () => {
    assert.equal(zlib.gunzipSync(await gzip(Buffer.alloc(0), 2)).length, 0);
    const whole = sample(2 * BLOCK_SIZE);
    assert.ok(zlib.gunzipSync(await gzip(whole, 2)).equals(whole));
  });

  it('fails the stream with DeflateError when a block fails to deflate', async () => {
    let calls = 0;
    const failing: RawDeflate = (input, options, callback) => {
      if (++calls === 3) setImmediate(() => callback(new Error('zlib broke'), Buffer.alloc(0)));
      else zlib.deflateRaw(input, options, callback);
    };
    const stream = source(data, [65536]).pipe(parallelGzip({ pool: new CompressionPool({ threads: 2, deflateRaw: failing }) }));
    await assert.rejects(collect(stream), (err: unknown) => {
      assert.ok(err instanceof DeflateError);
      assert.equal(err.offset, 2 * BLOCK_SIZE);
      assert.match(err.message, /zlib broke/);
      return true;
    });
  });

  it('deflates at most as many blocks at once as the pool has threads', async () => {
    let running = 0;
    let peak = 0;
    const counting: RawDeflate = (input, options, callback) => {
      peak = Math.max(peak, ++running);
      zlib.deflateRaw(input, options, (err, out) => {
        running--;
        callback(err, out);
      });
    };
    const pool = new CompressionPool({ threads: 2, deflateRaw: counting });
    assert.ok(zlib.gunzipSync(await collect(source(data, [65536]).pipe(parallelGzip({ pool })))).equals(data));
    assert.ok(peak <= 2, `peak ${peak}`);
  });
});
