import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { LayerEntry } from './entry.ts';
import { entriesTar } from './tar-writer.ts';
import { readTar } from './test-support.ts';

describe('entriesTar', () => {
  it('holds back a producer of headers-only entries while nobody reads', async () => {
    const total = 20_000;
    let produced = 0;
    async function* links(): AsyncGenerator<LayerEntry> {
      for (let i = 0; i < total; i++) {
        produced++;
        yield { type: 'symlink', name: `bin/${String(i).padStart(6, '0')}`, target: `/nix/store/x-pkg/bin/${i}` };
      }
    }
    const tar = entriesTar(links());
    await sleep(100);
    // A forest is all headers; without pacing it would be buffered whole before the first read.
    assert.ok(produced < 1000, `produced ${produced} entries with no reader`);
    const records = await readTar(tar);
    assert.equal(records.length, total);
    assert.equal(produced, total);
  });

  it('ends with an empty archive for no entries', async () => {
    async function* none(): AsyncGenerator<LayerEntry> {}
    assert.deepEqual(await readTar(entriesTar(none())), []);
  });

  it('errors the stream with the producer error', async () => {
    const failure = new Error('walk failed');
    async function* failing(): AsyncGenerator<LayerEntry> {
      yield { type: 'directory', name: 'a', mode: 0o755 };
      throw failure;
    }
    await assert.rejects(readTar(entriesTar(failing())), (err) => err === failure);
  });
});
