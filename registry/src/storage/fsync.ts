// Durability of the filesystem backend's writes: a file's bytes are on disk before it is renamed
// or linked into place, so a crash never exposes a partial one.
import fs from 'node:fs/promises';

export async function fsyncFile(file: string): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
