// The storage contract as a test suite, run against every backend with the same expectations
// (filesystem.test.ts here, e2e/gcs/gcs-storage.test.ts against the GCS emulator); its
// upload-session part (upload-store.ts) is uploadStoreContract, run the same way.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { DigestMismatchError, type StorageBackend } from './backend.ts';
import { isHeld, LeaseLostError, Leases, type HeldLease, type LeaseEvent } from './lease.ts';
import { createLogger } from '../log/logger.ts';
import { UploadGoneError, UploadOffsetError, type UploadState } from './upload-store.ts';

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

    leaseContract(makeBackend);
  });
}

// --- Leases: the compare-and-swap every backend provides, and storage/lease.ts on top of it -----

function leaseContract(makeBackend: () => Promise<StorageBackend>): void {
  const quiet = createLogger({ level: 'error' });
  const record = (holder: string, expiresMs = Date.now() + 60_000) => ({ holder, expiresMs });
  /** Leases sharing one storage and one fake clock; durations long enough that no heartbeat fires in a test. */
  const replicas = (storage: StorageBackend, clock: { now: number }, events: [LeaseEvent, string][] = []) => (holder: string) =>
    new Leases({ storage, holder, durationMs: 600_000, log: quiet, now: () => clock.now, onEvent: (event, name) => events.push([event, name]) });

  describe('leases', () => {
    it('swaps a lease only from the version it has: create when absent, replace, release', async () => {
      const storage = await makeBackend();
      assert.equal(await storage.readLease('build/abc'), null);
      const v1 = await storage.swapLease('build/abc', null, record('a'));
      assert.ok(v1);
      assert.equal(await storage.swapLease('build/abc', null, record('b')), null, 'created once only');
      const read = await storage.readLease('build/abc');
      assert.equal(read?.version, v1);
      assert.equal(read?.record?.holder, 'a');
      const v2 = await storage.swapLease('build/abc', v1, record('a', 42));
      assert.ok(v2 && v2 !== v1);
      assert.equal(await storage.swapLease('build/abc', v1, record('c')), null, 'a stale version is refused');
      assert.deepEqual((await storage.readLease('build/abc'))?.record, record('a', 42));
      assert.ok((await storage.swapLease('build/abc', v2, null)) !== null, 'released');
      const released = await storage.readLease('build/abc');
      assert.equal(released?.record ?? null, null);
      assert.equal(await storage.swapLease('build/abc', v2, record('c')), null, 'the released version is gone too');
      assert.ok(await storage.swapLease('build/abc', released?.version ?? null, record('d')), 'a released lease can be taken again');
      assert.equal((await storage.readLease('build/abc'))?.record?.holder, 'd');
    });

    it('lets exactly one of many concurrent swaps from one version through', async () => {
      const storage = await makeBackend();
      const v1 = await storage.swapLease('gc', null, record('first', 0));
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => storage.swapLease('gc', v1, record(`taker-${i}`))));
      const winners = results.flatMap((v, i) => (v === null ? [] : [i]));
      assert.equal(winners.length, 1, JSON.stringify(results));
      assert.equal((await storage.readLease('gc'))?.record?.holder, `taker-${winners[0]}`);
      // The same from nothing at all: one creator.
      const created = await Promise.all(Array.from({ length: 16 }, (_, i) => storage.swapLease('build/new', null, record(`creator-${i}`))));
      assert.equal(created.filter((v) => v !== null).length, 1);
    });

    it('keeps a held lease from others until it expires, then one of many takers takes it over', async () => {
      const storage = await makeBackend();
      const clock = { now: 1_000_000 };
      const events: [LeaseEvent, string][] = [];
      const replica = replicas(storage, clock, events);
      const a = await replica('a').tryAcquire('build/x');
      assert.ok(isHeld(a));
      const busy = await replica('b').tryAcquire('build/x');
      assert.ok(!isHeld(busy));
      assert.equal(busy.holder, 'a');
      clock.now += 600_001;
      const takers = await Promise.all(Array.from({ length: 10 }, (_, i) => replica(`t${i}`).tryAcquire('build/x')));
      const held = takers.filter(isHeld);
      assert.equal(held.length, 1, 'one taker');
      assert.equal(events.filter(([e]) => e === 'taken_over').length, 1);
      // The old holder finds out on its next renewal, and its release leaves the new holder's lease alone.
      assert.equal(await a.renew(), false);
      assert.ok(a.signal.aborted);
      assert.ok(a.signal.reason instanceof LeaseLostError);
      await a.release();
      assert.equal((await storage.readLease('build/x'))?.record?.holder, held[0]!.holder);
      for (const lease of held) await lease.release();
    });

    it('renewal moves the expiry on, and release frees the lease at once', async () => {
      const storage = await makeBackend();
      const clock = { now: 5_000_000 };
      const replica = replicas(storage, clock);
      const a = (await replica('a').tryAcquire('gc')) as HeldLease;
      clock.now += 400_000;
      assert.equal(await a.renew(), true);
      clock.now += 400_000; // past the first expiry, not the renewed one
      assert.ok(!isHeld(await replica('b').tryAcquire('gc')));
      await a.release();
      const b = await replica('b').tryAcquire('gc');
      assert.ok(isHeld(b));
      await b.release();
    });

    it('a holder that could not renew before its expiry counts the lease as lost, not as still its own', async () => {
      const storage = await makeBackend();
      const clock = { now: 9_000_000 };
      const a = (await replicas(storage, clock)('a').tryAcquire('gc')) as HeldLease;
      clock.now += 600_000;
      assert.equal(await a.renew(), false);
      assert.ok(a.signal.aborted);
      await a.release();
    });
  });
}

