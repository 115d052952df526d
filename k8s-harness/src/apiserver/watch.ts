// Watches: the events of a resource from a resourceVersion on, with bookmarks, as JSON or Table,
// ended after the request timeout as kube-apiserver does.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { obj, type JsonObject } from './json.ts';
import { ApiError, badRequest } from './errors.ts';
import { apiVersionOf } from './resources.ts';
import type { ResourceInfo } from './resources.ts';
import type { StoreEvent } from './store.ts';
import { toTable } from './table.ts';
import type { Api } from './api.ts';

/** What a watch needs of the server (http.ts's options are these and more). */
export interface WatchOptions {
  api: Api;
  bookmarkIntervalMs: number;
  /** watches without timeoutSeconds end after a random time between this and twice this */
  minRequestTimeoutSeconds: number;
  openWatches: Set<() => void>;
}

export function watch(options: WatchOptions, req: IncomingMessage, res: ServerResponse, r: ResourceInfo, namespace: string | undefined, name: string | undefined, query: URLSearchParams, table: boolean): void {
  const { api } = options;
  const fieldSelector = [query.get('fieldSelector'), name ? `metadata.name=${name}` : undefined].filter(Boolean).join(',');
  const sel = api.parseSelection(r, { ...(query.get('labelSelector') ? { labelSelector: query.get('labelSelector') as string } : {}), ...(fieldSelector ? { fieldSelector } : {}) });
  const rvParam = query.get('resourceVersion') ?? '';
  const bookmarks = query.get('allowWatchBookmarks') === 'true';
  const sendInitial = query.get('sendInitialEvents');
  const timeoutParam = query.get('timeoutSeconds');
  const timeoutSeconds = timeoutParam !== null ? Number(timeoutParam) : options.minRequestTimeoutSeconds * (1 + Math.random());
  const inScope = (o: JsonObject): boolean => (namespace === undefined || !r.namespaced || obj(o.metadata).namespace === namespace) && api.matches(r, o, sel);
  const render = (o: JsonObject): unknown => {
    const ext = api.external(r, o);
    return table ? toTable(r, [ext], { resourceVersion: String(obj(ext.metadata).resourceVersion) }, query.get('includeObject') ?? 'Metadata', Date.now()) : ext;
  };

  res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
  res.flushHeaders();
  let closed = false;
  let lastRV = api.store.resourceVersion;
  const write = (type: string, object: unknown): void => {
    if (!closed) res.write(`${JSON.stringify({ type, object })}\n`);
  };
  const bookmarkObject = (annotations?: Record<string, string>): JsonObject => ({
    kind: r.kind,
    apiVersion: apiVersionOf(r),
    metadata: { resourceVersion: String(lastRV), ...(annotations ? { annotations } : {}) },
  });

  let unsubscribe: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let bookmarkTimer: NodeJS.Timeout | undefined;
  const finish = (): void => {
    if (closed) return;
    closed = true;
    unsubscribe?.();
    if (timer) clearTimeout(timer);
    if (bookmarkTimer) clearInterval(bookmarkTimer);
    options.openWatches.delete(finish);
    res.end();
  };
  options.openWatches.add(finish);
  req.on('close', finish);
  res.on('close', finish);

  const onEvent = (e: StoreEvent): void => {
    if (e.storageKey !== r.storageKey) return;
    lastRV = e.rv;
    const now = e.type !== 'DELETED' && inScope(e.object);
    const before = e.previous !== undefined && inScope(e.previous);
    if (e.type === 'ADDED' && now) write('ADDED', render(e.object));
    else if (e.type === 'MODIFIED') {
      if (now && before) write('MODIFIED', render(e.object));
      else if (now) write('ADDED', render(e.object));
      else if (before) write('DELETED', render(e.object));
    } else if (e.type === 'DELETED' && before) write('DELETED', render(e.object));
  };

  const initial = rvParam === '' || rvParam === '0' ? sendInitial !== 'false' : sendInitial === 'true';
  try {
    if (initial) {
      const from = api.store.resourceVersion;
      for (const o of api.store.list(r.storageKey, r.namespaced ? namespace : undefined)) if (inScope(o)) write('ADDED', render(o));
      lastRV = from;
      if (sendInitial === 'true' && bookmarks) write('BOOKMARK', bookmarkObject({ 'k8s.io/initial-events-end': 'true' }));
      unsubscribe = api.store.subscribe(from, onEvent);
    } else {
      const from = Number(rvParam);
      if (!Number.isFinite(from)) throw badRequest(`invalid resource version: ${rvParam}`);
      unsubscribe = api.store.subscribe(from, onEvent);
    }
  } catch (err) {
    if (err instanceof ApiError) {
      write('ERROR', err.toStatus());
      finish();
      return;
    }
    throw err;
  }
  if (bookmarks) bookmarkTimer = setInterval(() => write('BOOKMARK', bookmarkObject()), options.bookmarkIntervalMs);
  if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) {
    timer = setTimeout(() => {
      if (bookmarks) write('BOOKMARK', bookmarkObject());
      finish();
    }, timeoutSeconds * 1000);
  }
}
