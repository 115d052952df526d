import type { StorageConfig } from '../config/config.ts';
import type { Logger } from '../log/logger.ts';
import type { StagingSweepOptions, StorageBackend } from './backend.ts';
import { FilesystemStorage } from './filesystem.ts';

/**
 * Builds and checks the configured backend; a backend that cannot work stops start-up with the reason.
 * The cloud backends are imported only when configured: their SDKs cost about half a second of CPU
 * to load, which every `nixery build` (a rebuild of one changed layer takes about three) would pay.
 */
export async function openStorage(config: StorageConfig, log?: Logger, staging: StagingSweepOptions = {}): Promise<StorageBackend> {
  switch (config.backend) {
    case 'filesystem': {
      const storage = new FilesystemStorage(config.path, staging);
      await storage.init();
      return storage;
    }
    case 'gcs': {
      const { GcsStorage } = await import('./gcs.ts');
      const storage = new GcsStorage({
        ...staging,
        bucket: config.bucket,
        ...(config.credentialsFile !== undefined ? { credentialsFile: config.credentialsFile } : {}),
        ...(config.redirect !== undefined ? { redirect: config.redirect } : {}),
        ...(config.signedUrlExpirySeconds !== undefined ? { signedUrlExpirySeconds: config.signedUrlExpirySeconds } : {}),
        ...(config.resumableThresholdBytes !== undefined ? { resumableThresholdBytes: config.resumableThresholdBytes } : {}),
        ...(log ? { log: log.child({ component: 'storage' }) } : {}),
      });
      await storage.init();
      return storage;
    }
    case 's3': {
      const { backend: _, ...settings } = config;
      const { S3Storage } = await import('./s3.ts');
      const storage = new S3Storage({ ...staging, ...settings, ...(log ? { log: log.child({ component: 'storage' }) } : {}) });
      await storage.init();
      return storage;
    }
  }
}
