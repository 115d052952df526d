// The API requests a suite made, read from a kube-apiserver audit log (`--audit-log-path`, JSON
// lines of audit.k8s.io/v1 Events). The test cluster writes one as a real API server does, so the
// same evidence (who wrote what, with which field manager) is available against either.
import fs from 'node:fs/promises';
import type { RequestLogEntry, Verb, NonResourceVerb } from '@nixery/k8s-harness';

interface AuditEvent {
  kind?: string;
  stage?: string;
  requestURI?: string;
  verb?: string;
  user?: { username?: string; groups?: string[] };
  objectRef?: { resource?: string; namespace?: string; name?: string; apiGroup?: string; apiVersion?: string; subresource?: string };
  responseStatus?: { code?: number };
}

/** A reader of the audit log from where it ended when the reader was made. */
export class AuditLog {
  readonly file: string;
  private readonly start: number;

  private constructor(file: string, start: number) {
    this.file = file;
    this.start = start;
  }

  /** Starts reading at the log's current end: earlier requests belong to someone else. */
  static async from(file: string): Promise<AuditLog> {
    let size: number;
    try {
      size = (await fs.stat(file)).size;
    } catch (cause) {
      throw new Error(`cannot read the API server's audit log ${file}: ${(cause as Error).message}`, { cause });
    }
    return new AuditLog(file, size);
  }

  /** Every completed request since the reader was made, in the order the API server logged them. */
  async requests(): Promise<RequestLogEntry[]> {
    const handle = await fs.open(this.file, 'r');
    try {
      const { size } = await handle.stat();
      const buffer = Buffer.alloc(Math.max(0, size - this.start));
      await handle.read(buffer, 0, buffer.length, this.start);
      const text = buffer.toString('utf8');
      // A line still being written has no newline yet: leave it for the next read.
      const complete = text.slice(0, text.lastIndexOf('\n') + 1);
      return complete
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as AuditEvent)
        .filter((e) => e.kind === 'Event' && e.stage === 'ResponseComplete')
        .map(toRequest);
    } finally {
      await handle.close();
    }
  }
}

/** An audit event as the request-log entry the RBAC checks and write counts work on. */
export function toRequest(event: AuditEvent): RequestLogEntry {
  const uri = new URL(event.requestURI ?? '/', 'https://apiserver');
  const ref = event.objectRef;
  const fieldManager = uri.searchParams.get('fieldManager');
  const verb = (event.verb ?? '') as Verb | NonResourceVerb;
  const code = event.responseStatus?.code ?? 0;
  return {
    method: '',
    path: uri.pathname,
    verb,
    ...(fieldManager ? { fieldManager } : {}),
    user: event.user?.username ?? '',
    groups: event.user?.groups ?? [],
    resourceRequest: ref !== undefined,
    ...(ref
      ? {
          apiGroup: ref.apiGroup ?? '',
          ...(ref.apiVersion !== undefined ? { apiVersion: ref.apiVersion } : {}),
          ...(ref.resource !== undefined ? { resource: ref.resource } : {}),
          ...(ref.subresource !== undefined ? { subresource: ref.subresource } : {}),
          ...(ref.namespace !== undefined ? { namespace: ref.namespace } : {}),
          // The audit log names a created object from its body; authorizers never see that name.
          ...(ref.name !== undefined && !(verb === 'create' && ref.subresource === undefined) ? { name: ref.name } : {}),
        }
      : {}),
    // An update or patch answered 201 created the object, which RBAC also authorizes as create.
    ...((verb === 'update' || verb === 'patch') && code === 201 ? { created: true as const } : {}),
  };
}
