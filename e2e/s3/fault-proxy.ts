// A small HTTP proxy in front of the real S3 server, for faults radosgw does not make on demand:
// it forwards every request unchanged (the Host header included, so SigV4 signatures still
// verify) and answers chosen ones itself: an S3 error such as 503 SlowDown, or no answer at all
// until released (a request in flight when the registry is killed). It records what it saw, in
// S3's terms (operation from method and query), so tests can tell which calls were made.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type S3Operation = 'PutObject' | 'CreateMultipartUpload' | 'UploadPart' | 'CompleteMultipartUpload' | 'AbortMultipartUpload' | 'CopyObject' | 'GetObject' | 'HeadObject' | 'DeleteObject' | 'List' | 'Other';

export interface SeenRequest {
  operation: S3Operation;
  method: string;
  /** The path without the query: /<bucket>/<key>. */
  path: string;
  query: URLSearchParams;
  /** What the client got: the server's status, or the injected one (0 for a held request). */
  status: number;
  injected: boolean;
}

/**
 * error: answered by the proxy, the server never sees the request. hold: never answered.
 * lose-answer: the server carries the request out, and its answer is replaced by the error
 * (a write that succeeded unseen, which the client then retries).
 */
export type FaultAction = { type: 'error' | 'lose-answer'; status: number; code: string } | { type: 'hold' };

export interface FaultRule {
  when(request: SeenRequest): boolean;
  /** How many matching requests get the action; then they pass. */
  times: number;
  action: FaultAction;
}

export interface FaultProxy {
  url: string;
  requests: SeenRequest[];
  inject(rule: FaultRule): void;
  /** Resolves when a request is being held; its answer never comes. */
  held(): Promise<SeenRequest>;
  /** Cuts the connections of the held requests, as a server that went away would. */
  releaseHeld(): void;
  close(): Promise<void>;
}

export function operationOf(method: string, query: URLSearchParams, headers: http.IncomingHttpHeaders): S3Operation {
  if (method === 'PUT' && query.has('partNumber')) return 'UploadPart';
  if (method === 'PUT' && headers['x-amz-copy-source'] !== undefined) return 'CopyObject';
  if (method === 'PUT') return 'PutObject';
  if (method === 'POST' && query.has('uploads')) return 'CreateMultipartUpload';
  if (method === 'POST' && query.has('uploadId')) return 'CompleteMultipartUpload';
  if (method === 'DELETE' && query.has('uploadId')) return 'AbortMultipartUpload';
  if (method === 'DELETE') return 'DeleteObject';
  if (method === 'HEAD') return 'HeadObject';
  if (method === 'GET' && (query.has('list-type') || query.has('uploads') || query.has('uploadId'))) return 'List';
  if (method === 'GET') return 'GetObject';
  return 'Other';
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const requests: SeenRequest[] = [];
  const rules: FaultRule[] = [];
  const holding: http.ServerResponse[] = [];
  const heldWaiters: ((r: SeenRequest) => void)[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const seen: SeenRequest = { operation: operationOf(req.method ?? 'GET', url.searchParams, req.headers), method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, status: 0, injected: false };
    requests.push(seen);
    const rule = rules.find((r) => r.times > 0 && r.when(seen));
    if (rule) {
      rule.times--;
      seen.injected = true;
      if (rule.action.type === 'hold') {
        holding.push(res);
        req.resume();
        for (const waiter of heldWaiters.splice(0)) waiter(seen);
        return;
      }
      const { status, code } = rule.action;
      const answer = () => {
        seen.status = status;
        res.writeHead(status, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected by the test proxy</Message><RequestId>fault</RequestId></Error>`);
      };
      if (rule.action.type === 'lose-answer') {
        const forward = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (lost) => {
          lost.resume();
          lost.once('end', answer);
        });
        forward.on('error', () => res.destroy());
        req.pipe(forward);
        return;
      }
      req.resume();
      req.once('end', answer);
      return;
    }
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        seen.status = answer.statusCode ?? 0;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    inject: (rule) => rules.push(rule),
    held: () => new Promise((resolve) => heldWaiters.push(resolve)),
    releaseHeld: () => {
      for (const res of holding.splice(0)) res.socket?.destroy();
    },
    async close() {
      for (const res of holding) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
