import type { StorageConfig } from '../config/config.ts';
import type { Logger } from '../log/logger.ts';
import type { StagingSweepOptions, StorageBackend } from './backend.ts';
import { FilesystemStorage } from './filesystem.ts';

// The cloud backends load their SDKs only when configured: @google-cloud/storage and
// @aws-sdk/client-s3 take most of a process's start-up to import (measured: a `nixery build`
// into filesystem storage spent longer loading them than in Node's own start), which every
// cold `nixery build` Job and every server start paid for nothing.

/** Builds and checks the configured backend; a backend that cannot work stops start-up with the reason. */
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
      const { S3Storage } = await import('./s3.ts');
      const { backend: _, ...settings } = config;
      const storage = new S3Storage({ ...staging, ...settings, ...(log ? { log: log.child({ component: 'storage' }) } : {}) });
      await storage.init();
      return storage;
    }
  }
}
