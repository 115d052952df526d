// Pushes a built image to a registry with the distribution API (the OCI distribution spec): each
// blob is asked for first (HEAD) and skipped when the repository has it; one that another
// repository of the registry may hold (push/push-locations.ts: an earlier push, or
// `--push-mount-from`) is mounted from there; the rest are uploaded, streamed from storage a few at
// a time; then the manifest is put under the tag. Used by `nixery build --push`, which is what a
// NixImage's build Job runs.
//
// Requests go through node:http rather than fetch: streaming a file into a request costs about
// half the CPU that way, and on a build machine the registry, the hashing and the client share
// the same cores (see the commit that introduced it for the measurement).
import { readFile } from 'node:fs/promises';
import { createHash, X509Certificate } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import type { BuildResult } from '../builder/result.ts';
import { MediaType } from '../oci/media-types.ts';
import { EMPTY_DESCRIPTOR } from '../oci/referrer.ts';
import { isValidRepositoryName, validateTag } from '../image/name.ts';
import type { Logger } from '../log/logger.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { DeliveryUrlError, deliveryStream } from '../storage/delivery-stream.ts';
import { allMountSources, mountSources, type PushLocations, type PushRecord } from './push-locations.ts';

export interface PushTarget {
  /** host:port */
  registry: string;
  name: string;
  /** The tag the manifest is put under, or its digest (`sha256:…`) to push it by digest. */
  tag: string;
  scheme: 'http' | 'https';
  /** With https: the CA certificates to trust (PEM, from `readCaBundle`) instead of the system's. */
  ca?: string;
  /** The push token: sent as a bearer token, or as the password when the registry asks for one. */
  token?: string;
  /** The user name for basic auth and token endpoints; our own registry accepts any. */
  username?: string;
  /**
   * Instead of the push token: a file holding a Kubernetes ServiceAccount token (a projected
   * volume), read anew for every token exchange since the kubelet rotates it, and sent as the
   * password of `serviceaccount` to the token endpoint for `repository:NAME:pull,push`.
   */
  identityTokenFile?: string;
}

export interface PushOptions {
  /** Blob uploads in flight at once (default 3). */
  concurrency?: number;
  /**
   * With an identity token, how long `403 DENIED` is retried (the grant of the repository may not
   * have reached the registry yet), and the first wait, doubled each time up to 15 s.
   */
  deniedRetry?: { forMs: number; firstDelayMs: number };
  /** Repositories of the target registry to mount missing blobs from (`--push-mount-from`), tried after the remembered ones. */
  mountFrom?: readonly string[];
  /** Where earlier pushes put blobs: read for mount sources, and this push noted in it afterwards. */
  locations?: PushLocations;
}

/** How long a push with an identity token keeps trying while the registry denies it. */
export const DENIED_RETRY_MS = 180_000;
const DENIED_FIRST_DELAY_MS = 1_000;
const DENIED_MAX_DELAY_MS = 15_000;

export interface PushOutcome {
  reference: string;
  digest: string;
  /** The image's blobs: sent, those the repository had, and those mounted from another repository. */
  uploaded: number;
  skipped: number;
  mounted: number;
  /** The bytes of the image's blobs sent (the SBOM's are not counted). */
  uploadedBytes: number;
  /** The SBOM's referrer manifest of `digest`, pushed by digest after the image. */
  sbomDigest: string;
}

/** One entry of a registry's error body, `{"errors":[{"code","message","detail"}]}`. */
export interface RegistryErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

