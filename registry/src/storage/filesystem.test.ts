import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { getAttribute } from 'fs-xattr';
import { StorageUnavailableError } from './backend.ts';
import { failingStream, sha256, storageContract, uploadStoreContract } from './test-support.ts';
import { FilesystemStorage } from './filesystem.ts';
import { outputOf } from '../test-support/programs.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';

const tempDir = tempDirs('nixery-fs-storage-');

storageContract('filesystem', async () => {
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  return storage;
});

uploadStoreContract('filesystem', async () => {
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  return storage;
});

describe('filesystem storage', () => {
  it('keeps the content type in the user.mime_type xattr, as Nixery does', async () => {
    const storage = new FilesystemStorage(await tempDir());
    await storage.init();
    const { digest } = await storage.putBlob(Buffer.from('{}'), { contentType: 'application/vnd.oci.image.config.v1+json' });
    const attr = await getAttribute(storage.blobPath(digest), 'user.mime_type');
    assert.equal(attr.toString(), 'application/vnd.oci.image.config.v1+json');
  });

  it('leaves no staging file behind after a failed write', async () => {
    const root = await tempDir();
    const storage = new FilesystemStorage(root);
    await storage.init();
    await assert.rejects(storage.putBlob(failingStream(['x']), { contentType: 'x/y' }));
    assert.deepEqual(await fs.readdir(path.join(root, 'staging')), []);
    assert.deepEqual(await fs.readdir(path.join(root, 'blobs', 'sha256')), []);
  });

  it('survives a restart: a new instance on the same directory sees the blobs', async () => {
    const root = await tempDir();
    const first = new FilesystemStorage(root);
    await first.init();
    const { digest } = await first.putBlob(Buffer.from('persisted'), { contentType: 'x/y' });
    const second = new FilesystemStorage(root);
    await second.init();
    assert.equal((await second.readBlob(digest)).toString(), 'persisted');
    assert.equal(digest, sha256('persisted'));
  });

  it('refuses to start on a file system without user xattrs', async () => {
    const mountPoint = await tempDir();
    // ramfs has no xattrs at all (tmpfs gained user xattrs in Linux 6.6). Needs root and
    // mount(8), which CI has; a failure to mount fails this test loudly.
    outputOf('mount', ['-t', 'ramfs', 'ramfs', mountPoint]);
    try {
      const storage = new FilesystemStorage(path.join(mountPoint, 'store'));
      await assert.rejects(storage.init(), (error: unknown) => {
        assert.ok(error instanceof StorageUnavailableError);
        assert.match(error.message, /without user extended attributes/);
        return true;
      });
    } finally {
      outputOf('umount', [mountPoint]);
    }
  });
});

describe('filesystem storage: stale staging files', () => {
  const HOUR = 3600_000;

  /** A staging file last written `ageMs` before the clock's now. */
  async function staged(root: string, name: string, bytes: number, now: number, ageMs: number): Promise<void> {
    const file = path.join(root, 'staging', name);
    await fs.writeFile(file, Buffer.alloc(bytes));
    const when = new Date(now - ageMs);
    await fs.utimes(file, when, when);
  }

  it('deletes those not written for longer than the TTL and keeps younger ones', async () => {
    const root = await tempDir();
    const clock = { now: Date.now() };
    const storage = new FilesystemStorage(root, { stagingTtlMs: HOUR, now: () => clock.now });
    await storage.init();
    await staged(root, 'crashed-writer', 7, clock.now, HOUR + 60_000);
    await staged(root, 'other-replica-writing', 3, clock.now, HOUR - 60_000);
    assert.deepEqual(await storage.sweepStaging(), { objects: 1, bytes: 7 });
    assert.deepEqual(await fs.readdir(path.join(root, 'staging')), ['other-replica-writing']);

    clock.now += 2 * 60_000;
    assert.deepEqual(await storage.sweepStaging(), { objects: 1, bytes: 3 }, 'once it too is past the TTL');
    assert.deepEqual(await fs.readdir(path.join(root, 'staging')), []);
  });

  it('never deletes a staging file this process is writing, however old', async () => {
    const root = await tempDir();
    const clock = { now: Date.now() };
    const storage = new FilesystemStorage(root, { stagingTtlMs: HOUR, now: () => clock.now });
    await storage.init();
    const body = new PassThrough();
    const writing = storage.putBlob(body, { contentType: 'x/y' });
    body.write('first half ');
    const staging = path.join(root, 'staging');
    const deadline = Date.now() + 10_000;
    while ((await fs.readdir(staging)).length === 0) {
      assert.ok(Date.now() < deadline, 'the write never reached staging');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    clock.now += 10 * HOUR;
    assert.deepEqual(await storage.sweepStaging(), { objects: 0, bytes: 0 });
    body.end('second half');
    const { digest } = await writing;
    assert.equal((await storage.readBlob(digest)).toString(), 'first half second half');
    assert.deepEqual(await fs.readdir(staging), []);
  });

  it('sweeps at start-up with the configured TTL', async () => {
    const root = await tempDir();
    await new FilesystemStorage(root).init();
    const now = Date.now();
    await staged(root, 'old', 1, now, 3 * HOUR);
    await staged(root, 'younger-than-the-ttl', 1, now, 2 * HOUR);
    await new FilesystemStorage(root, { stagingTtlMs: 2.5 * HOUR }).init();
    assert.deepEqual(await fs.readdir(path.join(root, 'staging')), ['younger-than-the-ttl']);
  });
});
