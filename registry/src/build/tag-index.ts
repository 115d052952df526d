// Which tags have been served for a repository, for the distribution API's tag listing. Every
// package list is a potential image, so this lists what exists, not what could.
import type { StorageBackend } from '../storage/backend.ts';

interface TagDocument {
  tags: string[];
}

export class TagIndex {
  private readonly storage: StorageBackend;
  /** Serialises read-modify-write per repository within this process. */
  private readonly pending = new Map<string, Promise<void>>();

  constructor(storage: StorageBackend) {
    this.storage = storage;
  }

  async list(name: string): Promise<string[]> {
    return (await this.storage.getDocument<TagDocument>(key(name)))?.tags ?? [];
  }

  record(name: string, tag: string): Promise<void> {
    const previous = this.pending.get(name) ?? Promise.resolve();
    const next = previous.then(async () => {
      const tags = await this.list(name);
      if (tags.includes(tag)) return;
      await this.storage.putDocument(key(name), { tags: [...tags, tag].sort() });
    });
    const settled = next.catch(() => {});
    this.pending.set(name, settled);
    void settled.then(() => {
      if (this.pending.get(name) === settled) this.pending.delete(name);
    });
    return next;
  }
}

function key(name: string): string {
  return `tags/${name}`;
}

/** The distribution spec's pagination: tags after `last`, at most `n`. */
export function paginate(tags: string[], n: number | undefined, last: string | undefined): { tags: string[]; more: boolean } {
  const after = last === undefined ? tags : tags.filter((t) => t > last);
  if (n === undefined) return { tags: after, more: false };
  return { tags: after.slice(0, n), more: after.length > n };
}
