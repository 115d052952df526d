// A local stand-in for Google Cloud Storage: the parts of the JSON API, the upload API and the XML
// API (V4 signed URLs) that @google-cloud/storage and the registry use, on a loopback port.
// It follows the documented behaviour (resumable sessions with 308 and Range, preconditions,
// object metadata with md5Hash and crc32c, Google's error bodies) so that the backend is tested
// against the service's rules rather than against a mock shaped after the code. Tests inject
// faults (error statuses, dropped or stalled connections) to exercise the client's recovery.
//
// Paths served (the library sends JSON calls to `/b/...` when STORAGE_EMULATOR_HOST is set, and to
// `/storage/v1/b/...` otherwise; both are accepted):
//   GET    [/storage/v1]/b/{bucket}                                    buckets.get
//   GET    [/storage/v1]/b/{bucket}/o                                  objects.list
//   GET    [/storage/v1]/b/{bucket}/o/{object}[?alt=media]             objects.get / objects.download
//   GET    /download/storage/v1/b/{bucket}/o/{object}?alt=media        objects.download
//   PATCH  [/storage/v1]/b/{bucket}/o/{object}                         objects.patch
//   DELETE [/storage/v1]/b/{bucket}/o/{object}                         objects.delete
//   POST   [/storage/v1]/b/{b}/o/{o}/(rewriteTo|copyTo)/b/{b}/o/{o}    objects.rewrite / objects.copy
//   POST   /upload/storage/v1/b/{bucket}/o?uploadType=media|multipart  objects.insert
//   POST   /upload/storage/v1/b/{bucket}/o?uploadType=resumable        uploads.start
//   PUT    /upload/storage/v1/b/{bucket}/o?upload_id=...               uploads.chunk / uploads.status
//   GET    /{bucket}/{object}  (XML API: V4 signed URLs, or anonymous reads of public buckets)
import http from 'node:http';
import { createHash, createPublicKey, createVerify, randomUUID, type KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { crc32cBase64 } from './crc32c.ts';

export type Operation =
  | 'buckets.get'
  | 'objects.list'
  | 'objects.get'
  | 'objects.download'
  | 'objects.patch'
  | 'objects.delete'
  | 'objects.rewrite'
  | 'objects.copy'
  | 'objects.insert'
  | 'uploads.start'
  | 'uploads.chunk'
  | 'uploads.status'
  | 'xml.download';

/** What a fault rule's `when` sees of a request. */
export interface FaultRequest {
  operation: Operation;
  method: string;
  bucket: string;
  object?: string;
  /** uploads.chunk: the first byte of the chunk, and how many bytes the session had persisted. */
  chunkStart?: number;
  persisted?: number;
  headers: http.IncomingHttpHeaders;
}

export type FaultAction =
  /** Answer with this status and a Google error body (the request body is read and discarded). */
  | { type: 'status'; status: number; reason?: string; message?: string }
  /**
   * Reset the connection. Uploads: after this many request body bytes arrived (a resumable
   * session keeps what arrived, down to a 256 KiB boundary, as GCS may). Downloads: after this
   * many response body bytes were sent. Other calls: after the call took effect, before answering.
   */
  | { type: 'drop'; afterBytes?: number }
  /** Downloads: send this many body bytes, then close the connection cleanly, short of Content-Length. */
  | { type: 'truncate'; afterBytes: number }
  /** Downloads: send this many body bytes, then nothing more while keeping the connection open. */
  | { type: 'stall'; afterBytes: number }
  /**
   * Uploads: flip a bit of the request body before storing it, as corruption that TCP missed
   * would; the object's md5Hash and crc32c then describe the corrupted bytes.
   */
  | { type: 'corrupt' };

export interface FaultRule {
  operation: Operation;
  when?: (request: FaultRequest) => boolean;
  action: FaultAction;
  /** How many matching requests the fault applies to (default 1). */
  times?: number;
}

export interface FaultHandle {
  readonly hits: number;
  remove(): void;
}

export interface RequestRecord {
  method: string;
  url: string;
  operation: Operation | 'unknown';
  bucket?: string;
  object?: string;
  /** XML API requests that carried a V4 signature. */
  signed: boolean;
  /** The Range header of a download. */
  range?: string;
  /** The answer's status; absent when the connection was cut first. */
  status?: number;
  fault?: FaultAction['type'];
}

export interface StoredObject {
  bucket: string;
  name: string;
  data: Buffer;
  generation: string;
  metageneration: number;
  contentType: string;
  md5Hash: string;
  crc32c: string;
  timeCreated: string;
  updated: string;
  metadata?: Record<string, string>;
}

interface Bucket {
  name: string;
  public: boolean;
  timeCreated: string;
  objects: Map<string, StoredObject>;
}

interface UploadSession {
  id: string;
  bucket: string;
  name: string;
  contentType: string;
  metadata?: Record<string, string>;
  preconditions: URLSearchParams;
  /** md5Hash and crc32c given when the session started, checked when it completes. */
  expectedHashes: Record<string, unknown>;
  /** What the session has persisted; the client resumes after it. */
  data: Buffer;
  result?: StoredObject;
}

interface ActiveFault {
  rule: FaultRule;
  remaining: number;
  hits: number;
}

/** Resumable chunks other than the last must be multiples of this; GCS persists in these units. */
export const RESUMABLE_CHUNK_UNIT = 256 * 1024;
const MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600;

export interface GcsEmulatorOptions {
  buckets?: string[];
}

export async function startGcsEmulator(options: GcsEmulatorOptions = {}): Promise<GcsEmulator> {
  const emulator = new GcsEmulator();
  for (const name of options.buckets ?? []) emulator.createBucket(name);
  await emulator.listen();
  return emulator;
}

export class GcsEmulator {
  readonly requests: RequestRecord[] = [];
  private readonly server: http.Server;
  private readonly buckets = new Map<string, Bucket>();
  private readonly sessions = new Map<string, UploadSession>();
  private readonly accounts = new Map<string, KeyObject>();
  private faults: ActiveFault[] = [];
  private generationSeq = BigInt(Date.now()) * 1000n;
  private port = 0;

  constructor() {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) jsonError(res, 500, 'backendError', `emulator failure: ${(error as Error).message}`);
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 5_000;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** The value for STORAGE_EMULATOR_HOST. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  createBucket(name: string, options: { public?: boolean } = {}): void {
    if (!this.buckets.has(name)) {
      this.buckets.set(name, { name, public: options.public ?? false, timeCreated: new Date().toISOString(), objects: new Map() });
    }
  }

  /** Signed URLs are verified with the public key of the account named in X-Goog-Credential. */
  registerServiceAccount(clientEmail: string, publicKey: KeyObject | string): void {
    this.accounts.set(clientEmail, typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey);
  }

  inject(rule: FaultRule): FaultHandle {
    const active: ActiveFault = { rule, remaining: rule.times ?? 1, hits: 0 };
    this.faults.push(active);
    return {
      get hits() {
        return active.hits;
      },
      remove: () => {
        this.faults = this.faults.filter((f) => f !== active);
      },
    };
  }

  clearFaults(): void {
    this.faults = [];
  }

  object(bucket: string, name: string): StoredObject | undefined {
    return this.buckets.get(bucket)?.objects.get(name);
  }

  objectNames(bucket: string, prefix = ''): string[] {
    return [...(this.buckets.get(bucket)?.objects.keys() ?? [])].filter((n) => n.startsWith(prefix)).sort();
  }

  /** Stores an object directly, as another writer would. */
  putObject(bucket: string, name: string, data: Buffer, contentType = 'application/octet-stream'): StoredObject {
    const b = this.buckets.get(bucket);
    if (!b) throw new Error(`no bucket ${bucket}`);
    return this.store(b, name, data, { contentType });
  }

  // ---------------------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    const queryAt = rawUrl.indexOf('?');
    const rawPath = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
    const rawQuery = queryAt === -1 ? '' : rawUrl.slice(queryAt + 1);
    const query = new URLSearchParams(rawQuery);
    const method = req.method ?? 'GET';
    const route = this.route(method, rawPath, query, req.headers);
    const record: RequestRecord = {
      method,
      url: rawUrl,
      operation: route?.operation ?? 'unknown',
      signed: route?.operation === 'xml.download' && (query.has('X-Goog-Signature') || query.has('X-Goog-Algorithm')),
      ...(route?.bucket !== undefined ? { bucket: route.bucket } : {}),
      ...(route?.object !== undefined ? { object: route.object } : {}),
      ...(typeof req.headers.range === 'string' ? { range: req.headers.range } : {}),
    };
    this.requests.push(record);
    // A connection cut before an answer has no status.
    res.on('close', () => {
      if (res.headersSent) record.status = res.statusCode;
    });
    if (!route) {
      await drain(req);
      jsonError(res, 404, 'notFound', `Not Found: ${method} ${rawPath}`);
      return;
    }

    const faultRequest: FaultRequest = {
      operation: route.operation,
      method,
      bucket: route.bucket,
      ...(route.object !== undefined ? { object: route.object } : {}),
      headers: req.headers,
    };
    let session: UploadSession | undefined;
    if (route.operation === 'uploads.chunk' || route.operation === 'uploads.status') {
      session = this.sessions.get(query.get('upload_id') ?? '');
      if (session) {
        faultRequest.object = session.name;
        faultRequest.persisted = session.data.length;
        const range = parseContentRange(req.headers['content-range']);
        if (range && range.start !== undefined) faultRequest.chunkStart = range.start;
      }
    }
    const fault = this.takeFault(faultRequest);
    if (fault) record.fault = fault.type;
    if (fault?.type === 'status') {
      await drain(req);
      if (route.operation === 'xml.download') xmlError(res, fault.status, fault.reason ?? 'InternalError', fault.message ?? 'injected fault');
      else jsonError(res, fault.status, fault.reason ?? reasonFor(fault.status), fault.message ?? `injected fault (${fault.status})`);
      return;
    }
    const base = `http://${req.headers.host ?? `127.0.0.1:${this.port}`}`;
    const ctx: Ctx = { req, res, query, rawPath, base, fault };

    switch (route.operation) {
      case 'buckets.get':
        return this.getBucket(ctx, route.bucket);
      case 'objects.list':
        return this.listObjects(ctx, route.bucket);
      case 'objects.get':
      case 'objects.download':
        return this.getObject(ctx, route.bucket, route.object!, route.operation === 'objects.download');
      case 'objects.patch':
        return this.patchObject(ctx, route.bucket, route.object!);
      case 'objects.delete':
        return this.deleteObject(ctx, route.bucket, route.object!);
      case 'objects.rewrite':
      case 'objects.copy':
        return this.rewriteObject(ctx, route, route.operation === 'objects.rewrite');
      case 'objects.insert':
        return this.insertObject(ctx, route.bucket);
      case 'uploads.start':
        return this.startResumable(ctx, route.bucket);
      case 'uploads.chunk':
      case 'uploads.status':
        return this.putChunk(ctx, session);
      case 'xml.download':
        return this.xmlDownload(ctx, route.bucket, route.object!);
    }
  }

  private route(method: string, rawPath: string, query: URLSearchParams, headers: http.IncomingHttpHeaders): Route | undefined {
    const segs = rawPath.split('/').slice(1);
    const dec = (s: string | undefined) => (s === undefined ? undefined : safeDecode(s));
    if (segs[0] === 'upload' && segs[1] === 'storage' && segs[2] === 'v1' && segs[3] === 'b' && segs[5] === 'o' && segs.length === 6) {
      const bucket = dec(segs[4])!;
      if (query.has('upload_id') && (method === 'PUT' || method === 'POST')) {
        const range = headers['content-range'];
        const statusQuery = typeof range === 'string' && /^bytes \*\//.test(range.trim());
        return { operation: statusQuery ? 'uploads.status' : 'uploads.chunk', bucket };
      }
      if (method !== 'POST') return undefined;
      if (query.get('uploadType') === 'resumable') return { operation: 'uploads.start', bucket };
      return { operation: 'objects.insert', bucket };
    }
    let json = segs;
    if (segs[0] === 'download' && segs[1] === 'storage' && segs[2] === 'v1') json = segs.slice(3);
    else if (segs[0] === 'storage' && segs[1] === 'v1') json = segs.slice(2);
    if (json[0] === 'b' && json.length >= 2) {
      const bucket = dec(json[1])!;
      if (json.length === 2 && method === 'GET') return { operation: 'buckets.get', bucket };
      if (json.length === 3 && json[2] === 'o' && method === 'GET') return { operation: 'objects.list', bucket };
      if (json.length === 4 && json[2] === 'o') {
        const object = dec(json[3])!;
        if (method === 'GET') return { operation: query.get('alt') === 'media' ? 'objects.download' : 'objects.get', bucket, object };
        if (method === 'PATCH') return { operation: 'objects.patch', bucket, object };
        if (method === 'DELETE') return { operation: 'objects.delete', bucket, object };
      }
      if (json.length === 9 && json[2] === 'o' && json[5] === 'b' && json[7] === 'o' && method === 'POST') {
        if (json[4] === 'rewriteTo' || json[4] === 'copyTo') {
          return {
            operation: json[4] === 'rewriteTo' ? 'objects.rewrite' : 'objects.copy',
            bucket,
            object: dec(json[3])!,
            destBucket: dec(json[6])!,
            destObject: dec(json[8])!,
          };
        }
      }
      return undefined;
    }
    // Bucket names have at least three characters, so `/b/...` is never an XML path.
    if (segs.length >= 2 && segs[0] && (method === 'GET' || method === 'HEAD')) {
      const object = dec(segs.slice(1).join('/'));
      if (object) return { operation: 'xml.download', bucket: dec(segs[0])!, object };
    }
    return undefined;
  }

  private takeFault(request: FaultRequest): FaultAction | undefined {
    const active = this.faults.find((f) => f.remaining > 0 && f.rule.operation === request.operation && (!f.rule.when || f.rule.when(request)));
    if (!active) return undefined;
    active.remaining--;
    active.hits++;
    return active.rule.action;
  }

  private bucketOr404(ctx: Ctx, name: string, xml = false): Bucket | undefined {
    const bucket = this.buckets.get(name);
    if (!bucket) {
      if (xml) xmlError(ctx.res, 404, 'NoSuchBucket', 'The specified bucket does not exist.');
      else jsonError(ctx.res, 404, 'notFound', 'The specified bucket does not exist.');
    }
    return bucket;
  }

  private async getBucket(ctx: Ctx, name: string): Promise<void> {
    await drain(ctx.req);
    const bucket = this.bucketOr404(ctx, name);
    if (!bucket) return;
    this.answer(ctx, 200, {
      kind: 'storage#bucket',
      id: bucket.name,
      selfLink: `${ctx.base}/storage/v1/b/${bucket.name}`,
      projectNumber: '0',
      name: bucket.name,
      timeCreated: bucket.timeCreated,
      updated: bucket.timeCreated,
      metageneration: '1',
      location: 'US',
      storageClass: 'STANDARD',
      etag: 'CAE=',
    });
  }

  private async listObjects(ctx: Ctx, name: string): Promise<void> {
    await drain(ctx.req);
    const bucket = this.bucketOr404(ctx, name);
    if (!bucket) return;
    const prefix = ctx.query.get('prefix') ?? '';
    const maxResults = Math.min(Number(ctx.query.get('maxResults') ?? 1000) || 1000, 1000);
    const after = ctx.query.get('pageToken') ? Buffer.from(ctx.query.get('pageToken')!, 'base64url').toString() : '';
    const names = [...bucket.objects.keys()].filter((n) => n.startsWith(prefix) && n > after).sort();
    const page = names.slice(0, maxResults);
    const body: Record<string, unknown> = { kind: 'storage#objects' };
    if (page.length > 0) body.items = page.map((n) => resource(bucket.objects.get(n)!, ctx.base));
    if (names.length > page.length) body.nextPageToken = Buffer.from(page[page.length - 1]!).toString('base64url');
    this.answer(ctx, 200, body);
  }

  private async getObject(ctx: Ctx, bucketName: string, name: string, media: boolean): Promise<void> {
    await drain(ctx.req);
    const bucket = this.bucketOr404(ctx, bucketName);
    if (!bucket) return;
    const object = bucket.objects.get(name);
    const generation = ctx.query.get('generation');
    if (!object || (generation !== null && generation !== object.generation)) {
      jsonError(ctx.res, 404, 'notFound', `No such object: ${bucketName}/${name}`);
      return;
    }
    if (!preconditionsHold(ctx.query, object)) {
      jsonError(ctx.res, 412, 'conditionNotMet', 'At least one of the pre-conditions you specified did not hold.');
      return;
    }
    if (media) this.sendMedia(ctx, object, 'json');
    else this.answer(ctx, 200, resource(object, ctx.base));
  }

  private async patchObject(ctx: Ctx, bucketName: string, name: string): Promise<void> {
    const body = await readJson(ctx.req);
    const bucket = this.bucketOr404(ctx, bucketName);
    if (!bucket) return;
    const object = bucket.objects.get(name);
    if (!object) return jsonError(ctx.res, 404, 'notFound', `No such object: ${bucketName}/${name}`);
    if (!preconditionsHold(ctx.query, object)) {
      return jsonError(ctx.res, 412, 'conditionNotMet', 'At least one of the pre-conditions you specified did not hold.');
    }
    if (typeof body.contentType === 'string') object.contentType = body.contentType;
    if (body.metadata && typeof body.metadata === 'object') object.metadata = { ...object.metadata, ...(body.metadata as Record<string, string>) };
    object.metageneration++;
    object.updated = new Date().toISOString();
    this.answer(ctx, 200, resource(object, ctx.base));
  }

  private async deleteObject(ctx: Ctx, bucketName: string, name: string): Promise<void> {
    await drain(ctx.req);
    const bucket = this.bucketOr404(ctx, bucketName);
    if (!bucket) return;
    const object = bucket.objects.get(name);
    const generation = ctx.query.get('generation');
    if (!object || (generation !== null && generation !== object.generation)) {
      return jsonError(ctx.res, 404, 'notFound', `No such object: ${bucketName}/${name}`);
    }
    if (!preconditionsHold(ctx.query, object)) {
      return jsonError(ctx.res, 412, 'conditionNotMet', 'At least one of the pre-conditions you specified did not hold.');
    }
    bucket.objects.delete(name);
    if (this.dropInsteadOfAnswer(ctx)) return;
    ctx.res.writeHead(204).end();
  }

  private async rewriteObject(ctx: Ctx, route: Route, rewrite: boolean): Promise<void> {
    const body = await readJson(ctx.req);
    const source = this.bucketOr404(ctx, route.bucket);
    if (!source) return;
    const dest = this.bucketOr404(ctx, route.destBucket!);
    if (!dest) return;
    const object = source.objects.get(route.object!);
    const sourceGeneration = ctx.query.get('sourceGeneration');
    if (!object || (sourceGeneration !== null && sourceGeneration !== object.generation)) {
      return jsonError(ctx.res, 404, 'notFound', `No such object: ${route.bucket}/${route.object}`);
    }
    const sourceConditions = new URLSearchParams();
    for (const [k, v] of ctx.query) {
      const m = /^ifSource(.+)$/.exec(k);
      if (m) sourceConditions.set(`if${m[1]}`, v);
    }
    if (!preconditionsHold(sourceConditions, object) || !preconditionsHold(ctx.query, dest.objects.get(route.destObject!))) {
      return jsonError(ctx.res, 412, 'conditionNotMet', 'At least one of the pre-conditions you specified did not hold.');
    }
    const copied = this.store(dest, route.destObject!, object.data, {
      contentType: typeof body.contentType === 'string' ? body.contentType : object.contentType,
      ...(body.metadata && typeof body.metadata === 'object'
        ? { metadata: body.metadata as Record<string, string> }
        : object.metadata
          ? { metadata: object.metadata }
          : {}),
    });
    if (this.dropInsteadOfAnswer(ctx)) return;
    if (!rewrite) return this.answer(ctx, 200, resource(copied, ctx.base));
    const size = String(copied.data.length);
    this.answer(ctx, 200, {
      kind: 'storage#rewriteResponse',
      totalBytesRewritten: size,
      objectSize: size,
      done: true,
      resource: resource(copied, ctx.base),
    });
  }

  private async insertObject(ctx: Ctx, bucketName: string): Promise<void> {
    const dropAfter = ctx.fault?.type === 'drop' ? (ctx.fault.afterBytes ?? 0) : undefined;
    const { body, dropped } = await readBody(ctx.req, dropAfter);
    if (dropped) return;
    const bucket = this.bucketOr404(ctx, bucketName);
    if (!bucket) return;
    const uploadType = ctx.query.get('uploadType');
    let metadata: Record<string, unknown> = {};
    let data: Buffer;
    let mediaType: string | undefined;
    if (uploadType === 'multipart') {
      const parsed = parseMultipart(body, String(ctx.req.headers['content-type'] ?? ''));
      if (!parsed) return jsonError(ctx.res, 400, 'invalid', 'Invalid multipart request: expected a JSON metadata part and a media part.');
      metadata = parsed.metadata;
      data = parsed.media;
      mediaType = parsed.mediaType;
    } else if (uploadType === 'media') {
      data = body;
      mediaType = ctx.req.headers['content-type'];
    } else {
      return jsonError(ctx.res, 400, 'invalid', `Unsupported uploadType ${JSON.stringify(uploadType)}.`);
    }
    const name = ctx.query.get('name') ?? (typeof metadata.name === 'string' ? metadata.name : undefined);
    if (!name) return jsonError(ctx.res, 400, 'required', 'Required parameter: name');
    if (ctx.fault?.type === 'corrupt') corrupt(data);
    const hashError = checkGoogHash(ctx.req.headers['x-goog-hash'], data) ?? checkMetadataHashes(metadata, data);
    if (hashError) return jsonError(ctx.res, 400, 'invalid', hashError);
    if (!preconditionsHold(ctx.query, bucket.objects.get(name))) {
      return jsonError(ctx.res, 412, 'conditionNotMet', 'At least one of the pre-conditions you specified did not hold.');
    }
    const contentType = typeof metadata.contentType === 'string' ? metadata.contentType : (mediaType ?? 'application/octet-stream');
    const stored = this.store(bucket, name, data, {
      contentType,
      ...(metadata.metadata && typeof metadata.metadata === 'object' ? { metadata: metadata.metadata as Record<string, string> } : {}),
    });
    this.answer(ctx, 200, resource(stored, ctx.base));
  }

  private async startResumable(ctx: Ctx, bucketName: string): Promise<void> {
    const metadata = await readJson(ctx.req);
    const bucket = this.bucketOr404(ctx, bucketName);
    if (!bucket) return;
    const name = ctx.query.get('name') ?? (typeof metadata.name === 'string' ? metadata.name : undefined);
    if (!name) return jsonError(ctx.res, 400, 'required', 'Required parameter: name');
    if (!preconditionsHold(ctx.query, bucket.objects.get(name))) {
      return jsonError(ctx.res, 412, 'conditionNotMet', 'At least one of the pre-conditions you specified did not hold.');
    }
    const headerType = ctx.req.headers['x-upload-content-type'];
    const session: UploadSession = {
      id: randomUUID().replaceAll('-', ''),
      bucket: bucketName,
      name,
      contentType:
        typeof metadata.contentType === 'string' ? metadata.contentType : typeof headerType === 'string' ? headerType : 'application/octet-stream',
      ...(metadata.metadata && typeof metadata.metadata === 'object' ? { metadata: metadata.metadata as Record<string, string> } : {}),
      preconditions: new URLSearchParams([...ctx.query].filter(([k]) => k.startsWith('if'))),
      expectedHashes: { md5Hash: metadata.md5Hash, crc32c: metadata.crc32c },
      data: Buffer.alloc(0),
    };
    this.sessions.set(session.id, session);
    if (this.dropInsteadOfAnswer(ctx)) return;
    const location = `${ctx.base}/upload/storage/v1/b/${encodeURIComponent(bucketName)}/o?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${session.id}`;
    ctx.res.writeHead(200, { location, 'content-length': '0' }).end();
  }

  /**
   * One request of a resumable session. `Content-Range: bytes a-b/T` carries bytes a..b of an
   * object of T bytes (`*` while unknown); `bytes a-*\/T` carries the rest of the object;
   * `bytes *\/T` or `bytes *\/*` with no body asks how much was persisted (and, with T equal to
   * that, completes the object). Incomplete sessions answer 308 with `Range: bytes=0-N`.
   */
  private async putChunk(ctx: Ctx, session: UploadSession | undefined): Promise<void> {
    const dropAfter = ctx.fault?.type === 'drop' ? (ctx.fault.afterBytes ?? 0) : undefined;
    const range = parseContentRange(ctx.req.headers['content-range']);
    const { body, dropped } = await readBody(ctx.req, dropAfter);
    if (ctx.fault?.type === 'corrupt') corrupt(body);
    if (!session) return jsonError(ctx.res, 404, 'notFound', 'No such upload session (it may have expired).');
    if (session.result && !dropped) return this.answer(ctx, 200, resource(session.result, ctx.base));
    const unit = RESUMABLE_CHUNK_UNIT;
    if (!range) {
      if (dropped) return this.keepUpTo(session, 0, body, false);
      // A single request without Content-Range carries the whole object.
      return this.finishSession(ctx, session, 0, body);
    }
    if (range.start === undefined) {
      if (range.total !== undefined && range.total === session.data.length) return this.finishSession(ctx, session, session.data.length, Buffer.alloc(0));
      if (range.total !== undefined && range.total < session.data.length) {
        return jsonError(ctx.res, 400, 'invalid', `The object size ${range.total} is smaller than the ${session.data.length} bytes already persisted.`);
      }
      return this.incomplete(ctx, session);
    }
    if (range.start > session.data.length) {
      if (dropped) return;
      return jsonError(ctx.res, 400, 'invalid', `Invalid request: the chunk starts at byte ${range.start}, but only ${session.data.length} bytes were persisted.`);
    }
    if (dropped) return this.keepUpTo(session, range.start, body, true);
    if (range.end !== undefined && body.length !== range.end - range.start + 1) {
      return jsonError(ctx.res, 400, 'invalid', `Content-Range announces ${range.end - range.start + 1} bytes, but the request carried ${body.length}.`);
    }
    const isLast = range.end === undefined || (range.total !== undefined && range.end + 1 === range.total);
    if (isLast) {
      if (range.total !== undefined && range.start + body.length !== range.total) {
        return jsonError(ctx.res, 400, 'invalid', `The object size ${range.total} does not match the ${range.start + body.length} bytes sent.`);
      }
      return this.finishSession(ctx, session, range.start, body);
    }
    if (range.total !== undefined && range.end! + 1 > range.total) {
      return jsonError(ctx.res, 400, 'invalid', 'The chunk ends beyond the announced object size.');
    }
    if (body.length % unit !== 0) {
      return jsonError(ctx.res, 400, 'invalid', `Chunks other than the last must be a multiple of ${unit} bytes; got ${body.length}.`);
    }
    this.append(session, range.start, body, session.data.length + body.length);
    this.incomplete(ctx, session);
  }

  /** After a cut, the session keeps the bytes that arrived, down to a whole persistence unit. */
  private keepUpTo(session: UploadSession, start: number, body: Buffer, resumable: boolean): void {
    if (!resumable) return;
    const end = start + body.length;
    this.append(session, start, body, Math.floor(end / RESUMABLE_CHUNK_UNIT) * RESUMABLE_CHUNK_UNIT);
  }

  private append(session: UploadSession, start: number, body: Buffer, keep: number): void {
    if (keep <= session.data.length) return;
    const fresh = body.subarray(session.data.length - start);
    session.data = Buffer.concat([session.data, fresh]).subarray(0, keep);
  }

  private incomplete(ctx: Ctx, session: UploadSession): void {
    const headers: Record<string, string> = { 'content-length': '0' };
    if (session.data.length > 0) headers.range = `bytes=0-${session.data.length - 1}`;
    ctx.res.writeHead(308, headers).end();
  }

  private finishSession(ctx: Ctx, session: UploadSession, start: number, body: Buffer): void {
    const data = Buffer.concat([session.data, body.subarray(session.data.length - start)]);
    const bucket = this.bucketOr404(ctx, session.bucket);
    if (!bucket) return;
    const hashError = checkGoogHash(ctx.req.headers['x-goog-hash'], data) ?? checkMetadataHashes(session.expectedHashes, data);
    if (hashError) return jsonError(ctx.res, 400, 'invalid', hashError);
    if (!preconditionsHold(session.preconditions, bucket.objects.get(session.name))) {
      return jsonError(ctx.res, 412, 'conditionNotMet', 'At least one of the pre-conditions you specified did not hold.');
    }
    session.data = data;
    session.result = this.store(bucket, session.name, data, {
      contentType: session.contentType,
      ...(session.metadata ? { metadata: session.metadata } : {}),
    });
    this.answer(ctx, 200, resource(session.result, ctx.base));
  }

  private async xmlDownload(ctx: Ctx, bucketName: string, name: string): Promise<void> {
    await drain(ctx.req);
    const signed = ctx.query.has('X-Goog-Signature') || ctx.query.has('X-Goog-Algorithm');
    if (signed) {
      const verdict = this.verifySignature(ctx);
      if (!verdict.ok) return xmlError(ctx.res, verdict.status, verdict.code, verdict.message, verdict.details);
    } else if (ctx.query.has('Signature') || ctx.query.has('GoogleAccessId')) {
      return xmlError(ctx.res, 400, 'InvalidArgument', 'V2 signed URLs are not served by this emulator; sign with version v4.');
    }
    const bucket = this.bucketOr404(ctx, bucketName, true);
    if (!bucket) return;
    if (!signed && !bucket.public) {
      return xmlError(ctx.res, 403, 'AccessDenied', 'Anonymous caller does not have storage.objects.get access to the Google Cloud Storage object.');
    }
    const object = bucket.objects.get(name);
    if (!object) return xmlError(ctx.res, 404, 'NoSuchKey', 'The specified key does not exist.');
    this.sendMedia(ctx, object, 'xml');
  }

  /** V4 signing: canonical request → string to sign → RSA-SHA256 over it, as GCS checks it. */
  private verifySignature(ctx: Ctx): { ok: true } | { ok: false; status: number; code: string; message: string; details?: string } {
    const q = ctx.query;
    const malformed = (details: string) => ({ ok: false as const, status: 400, code: 'MalformedSecurityHeader', message: 'Your request has a malformed header.', details });
    if (q.get('X-Goog-Algorithm') !== 'GOOG4-RSA-SHA256') return malformed(`unsupported X-Goog-Algorithm ${q.get('X-Goog-Algorithm')}`);
    const credential = q.get('X-Goog-Credential') ?? '';
    const [email, scopeDate, location, service, requestType, ...rest] = credential.split('/');
    if (!email || !scopeDate || !location || service !== 'storage' || requestType !== 'goog4_request' || rest.length > 0) {
      return malformed(`malformed X-Goog-Credential ${credential}`);
    }
    const date = q.get('X-Goog-Date') ?? '';
    const dateMatch = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date);
    if (!dateMatch || !date.startsWith(scopeDate)) return malformed(`malformed X-Goog-Date ${date}`);
    const expires = Number(q.get('X-Goog-Expires'));
    if (!Number.isInteger(expires) || expires < 1 || expires > MAX_SIGNED_URL_SECONDS) return malformed(`malformed X-Goog-Expires ${q.get('X-Goog-Expires')}`);
    const signedHeaders = (q.get('X-Goog-SignedHeaders') ?? '').split(';');
    if (!signedHeaders.includes('host')) return malformed('X-Goog-SignedHeaders must include host');
    const signature = q.get('X-Goog-Signature') ?? '';
    if (!/^[0-9a-f]+$/i.test(signature)) return malformed('X-Goog-Signature must be hex');

    const [, y, mo, d, h, mi, s] = dateMatch;
    const issued = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
    if (Date.now() > issued + expires * 1000) {
      return { ok: false, status: 400, code: 'ExpiredToken', message: 'Invalid argument.', details: `Request has expired: ${date}` };
    }
    const key = this.accounts.get(email);
    if (!key) return { ok: false, status: 403, code: 'AccessDenied', message: `The service account ${email} is not known to this emulator.` };

    const canonicalQuery = [...q]
      .filter(([k]) => k !== 'X-Goog-Signature')
      .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1))
      .map(([k, v]) => `${k}=${v}`)
      .join('&');
    // The Host header as the client sent it, port included. (@google-cloud/storage's own
    // getSignedUrl signs the host name without the port, so its URLs fail here on a non-default
    // port; the registry signs with the port.)
    const canonicalHeaders = signedHeaders
      .map((name) => {
        const raw = ctx.req.headers[name];
        const value = Array.isArray(raw) ? raw.join(',') : (raw ?? '');
        return `${name}:${value.trim().replace(/\s{2,}/g, ' ')}\n`;
      })
      .join('');
    const payload = signedHeaders.includes('x-goog-content-sha256') ? String(ctx.req.headers['x-goog-content-sha256']) : 'UNSIGNED-PAYLOAD';
    const canonicalRequest = [ctx.req.method, ctx.rawPath, canonicalQuery, canonicalHeaders, signedHeaders.join(';'), payload].join('\n');
    const stringToSign = ['GOOG4-RSA-SHA256', date, credential.slice(email.length + 1), createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
    if (createVerify('RSA-SHA256').update(stringToSign).verify(key, Buffer.from(signature, 'hex'))) return { ok: true };
    return {
      ok: false,
      status: 403,
      code: 'SignatureDoesNotMatch',
      message: 'Access denied.',
      details: `The request signature we calculated does not match the signature you provided. StringToSign: ${stringToSign}`,
    };
  }

  private sendMedia(ctx: Ctx, object: StoredObject, api: 'json' | 'xml'): void {
    const { res } = ctx;
    const size = object.data.length;
    const headers: Record<string, string> = {
      'content-type': object.contentType,
      'x-goog-generation': object.generation,
      'x-goog-metageneration': String(object.metageneration),
      'x-goog-hash': `crc32c=${object.crc32c},md5=${object.md5Hash}`,
      'x-goog-stored-content-encoding': 'identity',
      'x-goog-stored-content-length': String(size),
      etag: api === 'xml' ? `"${Buffer.from(object.md5Hash, 'base64').toString('hex')}"` : etag(object),
      'last-modified': new Date(object.updated).toUTCString(),
      'accept-ranges': 'bytes',
      'cache-control': 'private, max-age=0',
    };
    let start = 0;
    let end = size - 1;
    let status = 200;
    const rangeHeader = ctx.req.headers.range;
    if (rangeHeader !== undefined) {
      const range = parseRange(rangeHeader, size);
      if (range === 'unsatisfiable') {
        if (api === 'xml') return xmlError(res, 416, 'InvalidRange', 'The requested range cannot be satisfied.');
        return jsonError(res, 416, 'requestedRangeNotSatisfiable', 'The requested range cannot be satisfied.');
      }
      if (range) {
        ({ start, end } = range);
        status = 206;
        headers['content-range'] = `bytes ${start}-${end}/${size}`;
      }
    }
    const body = object.data.subarray(start, end + 1);
    headers['content-length'] = String(body.length);
    res.writeHead(status, headers);
    if (ctx.req.method === 'HEAD') return void res.end();
    const fault = ctx.fault;
    if (fault && (fault.type === 'drop' || fault.type === 'truncate' || fault.type === 'stall')) {
      const sent = body.subarray(0, Math.min(fault.afterBytes ?? 0, body.length));
      res.write(sent, () => {
        const socket = res.socket;
        if (!socket) return;
        if (fault.type === 'drop') setTimeout(() => socket.resetAndDestroy(), 20);
        else if (fault.type === 'truncate') socket.end();
        // stall: the connection stays open and silent until the client gives up or close().
      });
      return;
    }
    res.end(body);
  }

  /** Faults of type `drop` on calls without a body: the call took effect, its answer is lost. */
  private dropInsteadOfAnswer(ctx: Ctx): boolean {
    if (ctx.fault?.type !== 'drop') return false;
    ctx.res.socket?.resetAndDestroy();
    return true;
  }

  private answer(ctx: Ctx, status: number, body: unknown): void {
    if (this.dropInsteadOfAnswer(ctx)) return;
    const text = JSON.stringify(body);
    ctx.res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': String(Buffer.byteLength(text)) }).end(text);
  }

  private store(bucket: Bucket, name: string, data: Buffer, meta: { contentType: string; metadata?: Record<string, string> }): StoredObject {
    const now = new Date().toISOString();
    const object: StoredObject = {
      bucket: bucket.name,
      name,
      data: Buffer.from(data),
      generation: String(++this.generationSeq),
      metageneration: 1,
      contentType: meta.contentType,
      md5Hash: createHash('md5').update(data).digest('base64'),
      crc32c: crc32cBase64(data),
      timeCreated: now,
      updated: now,
      ...(meta.metadata ? { metadata: { ...meta.metadata } } : {}),
    };
    bucket.objects.set(name, object);
    return object;
  }
}

