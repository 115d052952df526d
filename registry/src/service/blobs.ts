// Blobs: served from storage, pushed through upload sessions (push/uploads.ts), and deleted. Blobs
// are shared by every repository here, and a pushed blob is visible under its digest only once it
// has been verified against that digest. A pushed blob is stored as PUSHED_BLOB_TYPE; what the
// registry built (layers, configs, manifests) has its own media type, and that is how a DELETE
// tells them apart.
import type { Readable } from 'node:stream';
import { isSha256Digest } from '../oci/image.ts';
import type { Uploads, UploadSession } from '../push/uploads.ts';
import { MediaType } from '../oci/media-types.ts';
import type { BlobDelivery, StorageBackend } from '../storage/backend.ts';

const PUSHED_BLOB_TYPE = 'application/octet-stream';

/** What a blob DELETE did: deleted, no such blob, or refused because the blob is not a pushed one. */
export type BlobDeletion = { kind: 'deleted' } | { kind: 'unknown' } | { kind: 'refused'; reason: 'built' | 'manifest' };

const MANIFEST_TYPES = new Set<string>([MediaType.dockerManifest, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.ociIndex]);

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

  /**
   * Deletes a pushed blob, for every repository (blobs are shared; a pushed manifest naming it can
   * then no longer be pulled whole). Refused for a manifest (deleted by digest through the
   * manifests endpoint, which keeps tags and referrers in step) and for a blob the registry built
   * first: its images' layers and configs are its build cache, removed only by garbage collection.
   */
  async delete(digest: string): Promise<BlobDeletion> {
    const info = isSha256Digest(digest) ? await this.storage.statBlob(digest) : null;
    if (!info) return { kind: 'unknown' };
    if (MANIFEST_TYPES.has(info.contentType)) return { kind: 'refused', reason: 'manifest' };
    if (info.contentType !== PUSHED_BLOB_TYPE) return { kind: 'refused', reason: 'built' };
    return (await this.storage.deleteBlob(digest)) ? { kind: 'deleted' } : { kind: 'unknown' };
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
