import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { getAttribute } from 'fs-xattr';
import { StorageUnavailableError } from './backend.ts';
import { failingStream, sha256, storageContract } from './test-support.ts';
import { FilesystemStorage } from './filesystem.ts';
import { outputOf } from '../test-support/programs.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';

const tempDir = tempDirs('nixery-fs-storage-');

storageContract('filesystem', async () => {
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