interface Route {
  operation: Operation;
  bucket: string;
  object?: string;
  destBucket?: string;
  destObject?: string;
}

interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  query: URLSearchParams;
  rawPath: string;
  base: string;
  fault: FaultAction | undefined;
}

function resource(o: StoredObject, base: string): Record<string, unknown> {
  const enc = encodeURIComponent(o.name);
  return {
    kind: 'storage#object',
    id: `${o.bucket}/${o.name}/${o.generation}`,
    selfLink: `${base}/storage/v1/b/${o.bucket}/o/${enc}`,
    mediaLink: `${base}/download/storage/v1/b/${o.bucket}/o/${enc}?generation=${o.generation}&alt=media`,
    name: o.name,
    bucket: o.bucket,
    generation: o.generation,
    metageneration: String(o.metageneration),
    contentType: o.contentType,
    storageClass: 'STANDARD',
    size: String(o.data.length),
    md5Hash: o.md5Hash,
    crc32c: o.crc32c,
    etag: etag(o),
    timeCreated: o.timeCreated,
    updated: o.updated,
    timeStorageClassUpdated: o.timeCreated,
    ...(o.metadata ? { metadata: o.metadata } : {}),
  };
}

function etag(o: StoredObject): string {
  return Buffer.from(`${o.generation}/${o.metageneration}`).toString('base64');
}

