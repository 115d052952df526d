// Objects by storage key, a global resourceVersion counter, and a bounded history of change
// events that watches replay from. A watch that asks for a resourceVersion older than the
// history holds gets 410 Gone, like a real apiserver after etcd compaction.
import { FileStore } from './persistence.ts';
import { gone } from './errors.ts';

type JsonObject = Record<string, unknown>;

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  rv: number;
  type: EventType;
  storageKey: string;
  object: JsonObject;
  /** the object before this change (for MODIFIED and DELETED) */
  previous?: JsonObject;
}

export type StoreListener = (event: StoreEvent) => void;

function meta(o: JsonObject): JsonObject {
  return (o.metadata ?? {}) as JsonObject;
}

export function objectKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export class Store {
  private readonly objects = new Map<string, Map<string, JsonObject>>();
  private rv: number;
  private readonly history: StoreEvent[] = [];
  /** events up to this resourceVersion can no longer be replayed */
  private compactedThrough: number;
  private readonly listeners = new Set<StoreListener>();
  private readonly files: FileStore | undefined;
  private readonly historySize: number;

  constructor(options: { dataDir?: string; historySize: number }) {
    this.historySize = options.historySize;
    this.files = options.dataDir ? new FileStore(options.dataDir) : undefined;
    const loaded = this.files?.load();
    this.rv = loaded?.resourceVersion ?? 0;
    for (const { storageKey, object } of loaded?.objects ?? []) {
      this.bucket(storageKey).set(objectKey(String(meta(object).namespace ?? ''), String(meta(object).name)), object);
    }
    this.compactedThrough = this.rv;
  }

  private bucket(storageKey: string): Map<string, JsonObject> {
    let b = this.objects.get(storageKey);
    if (!b) {
      b = new Map();
      this.objects.set(storageKey, b);
    }
    return b;
  }

  get resourceVersion(): number {
    return this.rv;
  }

  get(storageKey: string, namespace: string, name: string): JsonObject | undefined {
    return this.objects.get(storageKey)?.get(objectKey(namespace, name));
  }

  /** Objects sorted by namespace/name, as etcd's key order gives them. */
  list(storageKey: string, namespace?: string): JsonObject[] {
    const b = this.objects.get(storageKey);
    if (!b) return [];
    const keys = [...b.keys()].filter((k) => namespace === undefined || k.startsWith(`${namespace}/`)).sort();
    return keys.map((k) => b.get(k) as JsonObject);
  }

  storageKeys(): string[] {
    return [...this.objects.keys()];
  }

  private record(event: StoreEvent): void {
    this.history.push(event);
    while (this.history.length > this.historySize) {
      const dropped = this.history.shift();
      if (dropped) this.compactedThrough = dropped.rv;
    }
    for (const l of [...this.listeners]) l(event);
  }

  private nextRV(): number {
    this.rv += 1;
    return this.rv;
  }

  /** Stores a new object; assigns its resourceVersion. */
  create(storageKey: string, object: JsonObject): JsonObject {
    const rv = this.nextRV();
    const stored = structuredClone(object);
    meta(stored).resourceVersion = String(rv);
    const ns = String(meta(stored).namespace ?? '');
    const name = String(meta(stored).name);
    this.files?.put(storageKey, ns, name, stored, rv);
    this.bucket(storageKey).set(objectKey(ns, name), stored);
    this.record({ rv, type: 'ADDED', storageKey, object: stored });
    return stored;
  }

  update(storageKey: string, object: JsonObject): JsonObject {
    const ns = String(meta(object).namespace ?? '');
    const name = String(meta(object).name);
    const previous = this.get(storageKey, ns, name);
    const rv = this.nextRV();
    const stored = structuredClone(object);
    meta(stored).resourceVersion = String(rv);
    this.files?.put(storageKey, ns, name, stored, rv);
    this.bucket(storageKey).set(objectKey(ns, name), stored);
    this.record({ rv, type: 'MODIFIED', storageKey, object: stored, ...(previous ? { previous } : {}) });
    return stored;
  }

  /** Removes an object; the DELETED event carries it with a fresh resourceVersion. */
  remove(storageKey: string, namespace: string, name: string): JsonObject | undefined {
    const previous = this.get(storageKey, namespace, name);
    if (!previous) return undefined;
    const rv = this.nextRV();
    const last = structuredClone(previous);
    meta(last).resourceVersion = String(rv);
    this.files?.remove(storageKey, namespace, name, rv);
    this.objects.get(storageKey)?.delete(objectKey(namespace, name));
    this.record({ rv, type: 'DELETED', storageKey, object: last, previous });
    return last;
  }

  /**
   * Replays events after `fromRV` and then delivers new ones, synchronously and in order.
   * Throws 410 Gone when events after fromRV were already dropped from the history.
   */
  subscribe(fromRV: number, listener: StoreListener): () => void {
    if (fromRV < this.compactedThrough) {
      throw gone(`too old resource version: ${fromRV} (${this.compactedThrough + 1})`);
    }
    for (const e of this.history) if (e.rv > fromRV) listener(e);
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
