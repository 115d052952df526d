// The audit log, as kube-apiserver's log backend (`--audit-log-path`) writes it with a policy of
// level Metadata for everything: one audit.k8s.io/v1 Event per line, appended as each request
// completes. Suites that must also run against a real cluster read who did what from here instead
// of the in-process request log.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface AuditObjectRef {
  resource?: string;
  namespace?: string;
  name?: string;
  uid?: string;
  apiGroup?: string;
  apiVersion?: string;
  resourceVersion?: string;
  subresource?: string;
}

export interface AuditEvent {
  kind: 'Event';
  apiVersion: 'audit.k8s.io/v1';
  level: 'Metadata';
  auditID: string;
  stage: 'ResponseStarted' | 'ResponseComplete';
  requestURI: string;
  verb: string;
  user: { username?: string; groups?: string[] };
  sourceIPs: string[];
  userAgent?: string;
  objectRef?: AuditObjectRef;
  responseStatus: { metadata: Record<string, never>; status?: string; message?: string; reason?: string; details?: unknown; code: number };
  requestReceivedTimestamp: string;
  stageTimestamp: string;
}

/** An append-only file of events; each is one write(2) of a whole line, so a reader never sees half of one. */
export class AuditLog {
  private fd: number | undefined;

  constructor(file: string) {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.fd = fs.openSync(file, 'a', 0o600);
  }

  write(event: AuditEvent): void {
    if (this.fd === undefined) return;
    fs.writeSync(this.fd, `${JSON.stringify(event)}\n`);
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** RFC 3339 with microseconds, as metav1.MicroTime serialises. */
export function microTime(epochMs: number = performance.timeOrigin + performance.now()): string {
  const whole = Math.floor(epochMs);
  const micros = Math.floor((epochMs - whole) * 1000);
  const iso = new Date(whole).toISOString(); // 2025-01-01T00:00:00.123Z
  return `${iso.slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
}

/** The request's own Audit-ID if it sent one (upstream keeps it), else a new UUID. */
export function auditIdOf(req: IncomingMessage): string {
  const sent = req.headers['audit-id'];
  return typeof sent === 'string' && sent !== '' ? sent : randomUUID();
}

/** As apimachinery's SourceIPs: the X-Forwarded-For chain, X-Real-Ip, then the peer address. */
export function sourceIPs(req: IncomingMessage): string[] {
  const ips: string[] = [];
  const forwarded = req.headers['x-forwarded-for'];
  for (const part of (Array.isArray(forwarded) ? forwarded.join(',') : forwarded ?? '').split(',')) {
    const ip = part.trim();
    if (isIp(ip)) ips.push(ip);
  }
  const real = req.headers['x-real-ip'];
  if (typeof real === 'string' && isIp(real.trim()) && !ips.includes(real.trim())) ips.push(real.trim());
  const remote = (req.socket.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.)/, '');
  if (remote && ips[ips.length - 1] !== remote) ips.push(remote);
  return ips;
}

function isIp(s: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(s) || (s.includes(':') && /^[0-9a-fA-F:.]+$/.test(s));
}

export interface AuditedRequest {
  auditID: string;
  verb: string;
  user: { username?: string; groups?: string[] };
  objectRef?: AuditObjectRef;
  /** watches, proxy, log…: kube-apiserver's long-running requests also get a ResponseStarted event */
  longRunning: boolean;
  /** failed authentication: upstream writes one ResponseStarted event and nothing more */
  failedAuthentication?: boolean;
}

interface Tracked {
  responseStatus?: Omit<AuditEvent['responseStatus'], 'metadata' | 'code'>;
  objectRef?: AuditObjectRef;
}

const tracked = new WeakMap<ServerResponse, Tracked>();

/** A Status body being sent: its status, message, reason and details go into the event, as upstream copies them. */
export function recordResponseStatus(res: ServerResponse, status: Record<string, unknown>): void {
  const t = tracked.get(res);
  if (!t) return;
  t.responseStatus = {
    ...(typeof status.status === 'string' ? { status: status.status } : {}),
    ...(typeof status.message === 'string' ? { message: status.message } : {}),
    ...(typeof status.reason === 'string' ? { reason: status.reason } : {}),
    ...(status.details !== undefined ? { details: status.details } : {}),
  };
}

/**
 * The decoded body of a create or update: like upstream's LogRequestObject, its namespace, name,
 * uid and resourceVersion complete the objectRef where the URL left them empty.
 */
export function recordRequestObject(res: ServerResponse, object: unknown): void {
  const ref = tracked.get(res)?.objectRef;
  const meta = (object as { metadata?: Record<string, unknown> } | undefined)?.metadata;
  if (!ref || !meta || typeof meta !== 'object') return;
  for (const key of ['namespace', 'name', 'uid', 'resourceVersion'] as const) {
    const value = meta[key];
    if (ref[key] === undefined && typeof value === 'string' && value !== '') ref[key] = value;
  }
}

/**
 * Writes the request's events: ResponseStarted when the headers go out (long-running requests and
 * failed authentication only), ResponseComplete just before the last byte is handed over (so a
 * client holding the whole answer finds the event), or when the connection closes first.
 */
export function auditRequest(log: AuditLog, req: IncomingMessage, res: ServerResponse, request: AuditedRequest): void {
  const received = microTime();
  const t: Tracked = request.objectRef ? { objectRef: { ...request.objectRef } } : {};
  tracked.set(res, t);
  const event = (stage: AuditEvent['stage']): AuditEvent => ({
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID: request.auditID,
    stage,
    requestURI: req.url ?? '/',
    verb: request.verb,
    user: request.user,
    sourceIPs: sourceIPs(req),
    ...(req.headers['user-agent'] ? { userAgent: req.headers['user-agent'] } : {}),
    ...(t.objectRef ? { objectRef: orderedRef(t.objectRef) } : {}),
    responseStatus: { metadata: {}, ...t.responseStatus, code: res.statusCode },
    requestReceivedTimestamp: received,
    stageTimestamp: microTime(),
  });

  let started = false;
  let completed = request.failedAuthentication === true;
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
  res.writeHead = ((...args: unknown[]) => {
    const out = writeHead(...args);
    if (!started && (request.longRunning || request.failedAuthentication)) log.write(event('ResponseStarted'));
    started = true;
    return out;
  }) as typeof res.writeHead;
  const complete = (): void => {
    if (completed) return;
    completed = true;
    log.write(event('ResponseComplete'));
  };
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.end = ((...args: unknown[]) => {
    complete();
    return end(...args);
  }) as typeof res.end;
  res.on('close', complete);
}

/** Field order of Go's ObjectReference, so lines read like a real server's. */
function orderedRef(r: AuditObjectRef): AuditObjectRef {
  const out: AuditObjectRef = {};
  for (const key of ['resource', 'namespace', 'name', 'uid', 'apiGroup', 'apiVersion', 'resourceVersion', 'subresource'] as const) {
    const value = r[key];
    if (value !== undefined && value !== '') out[key] = value;
  }
  return out;
}