/** ifGenerationMatch=0 means "only if no live object exists", as in GCS. */
function preconditionsHold(query: URLSearchParams, object: StoredObject | undefined): boolean {
  const generation = object?.generation ?? '0';
  const metageneration = object ? String(object.metageneration) : undefined;
  const gm = query.get('ifGenerationMatch');
  if (gm !== null && gm !== generation) return false;
  const gnm = query.get('ifGenerationNotMatch');
  if (gnm !== null && gnm === generation) return false;
  const mm = query.get('ifMetagenerationMatch');
  if (mm !== null && mm !== metageneration) return false;
  const mnm = query.get('ifMetagenerationNotMatch');
  if (mnm !== null && mnm === metageneration) return false;
  return true;
}

/** The client's `X-Goog-Hash: crc32c=...,md5=...`, checked against what arrived. */
function checkGoogHash(header: string | string[] | undefined, data: Buffer): string | undefined {
  const value = Array.isArray(header) ? header.join(',') : header;
  if (!value) return undefined;
  for (const part of value.split(',')) {
    const at = part.indexOf('=');
    const kind = part.slice(0, at).trim();
    const given = part.slice(at + 1).trim();
    if (kind === 'crc32c' && given !== crc32cBase64(data)) {
      return `Provided CRC32C "${given}" doesn't match calculated CRC32C "${crc32cBase64(data)}".`;
    }
    if (kind === 'md5') {
      const actual = createHash('md5').update(data).digest('base64');
      if (given !== actual) return `Provided MD5 hash "${given}" doesn't match calculated MD5 hash "${actual}".`;
    }
  }
  return undefined;
}

