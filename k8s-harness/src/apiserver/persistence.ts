// Write-through persistence: one JSON file per object, replaced by atomic rename, and the
// resourceVersion counter in its own file, so a restarted server keeps objects and never
// hands out a resourceVersion twice. Synchronous on purpose: a write is durable (against a
// process crash) before the response that reports it is sent, and writes stay in order.
import fs from 'node:fs';
import path from 'node:path';

type JsonObject = Record<string, unknown>;

export interface LoadedState {
  resourceVersion: number;
  objects: { storageKey: string; object: JsonObject }[];
}

export class FileStore {
  private readonly dir: string;
  private tmpCounter = 0;

  constructor(dir: string) {
    this.dir = dir;
    fs.mkdirSync(path.join(dir, 'objects'), { recursive: true });
  }

  private objectPath(storageKey: string, namespace: string, name: string): string {
    return path.join(this.dir, 'objects', encodeURIComponent(storageKey), encodeURIComponent(namespace || '_cluster'), `${encodeURIComponent(name)}.json`);
  }

  private writeAtomically(file: string, content: string): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.${this.tmpCounter++}.tmp`;
    fs.writeFileSync(tmp, content);
    fs.renameSync(tmp, file);
  }

  load(): LoadedState {
    const rvFile = path.join(this.dir, 'resourceVersion');
    let resourceVersion = fs.existsSync(rvFile) ? Number(fs.readFileSync(rvFile, 'utf8').trim()) || 0 : 0;
    const objects: LoadedState['objects'] = [];
    const root = path.join(this.dir, 'objects');
    for (const keyDir of fs.readdirSync(root)) {
      for (const nsDir of fs.readdirSync(path.join(root, keyDir))) {
        for (const file of fs.readdirSync(path.join(root, keyDir, nsDir))) {
          const full = path.join(root, keyDir, nsDir, file);
          if (!file.endsWith('.json')) {
            // a temporary file left by a crash mid-write: the rename never happened
            fs.rmSync(full, { force: true });
            continue;
          }
          const object = JSON.parse(fs.readFileSync(full, 'utf8')) as JsonObject;
          const rv = Number((object.metadata as JsonObject | undefined)?.resourceVersion ?? 0);
          if (rv > resourceVersion) resourceVersion = rv;
          objects.push({ storageKey: decodeURIComponent(keyDir), object });
        }
      }
    }
    return { resourceVersion, objects };
  }

  put(storageKey: string, namespace: string, name: string, object: JsonObject, resourceVersion: number): void {
    this.writeAtomically(this.objectPath(storageKey, namespace, name), JSON.stringify(object));
    this.saveResourceVersion(resourceVersion);
  }

  remove(storageKey: string, namespace: string, name: string, resourceVersion: number): void {
    fs.rmSync(this.objectPath(storageKey, namespace, name), { force: true });
    this.saveResourceVersion(resourceVersion);
  }

  private saveResourceVersion(rv: number): void {
    this.writeAtomically(path.join(this.dir, 'resourceVersion'), String(rv));
  }
}
