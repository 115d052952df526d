// Pushes a built image to a registry with the distribution API: blobs the registry lacks are
// uploaded (streamed from storage), then the manifest is put under the tag. Used by
// `nixery build --push`, which is what a NixImage's build Job runs.
import { Readable } from 'node:stream';
import type { BuildResult } from '../build/result.ts';
import { isValidRepositoryName, validateTag } from '../image/name.ts';
import type { Logger } from '../log/logger.ts';
import type { StorageBackend } from '../storage/backend.ts';

export interface PushTarget {
  /** host:port */
  registry: string;
  name: string;
  tag: string;
  scheme: 'http' | 'https';
  token: string;
}

export interface PushOutcome {
  reference: string;
  digest: string;
  uploaded: number;
  skipped: number;
}

export class PushError extends Error {
  readonly code = 'PUSH_FAILED';
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PushError';
    this.status = status;
  }
}

/** Splits `host:port/name/parts:tag`; the registry host is required, as with any push. */
export function parsePushReference(reference: string): { registry: string; name: string; tag: string } {
  const slash = reference.indexOf('/');
  if (slash <= 0) throw new Error(`expected registry/name:tag, got ${JSON.stringify(reference)}`);
  const registry = reference.slice(0, slash);
  const rest = reference.slice(slash + 1);
  const colon = rest.lastIndexOf(':');
  const name = colon < 0 ? rest : rest.slice(0, colon);
  const tag = colon < 0 ? 'latest' : rest.slice(colon + 1);
  if (!isValidRepositoryName(name)) throw new Error(`invalid repository name ${JSON.stringify(name)} in ${reference}`);
  validateTag(tag);
  return { registry, name, tag };
}

const ATTEMPTS = 4;

export async function pushImage(storage: StorageBackend, result: BuildResult, target: PushTarget, log: Logger): Promise<PushOutcome> {
  const base = `${target.scheme}://${target.registry}/v2/${target.name}`;
  const auth = { Authorization: `Bearer ${target.token}` };
  let uploaded = 0;
  let skipped = 0;
  for (const digest of [result.config.digest, ...result.layers.map((l) => l.digest)]) {
    const exists = await withRetries(`HEAD ${digest}`, log, async () => {
      const response = await fetch(`${base}/blobs/${digest}`, { method: 'HEAD', headers: auth });
      if (response.status === 200) return true;
      if (response.status === 404) return false;
      throw await failure(response, `checking blob ${digest}`);
    });
    if (exists) {
      skipped++;
      continue;
    }
    await withRetries(`upload ${digest}`, log, async () => {
      const body = await openBlob(storage, digest);
      const response = await fetch(`${base}/blobs/uploads/?digest=${digest}`, {
        method: 'POST',
        headers: { ...auth, 'Content-Type': 'application/octet-stream' },
        body: Readable.toWeb(body) as ReadableStream,
        duplex: 'half',
      } as RequestInit);
      if (response.status !== 201) throw await failure(response, `uploading blob ${digest}`);
      await response.body?.cancel();
    });
    uploaded++;
  }
  const manifest = await storage.readBlob(result.digest);
  const pushedDigest = await withRetries('PUT manifest', log, async () => {
    const response = await fetch(`${base}/manifests/${target.tag}`, {
      method: 'PUT',
      headers: { ...auth, 'Content-Type': result.mediaType },
      body: new Uint8Array(manifest),
    });
    if (response.status !== 201) throw await failure(response, `putting the manifest ${target.name}:${target.tag}`);
    await response.body?.cancel();
    return response.headers.get('docker-content-digest');
  });
  if (pushedDigest !== null && pushedDigest !== result.digest) {
    throw new PushError(`the registry stored the manifest as ${pushedDigest}, expected ${result.digest}`);
  }
  return { reference: `${target.registry}/${target.name}:${target.tag}`, digest: result.digest, uploaded, skipped };
}

async function openBlob(storage: StorageBackend, digest: string): Promise<Readable> {
  const delivery = await storage.deliverBlob(digest);
  if (!delivery) throw new PushError(`blob ${digest} is missing from local storage`);
  if (delivery.kind === 'stream') return delivery.open();
  const response = await fetch(delivery.url);
  if (!response.ok || !response.body) throw await failure(response, `reading blob ${digest} from storage`);
  return Readable.fromWeb(response.body as never);
}

async function failure(response: Response, what: string): Promise<PushError> {
  const text = await response.text().catch(() => '');
  let detail = text.slice(0, 500);
  try {
    const body = JSON.parse(text) as { errors?: { code: string; message: string }[] };
    if (body.errors?.length) detail = body.errors.map((e) => `${e.code}: ${e.message}`).join('; ');
  } catch {
    // Not a registry error body; keep the text.
  }
  return new PushError(`${what} failed with HTTP ${response.status}${detail ? `: ${detail}` : ''}`, response.status);
}

/** Network errors, 429 and 5xx are worth another try; 4xx answers are final. */
async function withRetries<T>(what: string, log: Logger, attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      const status = error instanceof PushError ? error.status : undefined;
      const transient = status === undefined ? !(error instanceof PushError) : status === 429 || status >= 500;
      if (!transient || n >= ATTEMPTS) {
        if (error instanceof PushError) throw error;
        throw new PushError(`${what} failed: ${(error as Error).message}`, undefined, { cause: error });
      }
      const delay = 250 * 2 ** (n - 1);
      log.warn('push step failed; retrying', { what, attempt: n, retryInMs: delay, error: (error as Error).message });
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