/** md5Hash and crc32c in the metadata of an insert are checked against the data, as GCS does. */
function checkMetadataHashes(metadata: Record<string, unknown>, data: Buffer): string | undefined {
  const parts: string[] = [];
  if (typeof metadata.crc32c === 'string') parts.push(`crc32c=${metadata.crc32c}`);
  if (typeof metadata.md5Hash === 'string') parts.push(`md5=${metadata.md5Hash}`);
  return parts.length > 0 ? checkGoogHash(parts.join(','), data) : undefined;
}

interface ContentRange {
  start?: number;
  /** Inclusive; undefined for `a-*` (the rest of the object). */
  end?: number;
  total?: number;
}

function parseContentRange(header: string | undefined): ContentRange | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  let m = /^bytes \*\/(\d+|\*)$/.exec(value);
  if (m) return m[1] === '*' ? {} : { total: Number(m[1]) };
  m = /^bytes (\d+)-(\d+|\*)\/(\d+|\*)$/.exec(value);
  if (!m) return undefined;
  return {
    start: Number(m[1]),
    ...(m[2] !== '*' ? { end: Number(m[2]) } : {}),
    ...(m[3] !== '*' ? { total: Number(m[3]) } : {}),
  };
}

function parseRange(header: string, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

function parseMultipart(body: Buffer, contentType: string): { metadata: Record<string, unknown>; media: Buffer; mediaType?: string } | undefined {
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1];
  if (!/^multipart\/related/i.test(contentType) || !boundary) return undefined;
  const parts: { headers: Record<string, string>; content: Buffer }[] = [];
  const delimiter = Buffer.from(`--${boundary}`);
  let at = body.indexOf(delimiter);
  while (at !== -1) {
    let start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    if (body.subarray(start, start + 2).toString() === '\r\n') start += 2;
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), start);
    if (next === -1) return undefined;
    const part = body.subarray(start, next);
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd === -1) return undefined;
    const headers: Record<string, string> = {};
    for (const line of part.subarray(0, headerEnd).toString().split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    parts.push({ headers, content: part.subarray(headerEnd + 4) });
    at = next + 2;
  }
  if (parts.length !== 2) return undefined;
  let metadata: Record<string, unknown>;
  try {
    metadata = JSON.parse(parts[0]!.content.toString()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const mediaType = parts[1]!.headers['content-type'];
  return { metadata, media: parts[1]!.content, ...(mediaType ? { mediaType } : {}) };
}

async function readBody(req: http.IncomingMessage, dropAfter?: number): Promise<{ body: Buffer; dropped: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let done = false;
    const dropNow = () => {
      done = true;
      const body = Buffer.concat(chunks).subarray(0, dropAfter);
      req.socket.resetAndDestroy();
      resolve({ body, dropped: true });
    };
    if (dropAfter === 0) return dropNow();
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      chunks.push(chunk);
      length += chunk.length;
      if (dropAfter !== undefined && length >= dropAfter) dropNow();
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      // A body shorter than the drop point: the cut comes once it has all arrived.
      if (dropAfter !== undefined) return dropNow();
      resolve({ body: Buffer.concat(chunks), dropped: false });
    });
    req.on('error', (error) => {
      if (!done) reject(error);
    });
  });
}

