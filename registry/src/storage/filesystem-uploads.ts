// Upload sessions on the filesystem backend (the contract: upload-store.ts), in the storage
// directory so that every replica mounting it (a ReadWriteMany volume) shares them:
//
//   uploads/<id>/session.json        {"name": …}; its mtime is the last activity
//   uploads/<id>/chunks/<offset>     one file per chunk, named by its start offset
//   uploads/<id>/partial-<uuid>      a chunk being received
//
// A chunk is received into a partial file of its own, fsynced, and hard-linked to its offset's
// name: link(2) fails with EEXIST when the name exists, which makes "first append at this offset
// wins" exact across processes without locks. A crashed append leaves only a partial file, which
// goes with its session (the purge of idle sessions removes the whole directory).
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  assertUploadId,
  chunkChain,
  chunkName,
  chunkOffset,
  isUploadId,
  UploadGoneError,
  UploadOffsetError,
  type StoredChunk,
  type UploadState,
  type UploadStore,
} from './upload-store.ts';

const SESSION = 'session.json';

export class FilesystemUploadStore implements UploadStore {
  private readonly dir: string;

  /** `dir`: the uploads directory inside the storage directory. */
  constructor(dir: string) {
    this.dir = dir;
  }

  async createUpload(id: string, name: string, nowMs: number): Promise<void> {
    const dir = this.sessionDir(id);
    await fs.mkdir(path.join(dir, 'chunks'), { recursive: true });
    const record = path.join(dir, SESSION);
    await fs.writeFile(record, JSON.stringify({ name }), { flag: 'wx' });
    await setTime(record, nowMs);
  }

  async uploadState(id: string): Promise<UploadState | null> {
    if (!isUploadId(id)) return null;
    const record = path.join(this.sessionDir(id), SESSION);
    let name: string;
    let lastActivityMs: number;
    try {
      const [text, stat] = await Promise.all([fs.readFile(record, 'utf8'), fs.stat(record)]);
      name = (JSON.parse(text) as { name: string }).name;
      lastActivityMs = stat.mtimeMs;
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
    const { size } = chunkChain(await this.chunks(id));
    return { id, name, size, lastActivityMs };
  }

  async appendUpload(id: string, offset: number, body: Readable): Promise<number> {
    const state = await this.uploadState(id);
    if (!state) throw new UploadGoneError(id);
    if (offset !== state.size) throw new UploadOffsetError(id, offset, state.size);
    const partial = path.join(this.sessionDir(id), `partial-${randomUUID()}`);
    let added = 0;
    try {
      body.on('data', (chunk: Buffer) => (added += chunk.length));
      await pipeline(body, createWriteStream(partial, { flags: 'wx' }));
      if (added === 0) return state.size;
      await fsyncFile(partial);
      await fs.link(partial, path.join(this.sessionDir(id), 'chunks', chunkName(offset)));
      return offset + added;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        // Another append took this offset while ours arrived.
        const now = await this.uploadState(id);
        if (!now) throw new UploadGoneError(id);
        throw new UploadOffsetError(id, offset, now.size);
      }
      // The session's directory went (finished or purged) while the chunk arrived.
      if (code === 'ENOENT' && !(await this.uploadState(id))) throw new UploadGoneError(id);
      throw error;
    } finally {
      await fs.rm(partial, { force: true });
    }
  }

  async touchUpload(id: string, nowMs: number): Promise<void> {
    assertUploadId(id);
    try {
      await setTime(path.join(this.sessionDir(id), SESSION), nowMs);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  readUpload(id: string): Readable {
    const self = this;
    return Readable.from(
      (async function* () {
        if (!(await self.uploadState(id))) throw new UploadGoneError(id);
        const { chain } = chunkChain(await self.chunks(id));
        for (const chunk of chain) {
          try {
            yield* createReadStream(self.chunkPath(id, chunk.offset), { highWaterMark: 1 << 20 });
          } catch (error) {
            if (isNotFound(error)) throw new UploadGoneError(id);
            throw error;
          }
        }
      })(),
      { objectMode: false },
    );
  }

  async deleteUpload(id: string): Promise<number> {
    assertUploadId(id);
    const bytes = (await this.chunks(id)).reduce((sum, c) => sum + c.size, 0);
    const dir = this.sessionDir(id);
    const existed = await fs.stat(dir).then(() => true, () => false);
    // maxRetries: an append on another replica may be creating a partial file in it right now.
    await fs.rm(dir, { recursive: true, force: true, maxRetries: 3 });
    return existed ? bytes : 0;
  }

  async *listUploads(): AsyncIterable<UploadState> {
    let handle;
    try {
      handle = await fs.opendir(this.dir);
    } catch (error) {
      if (isNotFound(error)) return;
      throw error;
    }
    for await (const entry of handle) {
      if (!entry.isDirectory() || !isUploadId(entry.name)) continue;
      const state = await this.uploadState(entry.name);
      if (state) {
        yield state;
        continue;
      }
      // No record: a session being created this instant, or what a crash left. Its age is the directory's.
      const stat = await fs.stat(this.sessionDir(entry.name)).catch(() => null);
      if (!stat) continue;
      yield { id: entry.name, name: '', size: chunkChain(await this.chunks(entry.name)).size, lastActivityMs: stat.mtimeMs };
    }
  }

  private async chunks(id: string): Promise<StoredChunk[]> {
    const dir = path.join(this.sessionDir(id), 'chunks');
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (error) {
      if (isNotFound(error)) return [];
      throw error;
    }
    const chunks: StoredChunk[] = [];
    for (const name of names) {
      const offset = chunkOffset(name);
      if (offset === null) continue;
      const stat = await fs.stat(path.join(dir, name)).catch(() => null);
      if (stat) chunks.push({ offset, size: stat.size });
    }
    return chunks;
  }

  private sessionDir(id: string): string {
    assertUploadId(id);
    return path.join(this.dir, id);
  }

  private chunkPath(id: string, offset: number): string {
    return path.join(this.sessionDir(id), 'chunks', chunkName(offset));
  }
}

async function setTime(file: string, ms: number): Promise<void> {
  const when = new Date(ms);
  await fs.utimes(file, when, when);
}

async function fsyncFile(file: string): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}
