// Pushing a multi-platform build (`nixery build --platforms … --push`): each platform's image as
// its OCI manifest, by digest, with its SBOM (push/client.ts's pushImage), then the OCI image index
// under the tag, so that the tag never names an index whose images are not there yet.
import { asIndexed } from '../builder/image-index.ts';
import type { IndexBuildResult } from '../builder/result.ts';
import type { Platform } from '../image/platform.ts';
import type { Logger } from '../log/logger.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { pushImage, pushManifest, type PushOptions, type PushTarget } from './client.ts';

export interface IndexPushOutcome {
  /** host/name:tag, naming the index. */
  reference: string;
  digest: string;
  /** Each platform's image as pushed: its OCI manifest and that manifest's SBOM referrer. */
  platforms: { platform: Platform; digest: string; sbomDigest: string }[];
}

export async function pushImageIndex(storage: StorageBackend, built: IndexBuildResult, target: PushTarget, log: Logger, options: PushOptions = {}): Promise<IndexPushOutcome> {
  const platforms: IndexPushOutcome['platforms'] = [];
  // One after another: each push already sends its blobs several at a time.
  for (const image of built.platforms) {
    const oci = asIndexed(image);
    const pushed = await pushImage(storage, oci, { ...target, tag: oci.digest }, log, options);
    platforms.push({ platform: image.platform, digest: pushed.digest, sbomDigest: pushed.sbomDigest });
  }
  const index = await storage.readBlob(built.digest);
  const pushed = await pushManifest(target, index, built.mediaType, log, options);
  log.info('image index pushed', { reference: pushed.reference, digest: pushed.digest, platforms });
  return { reference: pushed.reference, digest: pushed.digest, platforms };
}
