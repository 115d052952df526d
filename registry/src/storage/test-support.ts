// The storage contract as a test suite, run against every backend with the same expectations
// (filesystem.test.ts here, e2e/gcs/gcs-storage.test.ts against the GCS emulator).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { DigestMismatchError, type StorageBackend } from './backend.ts';

export function sha256(data: string | Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A stream that yields some chunks and then fails, like a client that disconnects mid-upload. */
export function failingStream(chunks: string[], error = new Error('connection reset')): Readable {
  return new Readable({
    read() {
      const next = chunks.shift();
      if (next !== undefined) this.push(next);
      else this.destroy(error);
    },
  });
}

export function storageContract(name: string, makeBackend: () => Promise<StorageBackend>): void {
  describe(`storage contract: ${name}`, () => {
    it('stores a blob under its sha256 digest with its size and content type', async () => {
      const storage = await makeBackend();
      const result = await storage.putBlob(Buffer.from('hello layer'), { contentType: 'application/vnd.test' });
      assert.deepEqual(result, { digest: sha256('hello layer'), size: 11, created: true });
      assert.deepEqual(await storage.statBlob(result.digest), {
        digest: sha256('hello layer'),
        size: 11,
        contentType: 'application/vnd.test',
      });
      assert.equal((await storage.readBlob(result.digest)).toString(), 'hello layer');
    });

    it('accepts streams and reports an existing digest as not created', async () => {
      const storage = await makeBackend();
      const first = await storage.putBlob(Readable.from(['a', 'b', 'c']), { contentType: 'x/y' });
      const second = await storage.putBlob(Buffer.from('abc'), { contentType: 'x/y' });
      assert.equal(first.digest, sha256('abc'));
      assert.equal(second.created, false);
      assert.equal(second.digest, first.digest);
    });

    it('never makes a blob visible when its stream fails mid-way', async () => {
      const storage = await makeBackend();
      await assert.rejects(storage.putBlob(failingStream(['partial ', 'content']), { contentType: 'x/y' }), /connection reset/);
      assert.equal(await storage.statBlob(sha256('partial content')), null);
      assert.equal(await storage.statBlob(sha256('partial ')), null);
    });

    it('rejects content that does not match the expected digest and keeps nothing', async () => {
      const storage = await makeBackend();
      const claimed = sha256('what the client promised');
      await assert.rejects(
        storage.putBlob(Buffer.from('what it sent'), { contentType: 'x/y', expectedDigest: claimed }),
        DigestMismatchError,
      );
      assert.equal(await storage.statBlob(claimed), null);
      assert.equal(await storage.statBlob(sha256('what it sent')), null);
    });

    it('delivers whole blobs and byte ranges', async () => {
      const storage = await makeBackend();
      const { digest } = await storage.putBlob(Buffer.from('0123456789'), { contentType: 'x/y' });
      const delivery = await storage.deliverBlob(digest);
      assert.ok(delivery);
      assert.equal(delivery.info.size, 10);
      if (delivery.kind === 'stream') {
        assert.equal(await text(delivery.open()), '0123456789');
        assert.equal(await text(delivery.open({ start: 2, end: 5 })), '2345');
      }
    });

    it('answers unknown and malformed digests with nothing, not an error', async () => {
      const storage = await makeBackend();
      assert.equal(await storage.statBlob(sha256('never stored')), null);
      assert.equal(await storage.statBlob('sha256:../../etc/passwd'), null);
      assert.equal(await storage.deliverBlob(sha256('never stored')), null);
      await assert.rejects(storage.readBlob(sha256('never stored')), { code: 'BLOB_UNKNOWN' });
    });

    it('deletes blobs', async () => {
      const storage = await makeBackend();
      const { digest } = await storage.putBlob(Buffer.from('short-lived'), { contentType: 'x/y' });
      assert.equal(await storage.deleteBlob(digest), true);
      assert.equal(await storage.statBlob(digest), null);
      assert.equal(await storage.deleteBlob(digest), false);
    });

    it('keeps JSON documents under nested keys, replacing them whole', async () => {
      const storage = await makeBackend();
      assert.equal(await storage.getDocument('cache/manifests/abc'), null);
      await storage.putDocument('cache/manifests/abc', { digest: 'sha256:1', layers: [1, 2] });
      await storage.putDocument('cache/manifests/abc', { digest: 'sha256:2' });
      assert.deepEqual(await storage.getDocument('cache/manifests/abc'), { digest: 'sha256:2' });
      assert.equal(await storage.deleteDocument('cache/manifests/abc'), true);
      assert.equal(await storage.getDocument('cache/manifests/abc'), null);
    });

    it('refuses document keys that could escape the store', async () => {
      const storage = await makeBackend();
      for (const key of ['../x', 'a/../../x', '/abs', 'a//b', '']) {
        await assert.rejects(storage.putDocument(key, {}), /invalid storage document key/, key);
      }
    });

    it('lists blobs with size and modification time, and documents by key prefix, for garbage collection', async () => {
      const storage = await makeBackend();
      const before = Date.now() - 60_000;
      const a = await storage.putBlob(Buffer.from('listed a'), { contentType: 'x/y' });
      const b = await storage.putBlob(Buffer.from('listed bb'), { contentType: 'x/y' });
      await storage.putDocument('layers/one', { digest: a.digest });
      await storage.putDocument('pushed/team/app/_tags/v1', { digest: b.digest });
      await storage.putDocument('layersx', { v: 1 });
      const blobs = [];
      for await (const blob of storage.listBlobs()) blobs.push(blob);
      const mine = blobs.filter((x) => x.digest === a.digest || x.digest === b.digest).sort((x, y) => x.size - y.size);
      assert.deepEqual(mine.map((x) => [x.digest, x.size]), [[a.digest, 8], [b.digest, 9]]);
      for (const blob of mine) assert.ok(blob.modifiedMs >= before && blob.modifiedMs <= Date.now() + 60_000, String(blob.modifiedMs));
      const keys = async (prefix?: string) => {
        const out: string[] = [];
        for await (const doc of storage.listDocuments(prefix)) {
          assert.ok(doc.size > 0 && doc.modifiedMs >= before);
          out.push(doc.key);
        }
        return out.sort();
      };
      const all = await keys();
      for (const key of ['layers/one', 'layersx', 'pushed/team/app/_tags/v1']) assert.ok(all.includes(key), key);
      assert.deepEqual(await keys('layers/'), ['layers/one']);
      assert.deepEqual(await keys('pushed/team/'), ['pushed/team/app/_tags/v1']);
      assert.deepEqual(await keys('nothing/'), []);
    });
  });
}
