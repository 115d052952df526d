// Bodies in and out: reading and decoding request bodies (JSON, YAML, protobuf), the patch type
// and write/delete options of a request, content negotiation, and answers and Status errors.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import type { DeleteOptions, FieldValidation, PatchType, WriteOptions } from './api-options.ts';
import { obj } from './json.ts';
import { recordResponseStatus } from './audit.ts';
import { ApiError, badRequest, internal, unsupportedMediaType } from './errors.ts';
import { decodeProtobufObject, ProtobufError } from './protobuf.ts';

export function send(res: ServerResponse, status: number, body: unknown, contentType = 'application/json', warnings: string[] = []): void {
  if ((body as { kind?: unknown } | undefined)?.kind === 'Status') recordResponseStatus(res, body as Record<string, unknown>);
  const text = JSON.stringify(body);
  const headers: Record<string, string | string[]> = { 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(text)), 'Cache-Control': 'no-cache, private' };
  if (warnings.length > 0) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  res.writeHead(status, headers);
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  const apiErr = err instanceof ApiError ? err : internal((err as Error).message ?? String(err));
  if (!(err instanceof ApiError)) process.stderr.write(`[apiserver] ${(err as Error).stack ?? String(err)}\n`);
  if (res.headersSent) {
    res.end();
    return;
  }
  send(res, apiErr.code, apiErr.toStatus());
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** For the audit log only: a body the handler will reject is simply not looked at. */
export function tryDecodeBody(buf: Buffer, contentType: string): unknown {
  try {
    return decodeBody(buf, contentType);
  } catch {
    return undefined;
  }
}

export function decodeBody(buf: Buffer, contentType: string): unknown {
  const type = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  if (buf.length === 0) return undefined;
  if (type === 'application/vnd.kubernetes.protobuf') {
    try {
      return decodeProtobufObject(buf);
    } catch (err) {
      if (err instanceof ProtobufError) throw badRequest(`error decoding protobuf body: ${err.message}`);
      throw err;
    }
  }
  const text = buf.toString('utf8');
  try {
    if (type.includes('yaml')) return parseYaml(text) as unknown;
    if (type === '' || type.includes('json')) return JSON.parse(text) as unknown;
  } catch (err) {
    throw badRequest(`error decoding request body: ${(err as Error).message}`);
  }
  throw unsupportedMediaType(contentType);
}

export function patchTypeOf(contentType: string): PatchType {
  const type = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  switch (type) {
    case 'application/json-patch+json':
      return 'json';
    case 'application/merge-patch+json':
      return 'merge';
    case 'application/strategic-merge-patch+json':
      return 'strategic';
    case 'application/apply-patch+yaml':
      return 'apply';
    default:
      throw unsupportedMediaType(contentType);
  }
}

export interface Negotiated {
  table: boolean;
  partial: boolean;
}

/** Reads `as=Table` / `as=PartialObjectMetadata(List)` from Accept, honouring client order. */
export function negotiate(accept: string | undefined): Negotiated {
  for (const part of (accept ?? '').split(',')) {
    const [media, ...params] = part.split(';').map((s) => s.trim());
    const p = new Map(params.map((x) => x.split('=').map((y) => y.trim()) as [string, string]));
    const as = p.get('as');
    if (as === 'Table' && (p.get('g') ?? 'meta.k8s.io') === 'meta.k8s.io') return { table: true, partial: false };
    if ((as === 'PartialObjectMetadata' || as === 'PartialObjectMetadataList') && p.get('g') === 'meta.k8s.io') return { table: false, partial: true };
    if (!as && (media === 'application/json' || media === '*/*' || media === 'application/*' || media === 'application/yaml')) return { table: false, partial: false };
  }
  return { table: false, partial: false };
}

export function writeOptions(query: URLSearchParams, req: IncomingMessage): WriteOptions {
  const dryRun = query.getAll('dryRun');
  if (dryRun.some((d) => d !== 'All')) throw badRequest(`Invalid dry run value: ${dryRun.join(',')}; supported values are: All`);
  const fv = query.get('fieldValidation') ?? 'Warn';
  if (!['Strict', 'Warn', 'Ignore'].includes(fv)) throw badRequest(`fieldValidation must be one of: Ignore, Warn, Strict (got ${fv})`);
  const fieldManager = query.get('fieldManager') ?? undefined;
  if (fieldManager !== undefined && fieldManager.length > 128) throw badRequest('fieldManager: Too long: may not be more than 128 bytes');
  return { dryRun: dryRun.length > 0, ...(fieldManager ? { fieldManager } : {}), fieldValidation: fv as FieldValidation, userAgent: req.headers['user-agent'] ?? '' };
}

export function deleteOptions(query: URLSearchParams, body: unknown): DeleteOptions {
  const b = obj(body);
  const out: DeleteOptions = {};
  const policy = query.get('propagationPolicy') ?? (typeof b.propagationPolicy === 'string' ? b.propagationPolicy : undefined);
  if (policy) out.propagationPolicy = policy as DeleteOptions['propagationPolicy'];
  const grace = query.get('gracePeriodSeconds') ?? (typeof b.gracePeriodSeconds === 'number' ? String(b.gracePeriodSeconds) : undefined);
  if (grace !== undefined) out.gracePeriodSeconds = Number(grace);
  const orphan = query.get('orphanDependents') ?? (typeof b.orphanDependents === 'boolean' ? String(b.orphanDependents) : undefined);
  if (orphan !== undefined) out.orphanDependents = orphan === 'true';
  const pre = obj(b.preconditions);
  if (typeof pre.uid === 'string' || typeof pre.resourceVersion === 'string') {
    out.preconditions = { ...(typeof pre.uid === 'string' ? { uid: pre.uid } : {}), ...(typeof pre.resourceVersion === 'string' ? { resourceVersion: pre.resourceVersion } : {}) };
  }
  const dry = [...query.getAll('dryRun'), ...(Array.isArray(b.dryRun) ? (b.dryRun as string[]) : [])];
  if (dry.length > 0) out.dryRun = true;
  return out;
}