function corrupt(media: Buffer): void {
  const last = media.length - 1;
  if (last >= 0) media[last] = media[last]! ^ 0x01;
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const { body } = await readBody(req);
  if (body.length === 0) return {};
  try {
    const parsed: unknown = JSON.parse(body.toString());
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

async function drain(req: http.IncomingMessage): Promise<void> {
  if (req.readableEnded) return;
  await new Promise<void>((resolve) => {
    req.on('end', resolve);
    req.on('error', () => resolve());
    req.resume();
  });
}

function reasonFor(status: number): string {
  return (
    { 400: 'invalid', 401: 'required', 403: 'forbidden', 404: 'notFound', 408: 'requestTimeout', 412: 'conditionNotMet', 429: 'rateLimitExceeded', 500: 'backendError', 502: 'badGateway', 503: 'backendError', 504: 'gatewayTimeout' } as Record<number, string>
  )[status] ?? 'unknown';
}

/** Google's JSON API error body. */
function jsonError(res: http.ServerResponse, status: number, reason: string, message: string): void {
  const text = JSON.stringify({ error: { code: status, message, errors: [{ message, domain: 'global', reason }] } });
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': String(Buffer.byteLength(text)) }).end(text);
}

/** The XML API's error body. */
function xmlError(res: http.ServerResponse, status: number, code: string, message: string, details?: string): void {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const text =
    `<?xml version='1.0' encoding='UTF-8'?><Error><Code>${esc(code)}</Code><Message>${esc(message)}</Message>` +
    `${details ? `<Details>${esc(details)}</Details>` : ''}</Error>`;
  res.writeHead(status, { 'content-type': 'application/xml; charset=UTF-8', 'content-length': String(Buffer.byteLength(text)) }).end(text);
}

/** RFC 3986 percent-encoding, as V4 signing canonicalises query parameters. */
function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