export class PushError extends Error {
  readonly code = 'PUSH_FAILED';
  /** The registry's HTTP status, when it answered. */
  readonly status: number | undefined;
  /** What the registry said, as distribution spec error codes (DIGEST_INVALID, UNAUTHORIZED, ...). */
  readonly registryErrors: RegistryErrorEntry[];
  constructor(message: string, options: { status?: number; registryErrors?: RegistryErrorEntry[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PushError';
    this.status = options.status;
    this.registryErrors = options.registryErrors ?? [];
  }

  /** The registry's first error code, if it sent an error body. */
  get registryCode(): string | undefined {
    return this.registryErrors[0]?.code;
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
const DEFAULT_CONCURRENCY = 3;
/** A request that moves no bytes for this long is given up (and retried). */
const IDLE_TIMEOUT_MS = 300_000;
/** Answers are small (errors, tokens); more than this is not kept. */
const MAX_REPLY_BYTES = 1 << 20;
const OCTETS = 'application/octet-stream';
const USER_AGENT = 'nixery-push';
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

interface Blob {
  digest: string;
  size: number;
}

/**
 * How this registry takes a blob. The spec lets a registry answer a single-POST upload
 * (`POST .../uploads/?digest=` with the body) with 202 and a Location, meaning "PUT it there";
 * the CNCF distribution registry always does. Once seen, later blobs start with an empty POST
 * so that their bytes are sent once.
 */
type UploadMode = 'unknown' | 'single-post' | 'post-then-put';

export async function pushImage(storage: StorageBackend, result: BuildResult, target: PushTarget, log: Logger, options: PushOptions = {}): Promise<PushOutcome> {
  const concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
  const blobs = unique([result.config, ...result.layers].map((d) => ({ digest: d.digest, size: d.size })));
  const explicit = options.mountFrom ?? [];
  const record = options.locations ? await readRecord(options.locations, target.registry, log) : null;
  const sourcesOf = (digest: string) => mountSources(record, target.name, explicit, digest);
  const pullScopes = allMountSources(record, target.name, explicit, blobs.map((b) => b.digest));
  const registry = new RegistryConnection(target, concurrency, log, options.deniedRetry ?? { forMs: DENIED_RETRY_MS, firstDelayMs: DENIED_FIRST_DELAY_MS }, pullScopes);
  const startedAt = performance.now();
  try {
    const missing: Blob[] = [];
    await eachLimited(blobs, concurrency, async (blob) => {
      if (!(await withRetries(`HEAD ${blob.digest}`, log, () => registry.hasBlob(blob.digest)))) missing.push(blob);
    });

    // Mounts first: a mount the registry refuses turns into an upload through the session it opens.
    const mountable = missing.filter((b) => sourcesOf(b.digest).length > 0);
    const toUpload = missing.filter((b) => sourcesOf(b.digest).length === 0);
    const sent = [...toUpload];
    let mounted = 0;
    await eachLimited(mountable, concurrency, async (blob) => {
      const how = await withRetries(`mount ${blob.digest}`, log, () => registry.mountOrUpload(blob, sourcesOf(blob.digest), () => openBlob(storage, blob.digest)));
      if (how === 'mounted') mounted++;
      else sent.push(blob);
    });

    // The smallest blob (usually the config) goes first and alone: it finds out how the registry
    // takes uploads, at the cost of at most that blob's bytes. The rest go largest first, so the
    // last uploads in flight are short ones.
    toUpload.sort((a, b) => a.size - b.size);
    const [probe, ...rest] = toUpload;
    let mode: UploadMode = 'unknown';
    if (probe) mode = await withRetries(`upload ${probe.digest}`, log, () => registry.uploadBlob(probe, () => openBlob(storage, probe.digest), mode));
    rest.reverse();
    await eachLimited(rest, concurrency, async (blob) => {
      await withRetries(`upload ${blob.digest}`, log, () => registry.uploadBlob(blob, () => openBlob(storage, blob.digest), mode));
    });

    const manifest = await storage.readBlob(result.digest);
    const pushed = await withRetries('PUT manifest', log, () => registry.putManifest(target.tag, manifest, result.mediaType));
    if (pushed.digest !== undefined && pushed.digest !== result.digest) {
      throw new PushError(`the registry stored the manifest as ${pushed.digest}, expected ${result.digest}`);
    }
    const sbomDigest = await pushSbom(storage, registry, result, log, mode);
    if (options.locations) await rememberPush(options.locations, target, blobs, log);
    const outcome: PushOutcome = {
      reference: pushedReference(target),
      digest: result.digest,
      uploaded: sent.length,
      skipped: blobs.length - missing.length,
      mounted,
      uploadedBytes: sent.reduce((sum, b) => sum + b.size, 0),
      sbomDigest,
    };
    log.info('image pushed', { ...outcome, uploadMode: mode, ms: Math.round(performance.now() - startedAt) });
    return outcome;
  } finally {
    registry.close();
  }
}

/**
 * PUTs one manifest under the target's tag (an image index, once the images it names are pushed by
 * digest: push/image-index.ts). Returns the reference pushed, with its digest.
 */
export async function pushManifest(target: PushTarget, body: Buffer, mediaType: string, log: Logger, options: PushOptions = {}): Promise<{ reference: string; digest: string }> {
  const registry = new RegistryConnection(target, 1, log, options.deniedRetry ?? { forMs: DENIED_RETRY_MS, firstDelayMs: DENIED_FIRST_DELAY_MS });
  try {
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    const pushed = await withRetries('PUT manifest', log, () => registry.putManifest(target.tag, body, mediaType));
    if (pushed.digest !== undefined && pushed.digest !== digest) throw new PushError(`the registry stored the manifest as ${pushed.digest}, expected ${digest}`);
    return { reference: pushedReference(target), digest };
  } finally {
    registry.close();
  }
}

/** The record of earlier pushes is a hint: unreadable, the push goes on without mounts from it. */
async function readRecord(locations: PushLocations, registry: string, log: Logger): Promise<PushRecord | null> {
  try {
    return await locations.read(registry);
  } catch (error) {
    log.warn('cannot read where earlier pushes put blobs; pushing without mounting from them', { registry, error: (error as Error).message });
    return null;
  }
}

/** Notes the pushed blobs for later mounts; the push itself succeeded whatever happens here. */
async function rememberPush(locations: PushLocations, target: PushTarget, blobs: Blob[], log: Logger): Promise<void> {
  try {
    await locations.remember(target.registry, target.name, blobs.map((b) => b.digest));
  } catch (error) {
    log.warn('cannot note where this push put its blobs; a later push will not mount from here', { registry: target.registry, name: target.name, error: (error as Error).message });
  }
}

/** `host/name:tag`, or `host/name@digest` for a push by digest. */
function pushedReference(target: PushTarget): string {
  return `${target.registry}/${target.name}${target.tag.includes(':') ? '@' : ':'}${target.tag}`;
}

/**
 * The SBOM of the pushed manifest, once the manifest is there: the document and the empty config
 * (when the registry lacks them), then the referrer manifest whose `subject` is the pushed
 * manifest, by digest. A registry with the referrers API answers with `OCI-Subject` and lists it;
 * another keeps it by digest only (the spec's fallback tag is not written).
 */
async function pushSbom(storage: StorageBackend, registry: RegistryConnection, result: BuildResult, log: Logger, mode: UploadMode): Promise<string> {
  const referrer = result.digest === result.manifests.oci.digest ? result.sbom.referrers.oci : result.sbom.referrers.docker;
  if (!referrer) throw new PushError(`the build result names no SBOM referrer of ${result.digest}`);
  for (const blob of [result.sbom.document, EMPTY_DESCRIPTOR]) {
    if (await withRetries(`HEAD ${blob.digest}`, log, () => registry.hasBlob(blob.digest))) continue;
    mode = await withRetries(`upload ${blob.digest}`, log, () => registry.uploadBlob(blob, () => openBlob(storage, blob.digest), mode));
  }
  const body = await storage.readBlob(referrer.digest);
  const pushed = await withRetries('PUT SBOM manifest', log, () => registry.putManifest(referrer.digest, body, MediaType.ociManifest));
  if (pushed.digest !== undefined && pushed.digest !== referrer.digest) {
    throw new PushError(`the registry stored the SBOM manifest as ${pushed.digest}, expected ${referrer.digest}`);
  }
  if (pushed.subject !== result.digest) {
    log.warn('the registry did not confirm the SBOM as a referrer of the image (no OCI-Subject): it has it by digest only', { sbom: referrer.digest, image: result.digest });
  }
  return referrer.digest;
}

/** A blob body that can be sent again (after a 202, a 401 or a retry): each open reads it anew. */
interface BlobSource {
  size: number;
  open(): Promise<Readable>;
}

type RequestBody = Buffer | BlobSource;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** The registry's distribution API for one repository, with its credentials. */
class RegistryConnection {
  private readonly target: PushTarget;
  private readonly origin: string;
  private readonly agents: { http: http.Agent; https: https.Agent };
  private readonly log: Logger;
  private readonly deniedRetry: { forMs: number; firstDelayMs: number };
  /** '' sends none. */
  private authorization: string;
  private refreshing: Promise<void> | undefined;
  /** The registry's last challenges: a denied request with an identity token gets a new token from them. */
  private challenges: Challenge[] | undefined;
  /** When the registry began denying this push (identity tokens), while it does. */
  private deniedSince: number | undefined;
  /** Repositories blobs may be mounted from: a bought token must let us pull them, or the mount is refused. */
  private readonly pullScopes: readonly string[];

  constructor(target: PushTarget, concurrency: number, log: Logger, deniedRetry: { forMs: number; firstDelayMs: number }, pullScopes: readonly string[] = []) {
    if (target.token === undefined && target.identityTokenFile === undefined) throw new PushError('pushing needs the push token or an identity token file');
    this.target = target;
    this.log = log;
    this.deniedRetry = deniedRetry;
    this.pullScopes = pullScopes;
    this.origin = new URL(`${target.scheme}://${target.registry}`).origin;
    // One connection per upload in flight, plus one for HEADs and the token endpoint.
    const agentOptions = { keepAlive: true, maxSockets: concurrency + 1 };
    this.agents = { http: new http.Agent(agentOptions), https: new https.Agent({ ...agentOptions, ...(target.ca ? { ca: target.ca } : {}) }) };
    // Our registry takes the push token as a bearer token directly; others answer 401 with a
    // challenge first, and the token is then exchanged (see refresh). An identity token is only
    // ever exchanged.
    this.authorization = target.identityTokenFile === undefined ? `Bearer ${target.token}` : '';
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  async hasBlob(digest: string): Promise<boolean> {
    let url = this.url(`/blobs/${digest}`);
    for (let hops = 0; ; hops++) {
      const reply = await this.request('HEAD', url);
      if (reply.status === 200) return true;
      if (reply.status === 404) return false;
      // Registries on object storage may send blob reads there (distribution with S3 does).
      const location = header(reply, 'location');
      if (REDIRECTS.has(reply.status) && location !== undefined && hops < 5) {
        url = new URL(location, url);
        continue;
      }
      throw failure(reply, `checking blob ${digest}`);
    }
  }

  /**
   * The spec's cross-repository mount, from each source in turn: 201 means the repository has the
   * blob now. A registry that cannot mount it (the source lacks it, or we may not pull there)
   * answers 202 with an upload session instead; the last one is used to upload the blob, the
   * others are cancelled. Returns which it came to.
   */
  async mountOrUpload(blob: Blob, sources: readonly string[], open: () => Promise<Readable>): Promise<'mounted' | 'uploaded'> {
    const uploads = this.url('/blobs/uploads/');
    for (const [i, from] of sources.entries()) {
      const url = new URL(uploads);
      // Appended as text, as uploadUrl does: digests and names need no encoding.
      url.search = `?mount=${blob.digest}&from=${from}`;
      const reply = await this.request('POST', url);
      if (reply.status === 201) return 'mounted';
      if (reply.status !== 202) throw failure(reply, `mounting blob ${blob.digest} from ${from}`);
      if (i < sources.length - 1) {
        await this.cancelUpload(reply, uploads);
        continue;
      }
      this.log.debug('the registry did not mount the blob; uploading it', { digest: blob.digest, from });
      await this.finishUpload(reply, uploads, blob.digest, { size: blob.size, open });
      return 'uploaded';
    }
    throw new PushError(`no repository to mount blob ${blob.digest} from`);
  }

  /** Ends an upload session we will not use; a registry that keeps it anyway expires it, so failures are only logged. */
  private async cancelUpload(started: Reply, uploads: URL): Promise<void> {
    const location = header(started, 'location');
    if (location === undefined) return;
    const reply = await this.request('DELETE', new URL(location, uploads)).catch((error: unknown) => ({ status: 0, headers: {}, body: Buffer.from((error as Error).message) }));
    if (reply.status !== 204 && reply.status !== 200) this.log.debug('cancelling an unused upload session failed', { status: reply.status });
  }

  async uploadBlob(blob: Blob, open: () => Promise<Readable>, mode: UploadMode): Promise<UploadMode> {
    const source: BlobSource = { size: blob.size, open };
    const uploads = this.url('/blobs/uploads/');
    if (mode !== 'post-then-put') {
      const reply = await this.request('POST', withDigest(uploads, blob.digest), { body: source, contentType: OCTETS });
      if (reply.status === 201) return 'single-post';
      if (reply.status !== 202) throw failure(reply, `uploading blob ${blob.digest}`);
      await this.finishUpload(reply, uploads, blob.digest, source);
      return 'post-then-put';
    }
    const reply = await this.request('POST', uploads, { body: Buffer.alloc(0) });
    if (reply.status !== 202) throw failure(reply, `starting the upload of blob ${blob.digest}`);
    await this.finishUpload(reply, uploads, blob.digest, source);
    return mode;
  }

  /**
   * PUTs a manifest by tag or digest. Returns the digest the registry says it stored it under and
   * the subject it listed it as a referrer of (`OCI-Subject`), as far as it says.
   */
  async putManifest(reference: string, manifest: Buffer, mediaType: string): Promise<{ digest?: string; subject?: string }> {
    const reply = await this.request('PUT', this.url(`/manifests/${reference}`), { body: manifest, contentType: mediaType });
    const shown = reference.includes(':') ? `${this.target.name}@${reference}` : `${this.target.name}:${reference}`;
    if (reply.status !== 201) throw failure(reply, `putting the manifest ${shown}`);
    const digest = header(reply, 'docker-content-digest');
    const subject = header(reply, 'oci-subject');
    return { ...(digest === undefined ? {} : { digest }), ...(subject === undefined ? {} : { subject }) };
  }

  private async finishUpload(started: Reply, uploads: URL, digest: string, source: BlobSource): Promise<void> {
    const location = header(started, 'location');
    if (location === undefined) throw new PushError(`the registry answered the upload of blob ${digest} with 202 but no Location`, { status: 202 });
    const reply = await this.request('PUT', uploadUrl(location, uploads, digest), { body: source, contentType: OCTETS });
    if (reply.status !== 201) throw failure(reply, `finishing the upload of blob ${digest}`);
  }

  private url(path: string): URL {
    return new URL(`/v2/${this.target.name}${path}`, this.origin);
  }

  /**
   * Sends with the current credentials; on a 401 with a challenge, gets new ones and sends once
   * more. With an identity token, a 403 DENIED is retried with new tokens for a while.
   */
  private async request(method: string, url: URL, options: { body?: RequestBody; contentType?: string } = {}): Promise<Reply> {
    for (let attempt = 0; ; attempt++) {
      const sentWith = this.authorization;
      const reply = await this.authenticated(method, url, options);
      if (!this.isDenied(method, reply)) {
        this.deniedSince = undefined;
        return reply;
      }
      this.deniedSince ??= performance.now();
      const waited = performance.now() - this.deniedSince;
      if (waited >= this.deniedRetry.forMs) return reply;
      const delay = Math.min(this.deniedRetry.firstDelayMs * 2 ** attempt, DENIED_MAX_DELAY_MS, this.deniedRetry.forMs - waited);
      this.log.warn('the registry denies the push; its grant for this repository may not be in force yet, retrying with a new token', {
        what: `${method} ${url.pathname}`,
        registry: failure(reply, 'the request').message,
        retryInMs: Math.round(delay),
        deniedForMs: Math.round(waited),
      });
      await new Promise((resolve) => setTimeout(resolve, delay));
      // A token issued before the grant does not carry it: get a new one (reading the identity token again).
      if (this.challenges) await this.refresh(this.challenges, sentWith);
    }
  }

  /** A 403 DENIED (a HEAD's 403 carries no body to say so). */
  private isDenied(method: string, reply: Reply): boolean {
    if (this.target.identityTokenFile === undefined || reply.status !== 403) return false;
    return method === 'HEAD' || failure(reply, '').registryCode === 'DENIED';
  }

  private async authenticated(method: string, url: URL, options: { body?: RequestBody; contentType?: string }): Promise<Reply> {
    const sentWith = this.authorization;
    const reply = await this.send(method, url, options, sentWith);
    if (reply.status !== 401) return reply;
    const challenges = parseChallenges(header(reply, 'www-authenticate') ?? '');
    if (challenges.length === 0) return reply;
    this.challenges = challenges;
    await this.refresh(challenges, sentWith);
    if (this.authorization === sentWith) return reply;
    return this.send(method, url, options, this.authorization);
  }

  private send(method: string, url: URL, options: { body?: RequestBody; contentType?: string }, authorization: string): Promise<Reply> {
    const headers: Record<string, string> = { 'User-Agent': USER_AGENT };
    // Credentials go to the registry only, not to wherever a Location points.
    if (url.origin === this.origin && authorization !== '') headers.Authorization = authorization;
    if (options.contentType) headers['Content-Type'] = options.contentType;
    return exchange(url.protocol === 'https:' ? this.agents.https : this.agents.http, method, url, headers, options.body);
  }

  /** Concurrent 401s share one exchange; a request sent before it finished just retries. */
  private async refresh(challenges: Challenge[], sentWith: string): Promise<void> {
    if (this.authorization !== sentWith) return;
    this.refreshing ??= this.credentialsFor(challenges)
      .then((authorization) => {
        this.authorization = authorization;
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    await this.refreshing;
  }

  /** `user:password` for Basic auth and the token endpoint; an identity token is read from its file each time. */
  private async basicCredentials(): Promise<string> {
    const file = this.target.identityTokenFile;
    if (file === undefined) return `${this.target.username ?? 'nixery'}:${this.target.token}`;
    let jwt: string;
    try {
      jwt = (await readFile(file, 'utf8')).trim();
    } catch (error) {
      throw new PushError(`cannot read the identity token ${file}: ${(error as Error).message}`, { cause: error });
    }
    if (jwt === '') throw new PushError(`the identity token file ${file} is empty`);
    return `serviceaccount:${jwt}`;
  }

  private async credentialsFor(challenges: Challenge[]): Promise<string> {
    const basic = `Basic ${Buffer.from(await this.basicCredentials()).toString('base64')}`;
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) {
      // The token flow: the push token buys a registry token for this repository; an identity
      // token buys one for pulling and pushing it (what the registry grants it, no more).
      const realm = new URL(bearer.params.realm!);
      if (bearer.params.service) realm.searchParams.set('service', bearer.params.service);
      const scope = `repository:${this.target.name}:pull,push`;
      realm.searchParams.set('scope', this.target.identityTokenFile === undefined ? (bearer.params.scope ?? scope) : scope);
      for (const from of this.pullScopes) realm.searchParams.append('scope', `repository:${from}:pull`);
      const agent = realm.protocol === 'https:' ? this.agents.https : this.agents.http;
      const reply = await exchange(agent, 'GET', realm, { Authorization: basic, Accept: 'application/json', 'User-Agent': USER_AGENT });
      if (reply.status !== 200) throw failure(reply, `getting a push token from ${realm.origin}${realm.pathname}`);
      let token: unknown;
      try {
        const body = JSON.parse(reply.body.toString('utf8')) as { token?: unknown; access_token?: unknown };
        token = body.token ?? body.access_token;
      } catch {
        // handled below
      }
      if (typeof token !== 'string' || token === '') throw new PushError(`the token endpoint ${realm.origin}${realm.pathname} answered without a token`, { status: reply.status });
      return `Bearer ${token}`;
    }
    if (challenges.some((c) => c.scheme === 'basic')) return basic;
    throw new PushError(`the registry asks for ${challenges.map((c) => c.scheme).join(' or ')} authentication; nixery can do bearer tokens and basic auth`, { status: 401 });
  }
}

/** The spec's monolithic upload target: the Location as given (it may be relative, and carry its own query) plus the digest. */
export function uploadUrl(location: string, base: URL, digest: string): URL {
  const url = new URL(location, base);
  // Appended as text: the Location's query is the registry's opaque state and must not be re-encoded.
  url.search = url.search ? `${url.search}&digest=${digest}` : `?digest=${digest}`;
  return url;
}

function withDigest(url: URL, digest: string): URL {
  return uploadUrl(url.href, url, digest);
}

export interface Challenge {
  /** Lower case: bearer, basic, ... */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses WWW-Authenticate, which may hold several challenges (Node joins repeated headers with
 * ", "): `Bearer realm="https://auth/token",service="registry", Basic realm="x"`.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  const item = /\s*,?\s*([^\s=,]+)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?/y;
  let current: Challenge | undefined;
  let match: RegExpExecArray | null;
  while (item.lastIndex < header.length && (match = item.exec(header)) !== null) {
    const [, name, value] = match;
    if (value === undefined) {
      current = { scheme: name!.toLowerCase(), params: {} };
      challenges.push(current);
    } else if (current) {
      current.params[name!.toLowerCase()] = value.startsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
    }
  }
  return challenges;
}

/** One HTTP exchange; a streamed body is piped from its source, and the answer is read whole. */
async function exchange(agent: http.Agent, method: string, url: URL, headers: Record<string, string>, body?: RequestBody): Promise<Reply> {
  const stream = body === undefined || Buffer.isBuffer(body) ? undefined : await body.open();
  const length = body === undefined ? undefined : Buffer.isBuffer(body) ? body.length : body.size;
  return new Promise<Reply>((resolve, reject) => {
    const request = (url.protocol === 'https:' ? https : http).request(url, {
      method,
      agent,
      headers: { ...headers, ...(length === undefined ? {} : { 'Content-Length': String(length) }) },
    });
    let answered = false;
    request.setTimeout(IDLE_TIMEOUT_MS, () => request.destroy(new Error(`no progress for ${IDLE_TIMEOUT_MS / 1000} s`)));
    request.on('error', (error) => {
      stream?.destroy();
      // Once answered, a write error only means the registry stopped reading: the answer stands.
      if (!answered) reject(error);
    });
    request.on('response', (response) => {
      answered = true;
      const chunks: Buffer[] = [];
      let kept = 0;
      response.on('data', (chunk: Buffer) => {
        if (kept >= MAX_REPLY_BYTES) return;
        chunks.push(chunk);
        kept += chunk.length;
      });
      response.on('error', reject);
      response.on('end', () => {
        if (stream && !stream.readableEnded) {
          // The registry answered before taking the whole body (a 401, or a 202 that ignores
          // it): stop sending, and do not reuse a connection with half a request on it.
          stream.unpipe(request);
          stream.destroy();
          request.destroy();
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) });
      });
    });
    if (stream) {
      stream.on('error', (error) => request.destroy(error));
      stream.pipe(request);
    } else {
      request.end(body as Buffer | undefined);
    }
  });
}

async function openBlob(storage: StorageBackend, digest: string): Promise<Readable> {
  const delivery = await storage.deliverBlob(digest);
  if (!delivery) throw new PushError(`blob ${digest} is missing from local storage`);
  return deliveryStream(delivery).catch((error: unknown) => {
    if (error instanceof DeliveryUrlError) throw new PushError(`reading blob ${digest} from storage failed with HTTP ${error.status}`, { status: error.status });
    throw error;
  });
}

function header(reply: Reply, name: string): string | undefined {
  const value = reply.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Turns an unexpected answer into a PushError carrying the registry's error codes and messages. */
function failure(reply: Reply, what: string): PushError {
  const text = reply.body.toString('utf8');
  let registryErrors: RegistryErrorEntry[] = [];
  try {
    const body = JSON.parse(text) as { errors?: unknown };
    if (Array.isArray(body.errors)) {
      registryErrors = body.errors
        .filter((e): e is { code: unknown; message?: unknown; detail?: unknown } => typeof e === 'object' && e !== null)
        .map((e) => ({ code: String(e.code), message: typeof e.message === 'string' ? e.message : '', ...(e.detail === undefined ? {} : { detail: e.detail }) }));
    }
  } catch {
    // Not a registry error body: the text itself is the best detail there is.
  }
  const detail = registryErrors.length ? registryErrors.map((e) => (e.message ? `${e.code}: ${e.message}` : e.code)).join('; ') : text.trim().slice(0, 500);
  return new PushError(`${what} failed with HTTP ${reply.status}${detail ? `: ${detail}` : ''}`, { status: reply.status, registryErrors });
}

/** Network errors, 429 and 5xx are worth another try; other answers are final. */
async function withRetries<T>(what: string, log: Logger, attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      const status = error instanceof PushError ? error.status : undefined;
      const transient = status === undefined ? !(error instanceof PushError) : status === 429 || status >= 500;
      if (!transient || n >= ATTEMPTS) {
        if (error instanceof PushError) throw error;
        throw new PushError(`${what} failed: ${(error as Error).message}`, { cause: error });
      }
      const delay = 250 * 2 ** (n - 1);
      log.warn('push step failed; retrying', { what, attempt: n, retryInMs: delay, error: (error as Error).message });
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Runs `work` over the items, at most `limit` at a time; stops starting new ones after a failure. */
async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const failures: unknown[] = [];
  const worker = async () => {
    while (failures.length === 0 && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (error) {
        failures.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failures.length) throw failures[0];
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * A PEM bundle of CA certificates to trust (`--push-ca-file`): read and checked before the build,
 * so that a wrong path fails in a second rather than after the image is built.
 */
export async function readCaBundle(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new PushError(`cannot read the CA bundle ${file}: ${(error as Error).message}`, { cause: error });
  }
  const certificates = text.match(PEM_CERTIFICATE) ?? [];
  if (certificates.length === 0) throw new PushError(`the CA bundle ${file} holds no PEM certificate`);
  certificates.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (error) {
      throw new PushError(`certificate ${i + 1} of the CA bundle ${file} does not parse: ${(error as Error).message}`, { cause: error });
    }
  });
  return certificates.join('\n') + '\n';
}

function unique(blobs: Blob[]): Blob[] {
  const seen = new Set<string>();
  return blobs.filter((b) => !seen.has(b.digest) && seen.add(b.digest));
}
