// Tags written by pushes. They take precedence over the package-name interpretation, so a
// declared image `toolbox:v1` is served while `git/htop:latest` is still built on demand.
import type { StorageBackend } from '../storage/backend.ts';

export interface PushedTag {
  digest: string;
  mediaType: string;
  size: number;
}

export class PushedTags {
  private readonly storage: StorageBackend;

  constructor(storage: StorageBackend) {
    this.storage = storage;
  }

  get(name: string, tag: string): Promise<PushedTag | null> {
    return this.storage.getDocument<PushedTag>(key(name, tag));
  }

  set(name: string, tag: string, value: PushedTag): Promise<void> {
    return this.storage.putDocument(key(name, tag), value);
  }

  delete(name: string, tag: string): Promise<boolean> {
    return this.storage.deleteDocument(key(name, tag));
  }
}

function key(name: string, tag: string): string {
  return `pushed/${name}/_tags/${tag}`;
}
