// The agent's only way to the cluster: @kubernetes/client-node typed APIs for writes, list+watch
// caches for reads, and a work queue so each controller reconciles one key at a time.
import {
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  makeInformer,
  setHeaderOptions,
  type Informer,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';

export interface Kube {
  config: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  batch: BatchV1Api;
}

export function connect(kubeconfigPath: string): Kube {
  const config = new KubeConfig();
  config.loadFromFile(kubeconfigPath);
  return { config, core: config.makeApiClient(CoreV1Api), apps: config.makeApiClient(AppsV1Api), batch: config.makeApiClient(BatchV1Api) };
}

export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

function code(error: unknown): number | undefined {
  const e = error as { code?: unknown; statusCode?: unknown };
  return typeof e?.code === 'number' ? e.code : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
}
export const isNotFound = (error: unknown) => code(error) === 404;
export const isConflict = (error: unknown) => code(error) === 409;

/** The API's own message from a failed call (the Status body), else the error text. */
export function errorMessage(error: unknown): string {
  const body = (error as { body?: unknown })?.body;
  if (typeof body === 'string') {
    try {
      const status = JSON.parse(body) as { message?: string };
      if (status.message) return status.message;
    } catch {
      return body;
    }
  }
  return error instanceof Error ? error.message : String(error);
}

export type Key = string;
export const keyOf = (o: KubernetesObject): Key => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
export function splitKey(key: Key): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/**
 * A list+watch cache of one resource type across all namespaces. client-node's informer stops on
 * errors; this one starts it again after a second, for as long as it is not stopped.
 */
export class Cache<T extends KubernetesObject> {
  readonly #informer: Informer<T> & ObjectCache<T>;
  readonly #listeners: Array<(object: T, event: 'add' | 'update' | 'delete') => void> = [];
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;

  constructor(kube: Kube, path: string, list: () => Promise<KubernetesListObject<T>>, log: (line: object) => void) {
    this.#informer = makeInformer(kube.config, path, list);
    for (const event of ['add', 'update', 'delete'] as const) {
      this.#informer.on(event, (object: T) => {
        for (const listener of this.#listeners) listener(object, event);
      });
    }
    this.#informer.on('error', (error: unknown) => {
      if (this.#stopped) return;
      log({ msg: 'watch failed, restarting', path, error: errorMessage(error) });
      this.#retry = setTimeout(() => {
        if (!this.#stopped) this.#informer.start().catch(() => {});
      }, 1000);
    });
  }

  start(): Promise<void> {
    return this.#informer.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    await this.#informer.stop();
  }

  on(listener: (object: T, event: 'add' | 'update' | 'delete') => void): void {
    this.#listeners.push(listener);
  }

  get(namespace: string, name: string): T | undefined {
    return this.#informer.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.#informer.list(namespace);
  }
}

/**
 * Level-triggered work: a key is handled by one worker at a time; added again while being handled,
 * it is handled once more afterwards. A handler may ask to be called again later (returns ms);
 * a failing handler is retried with back-off.
 */
export class WorkQueue {
  readonly #handler: (key: Key) => Promise<number | void>;
  readonly #log: (line: object) => void;
  readonly #name: string;
  readonly #dirty = new Set<Key>();
  readonly #queue: Key[] = [];
  readonly #active = new Set<Key>();
  readonly #timers = new Map<Key, NodeJS.Timeout>();
  readonly #failures = new Map<Key, number>();
  readonly #concurrency: number;
  #running = 0;
  #stopped = false;
  #idle: Array<() => void> = [];

  constructor(name: string, handler: (key: Key) => Promise<number | void>, log: (line: object) => void, concurrency = 2) {
    this.#name = name;
    this.#handler = handler;
    this.#log = log;
    this.#concurrency = concurrency;
  }

  add(key: Key): void {
    if (this.#stopped) return;
    if (this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (!this.#active.has(key)) this.#queue.push(key);
    this.#pump();
  }

  addAfter(key: Key, ms: number): void {
    if (this.#stopped) return;
    if (ms <= 0) return this.add(key);
    const existing = this.#timers.get(key);
    if (existing) clearTimeout(existing);
    this.#timers.set(
      key,
      setTimeout(() => {
        this.#timers.delete(key);
        this.add(key);
      }, Math.min(ms, 2 ** 31 - 1)),
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.#queue.length = 0;
    if (this.#running > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    while (!this.#stopped && this.#running < this.#concurrency && this.#queue.length > 0) {
      const key = this.#queue.shift()!;
      this.#dirty.delete(key);
      this.#active.add(key);
      this.#running++;
      void this.#work(key);
    }
  }

  async #work(key: Key): Promise<void> {
    try {
      const again = await this.#handler(key);
      this.#failures.delete(key);
      if (typeof again === 'number' && Number.isFinite(again)) this.addAfter(key, Math.max(again, 50));
    } catch (error) {
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      if (!this.#stopped) this.#log({ msg: 'reconcile failed', controller: this.#name, key, failures, error: errorMessage(error) });
      this.addAfter(key, Math.min(100 * 2 ** Math.min(failures, 10), 10_000));
    } finally {
      this.#active.delete(key);
      this.#running--;
      if (this.#dirty.has(key)) this.#queue.push(key);
      if (this.#running === 0 && this.#stopped) for (const resolve of this.#idle.splice(0)) resolve();
      this.#pump();
    }
  }
}

/**
 * Objects a controller has just created or deleted but its cache has not shown yet ("expectations"),
 * so that a reconcile in between neither creates a second pod nor counts a deleted one.
 */
export class Expectations {
  readonly #created = new Map<string, Map<string, number>>();
  readonly #deleted = new Map<string, Map<string, number>>();
  readonly #ttlMs: number;

  constructor(ttlMs = 30_000) {
    this.#ttlMs = ttlMs;
  }

  expectCreate(owner: string, name: string): void {
    this.#bucket(this.#created, owner).set(name, Date.now());
  }
  expectDelete(owner: string, name: string): void {
    this.#bucket(this.#deleted, owner).set(name, Date.now());
  }
  forget(owner: string): void {
    this.#created.delete(owner);
    this.#deleted.delete(owner);
  }

  /** The owner's objects as they will be: `observed` plus pending creations minus pending deletions. */
  adjust<T extends KubernetesObject>(owner: string, observed: readonly T[], placeholder: (name: string) => T): T[] {
    const now = Date.now();
    const names = new Set(observed.map((o) => o.metadata?.name ?? ''));
    const created = this.#bucket(this.#created, owner);
    const deleted = this.#bucket(this.#deleted, owner);
    for (const [name, at] of created) if (names.has(name) || now - at > this.#ttlMs) created.delete(name);
    for (const [name, at] of deleted) if (!names.has(name) || now - at > this.#ttlMs) deleted.delete(name);
    const result = observed.filter((o) => !deleted.has(o.metadata?.name ?? ''));
    for (const name of created.keys()) result.push(placeholder(name));
    return result;
  }

  #bucket(map: Map<string, Map<string, number>>, owner: string): Map<string, number> {
    let bucket = map.get(owner);
    if (!bucket) map.set(owner, (bucket = new Map()));
    return bucket;
  }
}
