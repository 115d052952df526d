// Filesystem storage in `dir` that counts document reads and writes, and fails writes while
// `calls.failWrites` is set: for the batched writers (service/tags.ts, service/pulls.ts), whose
// promise is few writes and retries after a failed one.
import { FilesystemStorage } from '../storage/filesystem.ts';

export async function countingStorage(dir: string) {
  const storage = new FilesystemStorage(dir);
  await storage.init();
  const calls = { reads: 0, writes: 0, failWrites: false };
  const counting = Object.assign(Object.create(storage) as FilesystemStorage, {
    getDocument: <T>(key: string) => (calls.reads++, storage.getDocument<T>(key)),
    putDocument: (key: string, value: unknown) => {
      calls.writes++;
      if (calls.failWrites) return Promise.reject(Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' }));
      return storage.putDocument(key, value);
    },
  });
  return { storage, counting, calls };
}
