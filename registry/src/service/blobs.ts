// Blobs: served from storage, and pushed through upload sessions (push/uploads.ts). Blobs are
// shared by every repository here, and a pushed blob is visible under its digest only once it
// has been verified against that digest.
import type { Readable } from 'node:stream';
import { isSha256Digest } from '../oci/image.ts';
import type { Uploads, UploadSession } from '../push/uploads.ts';
import type { BlobDelivery, StorageBackend } from '../storage/backend.ts';

const PUSHED_BLOB_TYPE = 'application/octet-stream';

export class Blobs {
  private readonly storage: StorageBackend;
  private readonly uploads: Uploads;

  constructor(storage: StorageBackend, uploads: Uploads) {
    this.storage = storage;
    this.uploads = uploads;
  }

  /** How to send a stored blob, or null when there is none. */
  deliver(digest: string): Promise<BlobDelivery | null> {
    return this.storage.deliverBlob(digest);
  }

  /** A cross-repository mount: any stored blob can be mounted, since every repository shares them. */
  async canMount(digest: string): Promise<boolean> {
    return isSha256Digest(digest) && (await this.storage.statBlob(digest)) !== null;
  }

  /** Stores a whole pushed blob if it has the digest (throws DigestMismatchError otherwise); returns the digest. */
  async put(body: Readable, digest: string): Promise<string> {
    return (await this.storage.putBlob(body, { contentType: PUSHED_BLOB_TYPE, expectedDigest: digest })).digest;
  }

  /** Stores what an upload session received, as `put`; the session ends either way. */
  async complete(session: UploadSession, digest: string): Promise<string> {
    try {
      return await this.put(this.uploads.contents(session), digest);
    } finally {
      await this.uploads.finish(session);
    }
  }
}
