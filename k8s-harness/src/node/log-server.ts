// The kubelet's log endpoint, plain HTTP on 127.0.0.1: GET /containerLogs/<ns>/<pod>/<container>
// with follow, tailLines, timestamps, sinceSeconds, sinceTime, limitBytes and previous, as the
// API server's pods/log proxy forwards them.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { followLog, readLogFile, renderLogs, type LogQuery } from './logs.ts';

export type LogLookup = (namespace: string, pod: string, container: string, previous: boolean) =>
  | { file: string; done: () => boolean }
  | { status: number; message: string };

export interface LogServer {
  port: number;
  close(): Promise<void>;
}

export function parseLogQuery(params: URLSearchParams, now: number): LogQuery & { follow: boolean; previous: boolean } {
  const number = (name: string) => {
    const v = params.get(name);
    return v === null || v === '' || Number.isNaN(Number(v)) ? undefined : Number(v);
  };
  const query: LogQuery & { follow: boolean; previous: boolean } = {
    follow: params.get('follow') === 'true',
    previous: params.get('previous') === 'true',
    timestamps: params.get('timestamps') === 'true',
  };
  const tail = number('tailLines');
  if (tail !== undefined) query.tailLines = tail;
  const limit = number('limitBytes');
  if (limit !== undefined) query.limitBytes = limit;
  const since = number('sinceSeconds');
  if (since !== undefined) query.sinceTime = now - since * 1000;
  const sinceTime = params.get('sinceTime');
  if (sinceTime && !Number.isNaN(Date.parse(sinceTime))) query.sinceTime = Date.parse(sinceTime);
  return query;
}

export async function startLogServer(lookup: LogLookup): Promise<LogServer> {
  const open = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://kubelet');
      const match = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
      if (req.method !== 'GET' || !match) {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 page not found\n');
        return;
      }
      const [namespace, pod, container] = match.slice(1).map(decodeURIComponent) as [string, string, string];
      const query = parseLogQuery(url.searchParams, Date.now());
      const found = lookup(namespace, pod, container, query.previous);
      if ('status' in found) {
        res.writeHead(found.status, { 'Content-Type': 'text/plain' }).end(found.message);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      if (!query.follow) {
        res.end(renderLogs(await readLogFile(found.file), query));
        return;
      }
      open.add(res);
      const abort = new AbortController();
      res.once('close', () => abort.abort());
      await followLog(found.file, query, (text) => text && res.write(text), found.done, abort.signal);
      open.delete(res);
      res.end();
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
