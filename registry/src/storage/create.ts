import type { StorageConfig } from '../config/config.ts';
import { StorageUnavailableError, type StorageBackend } from './backend.ts';
import { FilesystemStorage } from './filesystem.ts';

/** Builds and checks the configured backend; a backend that cannot work stops start-up with the reason. */
export async function openStorage(config: StorageConfig): Promise<StorageBackend> {
  switch (config.backend) {
    case 'filesystem': {
      const storage = new FilesystemStorage(config.path);
      await storage.init();
      return storage;
    }
    case 'gcs':
      throw new StorageUnavailableError(
        'NIXERY_STORAGE_BACKEND=gcs: the Google Cloud Storage backend is not available in this version; use "filesystem"',
      );
  }
}