// ---- Upload sessions (upload-store.ts): any replica on the storage can continue a push ----

function body(content: string): Readable {
  return Readable.from([Buffer.from(content)]);
}

/** A body that is read only once released: `reading` settles when the store starts to consume it, i.e. after its offset check. */
function gatedBody(content: string): { body: Readable; reading: Promise<void>; release(): void } {
  let started!: () => void;
  let release!: () => void;
  const reading = new Promise<void>((resolve) => (started = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  let sent = false;
  const stream = new Readable({
    read() {
      started();
      if (sent) return;
      sent = true;
      void released.then(() => {
        this.push(Buffer.from(content));
        this.push(null);
      });
    },
  });
  return { body: stream, reading, release };
}

async function listed(storage: StorageBackend): Promise<Map<string, UploadState>> {
  const states = new Map<string, UploadState>();
  for await (const state of storage.uploads.listUploads()) states.set(state.id, state);
  return states;
}

export function uploadStoreContract(name: string, makeBackend: () => Promise<StorageBackend>): void {
  describe(`storage contract, upload sessions: ${name}`, () => {
    it('records a session with its repository, size and last activity; unknown and malformed ids have none', async () => {
      const { uploads } = await makeBackend();
      const id = randomUUID();
      await uploads.createUpload(id, 'team/app', 1_000_000);
      assert.deepEqual(await uploads.uploadState(id), { id, name: 'team/app', size: 0, lastActivityMs: 1_000_000 });
      await uploads.touchUpload(id, 1_060_000);
      assert.equal((await uploads.uploadState(id))?.lastActivityMs, 1_060_000);
      assert.equal(await uploads.uploadState(randomUUID()), null);
      assert.equal(await uploads.uploadState('../../documents'), null);
    });

    it('appends chunks at the end only and reads them back in order', async () => {
      const { uploads } = await makeBackend();
      const id = randomUUID();
      await uploads.createUpload(id, 'team/app', Date.now());
      let size = 0;
      const parts = Array.from({ length: 12 }, (_, i) => `part ${i};`);
      for (const part of parts) size = await uploads.appendUpload(id, size, body(part));
      assert.equal(size, parts.join('').length);
      assert.equal((await uploads.uploadState(id))?.size, size);
      assert.equal(await text(uploads.readUpload(id)), parts.join(''));
    });

    it('refuses a chunk that does not start at the end, with the size, and keeps nothing of it', async () => {
      const { uploads } = await makeBackend();
      const id = randomUUID();
      await uploads.createUpload(id, 'team/app', Date.now());
      await uploads.appendUpload(id, 0, body('01234'));
      for (const offset of [0, 3, 6]) {
        await assert.rejects(uploads.appendUpload(id, offset, body('xx')), (error: unknown) => {
          assert.ok(error instanceof UploadOffsetError);
          assert.equal(error.size, 5);
          return true;
        });
      }
      assert.equal(await text(uploads.readUpload(id)), '01234');
    });

    it('adds nothing for an empty chunk or a failed one, and leaves the offset free', async () => {
      const { uploads } = await makeBackend();
      const id = randomUUID();
      await uploads.createUpload(id, 'team/app', Date.now());
      assert.equal(await uploads.appendUpload(id, 0, body('')), 0);
      await assert.rejects(uploads.appendUpload(id, 0, failingStream(['half a chunk'])), /connection reset/);
      assert.equal((await uploads.uploadState(id))?.size, 0);
      assert.equal(await uploads.appendUpload(id, 0, body('whole')), 5);
      assert.equal(await text(uploads.readUpload(id)), 'whole');
    });

    it('of two appends racing for one offset, keeps exactly the first to finish and refuses the other', async () => {
      const { uploads } = await makeBackend();
      const id = randomUUID();
      await uploads.createUpload(id, 'team/app', Date.now());
      await uploads.appendUpload(id, 0, body('head-'));
      const first = gatedBody('first');
      const second = gatedBody('second!');
      const appendFirst = uploads.appendUpload(id, 5, first.body);
      const appendSecond = uploads.appendUpload(id, 5, second.body);
      await Promise.all([first.reading, second.reading]);
      first.release();
      assert.equal(await appendFirst, 10);
      second.release();
      await assert.rejects(appendSecond, (error: unknown) => {
        assert.ok(error instanceof UploadOffsetError, String(error));
        assert.equal(error.size, 10);
        return true;
      });
      assert.equal(await text(uploads.readUpload(id)), 'head-first');
    });

    it('deletes a session with its bytes: then it is gone for every operation, and a touch does not bring it back', async () => {
      const { uploads } = await makeBackend();
      const id = randomUUID();
      await uploads.createUpload(id, 'team/app', Date.now());
      await uploads.appendUpload(id, 0, body('abc'));
      await uploads.appendUpload(id, 3, body('defg'));
      assert.equal(await uploads.deleteUpload(id), 7);
      assert.equal(await uploads.deleteUpload(id), 0);
      assert.equal(await uploads.uploadState(id), null);
      await uploads.touchUpload(id, Date.now());
      assert.equal(await uploads.uploadState(id), null);
      await assert.rejects(uploads.appendUpload(id, 7, body('h')), UploadGoneError);
      await assert.rejects(text(uploads.readUpload(id)), UploadGoneError);
      assert.equal((await listed({ uploads } as StorageBackend)).has(id), false);
    });

    it('lists every session with its repository, size and last activity, for the purge', async () => {
      const storage = await makeBackend();
      const a = randomUUID();
      const b = randomUUID();
      await storage.uploads.createUpload(a, 'team/a', 1_000);
      await storage.uploads.createUpload(b, 'team/b', 2_000);
      await storage.uploads.appendUpload(b, 0, body('four'));
      const states = await listed(storage);
      assert.deepEqual(states.get(a), { id: a, name: 'team/a', size: 0, lastActivityMs: 1_000 });
      assert.deepEqual(states.get(b), { id: b, name: 'team/b', size: 4, lastActivityMs: 2_000 });
    });
  });
}
