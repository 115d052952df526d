// pods/log: the apiserver finds the pod's node and streams from its kubelet's
// /containerLogs/<namespace>/<pod>/<container> endpoint. Kubelets serve HTTPS with a
// self-signed certificate (not verified, as an apiserver without --kubelet-certificate-authority
// does); a node agent that serves plain HTTP is accepted too.
import http from 'node:http';
import https from 'node:https';
import type { ServerResponse } from 'node:http';
import { ApiError, badRequest } from './errors.ts';
import { obj, type JsonObject } from './json.ts';

const FORWARDED_PARAMS = ['follow', 'tailLines', 'timestamps', 'sinceSeconds', 'sinceTime', 'limitBytes', 'previous'];

export interface LogTarget {
  url: URL;
}

/** Decides where a log request goes, or says why it cannot be served (as the apiserver words it). */
export function logTarget(pod: JsonObject, node: JsonObject | undefined, query: URLSearchParams): LogTarget {
  const meta = obj(pod.metadata);
  const name = String(meta.name);
  const containers = (Array.isArray(obj(pod.spec).containers) ? (obj(pod.spec).containers as unknown[]) : []).map((c) => String(obj(c).name));
  const initContainers = (Array.isArray(obj(pod.spec).initContainers) ? (obj(pod.spec).initContainers as unknown[]) : []).map((c) => String(obj(c).name));
  let container = query.get('container') ?? '';
  if (!container) {
    if (containers.length !== 1) {
      throw badRequest(`a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]${initContainers.length ? ` or one of the init containers: [${initContainers.join(' ')}]` : ''}`);
    }
    container = containers[0] ?? '';
  }
  if (!containers.includes(container) && !initContainers.includes(container)) {
    throw badRequest(`container ${container} is not valid for pod ${name}`);
  }
  const nodeName = obj(pod.spec).nodeName;
  if (typeof nodeName !== 'string' || nodeName === '') throw badRequest(`pod ${name} does not have a host assigned`);
  if (!node) throw new ApiError(404, 'NotFound', `nodes "${nodeName}" not found`, { name: nodeName, kind: 'nodes' });
  const status = obj(node.status);
  const port = obj(obj(status.daemonEndpoints).kubeletEndpoint).Port;
  const addresses = Array.isArray(status.addresses) ? status.addresses.map(obj) : [];
  const address = (addresses.find((a) => a.type === 'InternalIP') ?? addresses[0])?.address;
  if (typeof port !== 'number' || port <= 0 || typeof address !== 'string') {
    throw new ApiError(500, 'InternalError', `Internal error occurred: node ${nodeName} has no kubelet endpoint (status.daemonEndpoints.kubeletEndpoint.Port and status.addresses)`);
  }
  const url = new URL(`https://${address.includes(':') ? `[${address}]` : address}:${port}/containerLogs/${encodeURIComponent(String(meta.namespace))}/${encodeURIComponent(name)}/${encodeURIComponent(container)}`);
  for (const p of FORWARDED_PARAMS) {
    const v = query.get(p);
    if (v !== null) url.searchParams.set(p, v);
  }
  return { url };
}

const plainHttpPorts = new Set<string>();

function get(url: URL, plain: boolean): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const target = plain ? new URL(url.toString().replace(/^https:/, 'http:')) : url;
    const req = plain ? http.get(target, resolve) : https.get(target, { rejectUnauthorized: false }, resolve);
    req.on('error', reject);
  });
}

/** Streams the kubelet's answer to the client; ends when either side goes away. */
export async function proxyLogs(target: LogTarget, res: ServerResponse, clientGone: AbortSignal): Promise<void> {
  const hostKey = target.url.host;
  let upstream: http.IncomingMessage;
  try {
    upstream = await get(target.url, plainHttpPorts.has(hostKey));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (!plainHttpPorts.has(hostKey) && (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/i.test(String((err as Error).message)))) {
      plainHttpPorts.add(hostKey);
      upstream = await get(target.url, true);
    } else {
      throw new ApiError(500, 'InternalError', `Get "${target.url.toString()}": ${(err as Error).message}`);
    }
  }
  if ((upstream.statusCode ?? 500) >= 400) {
    const chunks: Buffer[] = [];
    for await (const c of upstream) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8').trim();
    throw new ApiError(upstream.statusCode === 404 ? 404 : 500, upstream.statusCode === 404 ? 'NotFound' : 'InternalError', text || `kubelet answered ${upstream.statusCode ?? 0}`);
  }
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Transfer-Encoding': 'chunked' });
  res.flushHeaders();
  const onAbort = (): void => {
    upstream.destroy();
  };
  clientGone.addEventListener('abort', onAbort);
  try {
    for await (const chunk of upstream) res.write(chunk as Buffer);
  } catch {
    // the kubelet or the client went away mid-stream; what was sent stays sent
  } finally {
    clientGone.removeEventListener('abort', onAbort);
    res.end();
  }
}
