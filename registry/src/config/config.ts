// One place turns the environment into a validated configuration. Variable names are Nixery's
// and keep Nixery's meanings; the operator renders a registry's environment from `ENV` below,
// so no variable name is spelled twice in the project.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { MAX_PACKAGE_PATTERNS, packagePatternProblem } from '../image/package-policy.ts';
import { DEFAULT_PLATFORMS, InvalidPlatformsError, parsePlatforms, type Platform } from '../image/platform.ts';
import type { SpaceReserve } from '../builder/free-space.ts';
import type { LayerCompression } from '../pack/compress.ts';
import { DEFAULT_CHANNEL_BASE_URL, trustedRefPatternProblem, type PackageSource } from './package-source.ts';
import { readTlsPairSync, TlsPairError, type TlsFiles } from './tls-pair.ts';

export const ENV = {
  port: 'PORT',
  channel: 'NIXERY_CHANNEL',
  pkgsRepo: 'NIXERY_PKGS_REPO',
  pkgsPath: 'NIXERY_PKGS_PATH',
  storageBackend: 'NIXERY_STORAGE_BACKEND',
  storagePath: 'STORAGE_PATH',
  gcsBucket: 'GCS_BUCKET',
  googleCredentials: 'GOOGLE_APPLICATION_CREDENTIALS',
  nixTimeout: 'NIX_TIMEOUT',
  popularityUrl: 'NIX_POPULARITY_URL',
  webDir: 'WEB_DIR',
  // Not Nixery's: knobs this implementation adds, named in Nixery's style.
  channelBaseUrl: 'NIXERY_CHANNEL_BASE_URL',
  pkgsRepoTrustedRefs: 'NIXERY_PKGS_REPO_TRUSTED_REFS',
  layerBudget: 'NIXERY_LAYER_BUDGET',
  maxConcurrentBuilds: 'NIXERY_MAX_CONCURRENT_BUILDS',
  tagFlushInterval: 'NIXERY_TAG_FLUSH_INTERVAL',
  maxRecordedTags: 'NIXERY_MAX_RECORDED_TAGS',
  maxQueuedBuilds: 'NIXERY_MAX_QUEUED_BUILDS',
  clientBuildsPerMinute: 'NIXERY_CLIENT_BUILDS_PER_MINUTE',
  clientAuthChecksPerMinute: 'NIXERY_CLIENT_AUTH_CHECKS_PER_MINUTE',
  maxClosureSize: 'NIXERY_MAX_CLOSURE_SIZE',
  logLevel: 'NIXERY_LOG_LEVEL',
  gcsRedirect: 'NIXERY_GCS_REDIRECT',
  gcsSignedUrlExpiry: 'NIXERY_GCS_SIGNED_URL_EXPIRY',
  gcsResumableThreshold: 'NIXERY_GCS_RESUMABLE_THRESHOLD',
  // The S3 backend: distribution's setting names where it has them; the region and credentials
  // come from the AWS SDK's own variables (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_WEB_IDENTITY_TOKEN_FILE, …).
  s3Bucket: 'S3_BUCKET',
  s3Region: 'S3_REGION',
  s3Endpoint: 'S3_ENDPOINT',
  s3ForcePathStyle: 'S3_FORCE_PATH_STYLE',
  s3Prefix: 'S3_PREFIX',
  s3Redirect: 'NIXERY_S3_REDIRECT',
  s3PresignedUrlExpiry: 'NIXERY_S3_PRESIGNED_URL_EXPIRY',
  s3ServerSideEncryption: 'NIXERY_S3_SSE',
  s3KmsKeyId: 'NIXERY_S3_SSE_KMS_KEY_ID',
  s3PartSize: 'NIXERY_S3_PART_SIZE',
  pushToken: 'NIXERY_PUSH_TOKEN',
  pushTokenFile: 'NIXERY_PUSH_TOKEN_FILE',
  anonymousPull: 'NIXERY_ANONYMOUS_PULL',
  htpasswdFile: 'NIXERY_HTPASSWD_FILE',
  authPolicyFile: 'NIXERY_AUTH_POLICY_FILE',
  tokenKeyFile: 'NIXERY_TOKEN_KEY_FILE',
  tokenTtl: 'NIXERY_TOKEN_TTL',
  k8sTokenAudience: 'NIXERY_K8S_TOKEN_AUDIENCE',
  k8sTokenVerification: 'NIXERY_K8S_TOKEN_VERIFICATION',
  k8sServiceAccountDir: 'NIXERY_K8S_SERVICE_ACCOUNT_DIR',
  // Set by the kubelet in every pod: where the Kubernetes API is.
  kubernetesServiceHost: 'KUBERNETES_SERVICE_HOST',
  kubernetesServicePort: 'KUBERNETES_SERVICE_PORT',
  onDemand: 'NIXERY_ON_DEMAND',
  allowedPackages: 'NIXERY_ALLOWED_PACKAGES',
  deniedPackages: 'NIXERY_DENIED_PACKAGES',
  headersTimeout: 'NIXERY_HEADERS_TIMEOUT',
  receiveTimeout: 'NIXERY_RECEIVE_TIMEOUT',
  sendStallTimeout: 'NIXERY_SEND_STALL_TIMEOUT',
  keepAliveTimeout: 'NIXERY_KEEPALIVE_TIMEOUT',
  maxConnections: 'NIXERY_MAX_CONNECTIONS',
  minFreeSpace: 'NIXERY_MIN_FREE_SPACE',
  tlsCertFile: 'NIXERY_TLS_CERT_FILE',
  tlsKeyFile: 'NIXERY_TLS_KEY_FILE',
  metricsPort: 'NIXERY_METRICS_PORT',
  platforms: 'NIXERY_PLATFORMS',
  layerCompression: 'NIXERY_LAYER_COMPRESSION',
  uploadSessionTtl: 'NIXERY_UPLOAD_SESSION_TTL',
  stagingTtl: 'NIXERY_STAGING_TTL',
  gcGrace: 'NIXERY_GC_GRACE',
  gcInterval: 'NIXERY_GC_INTERVAL',
  retainPulledWithin: 'NIXERY_RETAIN_PULLED_WITHIN',
  gcMaxImagesPerName: 'NIXERY_GC_MAX_IMAGES_PER_NAME',
  // Leases across replicas (storage/lease.ts).
  leaseDuration: 'NIXERY_LEASE_DURATION',
  // Storage quota and Nix store collection (service/quota.ts, nix/store-gc.ts).
  storageQuota: 'NIXERY_STORAGE_QUOTA',
  nixGcInterval: 'NIXERY_NIX_GC_INTERVAL',
  nixGcMaxFreed: 'NIXERY_NIX_GC_MAX_FREED',
} as const;

export type StorageConfig =
  | { backend: 'filesystem'; path: string }
  | {
      backend: 'gcs';
      bucket: string;
      credentialsFile?: string;
      /**
       * How blob GETs are answered: a redirect to a V4 signed URL, a redirect to the object's public
       * URL, or the bytes streamed through the registry. Unset: signed when the credentials hold a
       * private key, else streamed. Unset fields take the defaults of storage/gcs.ts.
       */
      redirect?: 'signed' | 'public' | 'stream';
      signedUrlExpirySeconds?: number;
      /** Blobs up to this size are uploaded in one request; larger ones through a resumable session. */
      resumableThresholdBytes?: number;
    }
  | {
      backend: 's3';
      bucket: string;
      /** Unset: the SDK's chain (AWS_REGION, the shared config file). */
      region?: string;
      /** An S3-compatible service's URL; unset: AWS. */
      endpoint?: string;
      forcePathStyle?: boolean;
      /** Keys start with `<prefix>/`. */
      prefix?: string;
      /** How blob GETs are answered: a redirect to a presigned URL (the default), or the bytes streamed through the registry. */
      redirect?: 'presigned' | 'stream';
      presignedUrlExpirySeconds?: number;
      serverSideEncryption?: 'AES256' | 'aws:kms';
      kmsKeyId?: string;
      /** Multipart upload part size; blobs up to it go in one PutObject. Unset fields take the defaults of storage/s3.ts. */
      partSizeBytes?: number;
    };

/** What the HTTP server allows a connection (http/connections.ts); whole seconds. */
export interface ConnectionLimits {
  /** The request line and headers must arrive within this. */
  headersTimeoutSeconds: number;
  /** The whole request, headers and body, must arrive within this (not the answer: a build is bounded by NIX_TIMEOUT). */
  receiveTimeoutSeconds: number;
  /** A response whose bytes the client takes none of for this long is cut. */
  sendStallTimeoutSeconds: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutSeconds: number;
  /** Connections beyond this are closed as they arrive. */
  maxConnections: number;
}

export interface Config {
  port: number;
  source: PackageSource;
  /** True when no package source was configured and the bundled offline set is used. */
  sourceIsDefault: boolean;
  storage: StorageConfig;
  nixTimeoutSeconds: number;
  popularityUrl?: string;
  webDir?: string;
  /** Upper bound on layers per image, the customisation layer included. */
  layerBudget: number;
  maxConcurrentBuilds: number;
  /** How often the tags pulls noted are written to storage (service/tags.ts); a pull writes nothing itself. */
  tagFlushIntervalSeconds: number;
  /** Most pulled tags the tag index stores (and keeps waiting in memory); beyond it pulls are served, not listed. */
  maxRecordedTags: number;
  /** Builds waiting for a slot, at most; a new one beyond is refused with 429 (0: none wait). */
  maxQueuedBuilds: number;
  /** New on-demand builds one client address may start a minute; beyond, 429. */
  clientBuildsPerMinute: number;
  /**
   * Costly credential checks (a bcrypt compare, a TokenReview; not one answered from a cache) one
   * client address may cause a minute; beyond, 429 and the check is not made.
   */
  clientAuthChecksPerMinute: number;
  /** Largest runtime closure an on-demand build may have, in bytes of Nix archives; beyond, 403. */
  maxClosureBytes: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** The administrator's secret (may push and delete anything); unset, there is no administrator. */
  pushToken?: string;
  /** Who else may pull, push and delete (auth/). */
  auth: AuthSettings;
  /** False: the registry serves pushed tags only and builds nothing (`nixery serve` only). */
  onDemand: boolean;
  /**
   * Attribute-path patterns (image/package-policy.ts) of the packages the registry may build on
   * demand; unset: every package. `nixery build` does not apply them, nor deniedPackages.
   */
  allowedPackages?: string[];
  /** Patterns of packages the registry never builds on demand. */
  deniedPackages: string[];
  connections: ConnectionLimits;
  /** Free space the storage and the Nix store keep: below it no build starts (builder/free-space.ts). */
  minFreeSpace: SpaceReserve;
  /** Serve HTTPS with this pair, re-read when the files change (http/tls-files.ts); unset: plain HTTP. */
  tls?: TlsFiles;
  /** Serve `/metrics` on this port alone (plain HTTP), not on the registry's; unset: on the registry's. */
  metricsPort?: number;
  /** What a name is built for, in order; several: a pull gets an image index (service/manifests.ts). */
  platforms: Platform[];
  /** How built layers are compressed; zstd images are OCI manifests, with a gzip variant made for Docker schema 2 clients on demand (builder/gzip-variant.ts). */
  layerCompression: LayerCompression;
  /** What the running registry purges (service/purge.ts). */
  purge: PurgeLimits;
  /** Garbage collection of unreferenced blobs and cache entries (service/gc.ts). */
  gc: GcSettings;
  /** Build and GC leases in the shared storage last this long unless renewed (every third of it); a dead holder's are taken over after it. */
  leaseDurationSeconds: number;
  /** NIXERY_STORAGE_QUOTA in bytes: above it, garbage collection evicts on-demand images (service/quota.ts); unset: no quota. */
  storageQuotaBytes?: number;
  nixGc: NixGcSettings;
}

/** Garbage collection; whole seconds. */
export interface GcSettings {
  /** An unreferenced object goes only once runs this far apart saw it so, and never one written more recently. */
  graceSeconds: number;
  /** Between runs in the server; 0: the server never collects (`nixery gc` still does). */
  intervalSeconds: number;
  /** An on-demand image not pulled for this many seconds is expired (service/gc.ts); 0: kept forever. */
  retainPulledWithinSeconds: number;
  /** At most this many on-demand images per name (the most recently pulled); 0: no limit. */
  maxImagesPerName: number;
}

/** Collection of the registry's Nix store (nix/store-gc.ts). */
export interface NixGcSettings {
  /** Seconds between collections in the server; 0: never. */
  intervalSeconds: number;
  /** Most bytes one collection frees (`--max-freed`). */
  maxFreedBytes: number;
}

/** Abandoned temporary data, dropped while the registry runs; whole seconds. */
export interface PurgeLimits {
  /** An upload session with no request for this long is dropped with its bytes (none in flight). */
  uploadSessionTtlSeconds: number;
  /** A staging object (a partial write) not written for this long is deleted, unless this process is writing it. */
  stagingTtlSeconds: number;
}

/** Pull authentication and scoped tokens (auth/create.ts puts them to work). */
export interface AuthSettings {
  /** NIXERY_ANONYMOUS_PULL: pulls without credentials (default true, as Nixery). */
  anonymousPull: boolean;
  /** htpasswd files (bcrypt entries), absolute; the first naming a user decides. */
  htpasswdFiles: string[];
  /** The access policy (JSON, auth/policy.ts), absolute; unset: no policy. */
  policyFile?: string;
  /** PEM PKCS#8 EC P-256 key signing the registry's tokens; unset: one generated per process. */
  tokenKeyFile?: string;
  tokenTtlSeconds: number;
  /** Set: Kubernetes ServiceAccount tokens with this audience are accepted. */
  kubernetesTokens?: {
    audience: string;
    verification: 'tokenreview' | 'oidc';
    /** `https://host:port` of the API server (KUBERNETES_SERVICE_HOST/PORT). */
    apiServer: string;
    /** Holds the registry's own `token` and the cluster's `ca.crt`. */
    serviceAccountDir: string;
  };
}

export const DEFAULT_TOKEN_TTL_SECONDS = 300;
export const DEFAULT_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Most htpasswd files: the user's and the operator's pull user's, with room to spare. */
const MAX_HTPASSWD_FILES = 8;

/** Nixery keeps room under Docker's historical limit of 125 layers. */
export const DEFAULT_LAYER_BUDGET = 94;
export const DEFAULT_PORT = 8080;
export const DEFAULT_NIX_TIMEOUT_SECONDS = 60;
export const DEFAULT_STORAGE_PATH = '.data/storage';
export const DEFAULT_TAG_FLUSH_INTERVAL_SECONDS = 30;
export const DEFAULT_MAX_RECORDED_TAGS = 10_000;
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  headersTimeoutSeconds: 30,
  // Room for a push of a large layer over a slow link; anonymous clients send no bodies worth reading.
  receiveTimeoutSeconds: 600,
  sendStallTimeoutSeconds: 30,
  // Node's own default.
  keepAliveTimeoutSeconds: 5,
  // Each stalled download holds up to 2 MiB of buffers until the send-stall timeout cuts it.
  maxConnections: 1024,
};
export const DEFAULT_MIN_FREE_SPACE: SpaceReserve = { bytes: 1024 ** 3 };
export const DEFAULT_MAX_CONCURRENT_BUILDS = 2;
/** Eight per default build slot: a burst of new images waits, a flood is refused. */
export const DEFAULT_MAX_QUEUED_BUILDS = 16;
export const DEFAULT_CLIENT_BUILDS_PER_MINUTE = 30;
/** A client that sends credentials with every request pays once a minute per credential (the caches); typos and retries fit too. */
export const DEFAULT_CLIENT_AUTH_CHECKS_PER_MINUTE = 60;
export const DEFAULT_MAX_CLOSURE_BYTES = 10 * 1024 ** 3;
/**
 * An hour without a request: a client pushing a blob sends its chunks back to back (seconds
 * apart, each bounded by NIXERY_RECEIVE_TIMEOUT), so a session quiet for an hour was abandoned —
 * a crashed or cancelled push — while one hour of upload chunks is little storage. With a longer
 * receive timeout the default is twice it (the TTL must exceed it: sessions are shared by replicas).
 */
export const DEFAULT_UPLOAD_SESSION_TTL_SECONDS = 3600;
/**
 * An hour, six times the default NIXERY_RECEIVE_TIMEOUT, which bounds the longest write another
 * process stages (a pushed blob's body); with a longer receive timeout the default is twice it.
 */
export const DEFAULT_STAGING_TTL_SECONDS = 3600;
/** An hour: far above the default NIX_TIMEOUT (a build reuses a layer blob it found at most about that long later). */
export const DEFAULT_GC_GRACE_SECONDS = 3600;
/** The grace delay must be at least this many NIX_TIMEOUTs: a build evaluates, realises (each bounded by it), then packs. */
export const GC_GRACE_BUILD_FACTOR = 3;
/** Six hours between runs in the server. */
export const DEFAULT_GC_INTERVAL_SECONDS = 6 * 3600;
/** On-demand images not pulled for 30 days are expired. */
export const DEFAULT_RETAIN_PULLED_WITHIN_SECONDS = 30 * 86400;
/** A minute: a dead replica's build or GC is taken over about a minute later; renewals every 20 s. */
export const DEFAULT_LEASE_DURATION_SECONDS = 60;

/**
 * Off: a collection deletes every unrooted path of the Nix store the registry uses, which is only
 * right where that store is the registry's own (its pod), not a developer's or a CI machine's.
 */
export const DEFAULT_NIX_GC_INTERVAL_SECONDS = 0;
/** One collection frees at most 10 GiB: a bounded amount of deletion work per run. */
export const DEFAULT_NIX_GC_MAX_FREED_BYTES = 10 * 1024 ** 3;
/** Ten on-demand images per name: tags and source revisions beyond the ten most recently pulled go. */
export const DEFAULT_GC_MAX_IMAGES_PER_NAME = 10;

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

/** The bundled offline package set (nix/offline), used when no package source is configured. */
export function bundledPackageSetPath(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../nix/offline');
}

const nonEmpty = z.string().trim().min(1);
const positiveInt = (what: string) =>
  z
    .string()
    .trim()
    .regex(/^[0-9]+$/, `expected ${what} as a whole number`)
    .transform(Number)
    .pipe(z.number().int().positive(`expected ${what} greater than zero`));
/** A whole number, 0 included (`message` says what 0 means), at most `max` when given. */
const wholeNumber = (message: string, max?: { value: number; message: string }) => {
  const value = z.string().trim().regex(/^[0-9]+$/, message).transform(Number);
  return max ? value.pipe(z.number().int().max(max.value, max.message)) : value;
};

const BYTE_SUFFIXES: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };

/** Bytes of a whole number with an optional Kubernetes quantity suffix (`10Gi`, `500M`); NaN for anything else. */
function quantityBytes(raw: string): number {
  const match = /^([0-9]+)(k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(raw);
  return match ? Number(match[1]) * BYTE_SUFFIXES[match[2] ?? '']! : NaN;
}

/** A size in bytes, with an optional Kubernetes quantity suffix (`10Gi`, `500M`). */
const byteSize = z
  .string()
  .trim()
  .transform((raw, ctx) => {
    const bytes = quantityBytes(raw);
    if (Number.isSafeInteger(bytes) && bytes > 0) return bytes;
    ctx.addIssue({ code: 'custom', message: 'expected a size in bytes greater than zero, with an optional k, M, G, T, Ki, Mi, Gi or Ti suffix (such as 10Gi)' });
    return z.NEVER;
  });

const fields = {
  port: positiveInt('a TCP port').pipe(z.number().max(65535, 'expected a TCP port up to 65535')),
  channel: nonEmpty.regex(/^[A-Za-z0-9._-]+$/, 'expected a channel name or nixpkgs commit (letters, digits, . _ -)'),
  pkgsRepo: nonEmpty,
  pkgsPath: nonEmpty,
  storageBackend: z.enum(['filesystem', 'gcs', 's3'], { error: 'expected "filesystem", "gcs" or "s3"' }),
  storagePath: nonEmpty,
  gcsBucket: nonEmpty.regex(/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/, 'expected a GCS bucket name'),
  googleCredentials: nonEmpty,
  nixTimeout: positiveInt('seconds'),
  popularityUrl: z.url({ protocol: /^(https?|file)$/, error: 'expected an http(s):// or file:// URL' }),
  webDir: nonEmpty,
  channelBaseUrl: z.url({ protocol: /^https?$/, error: 'expected an http(s):// URL' }),
  pkgsRepoTrustedRefs: z.string().transform(trustedRefPatterns),
  layerBudget: positiveInt('a number of layers').pipe(z.number().min(2, 'expected at least 2 layers (one for packages, one for customisation)')),
  maxConcurrentBuilds: positiveInt('a number of builds'),
  tagFlushInterval: positiveInt('seconds'),
  maxRecordedTags: positiveInt('a number of tags'),
  maxQueuedBuilds: wholeNumber('expected a number of builds as a whole number (0: no build waits)', { value: 1_000_000, message: 'expected at most 1000000 builds' }),
  clientBuildsPerMinute: positiveInt('a number of builds a minute'),
  clientAuthChecksPerMinute: positiveInt('a number of credential checks a minute'),
  maxClosureSize: byteSize,
  logLevel: z.enum(['debug', 'info', 'warn', 'error'], { error: 'expected debug, info, warn or error' }),
  gcsRedirect: z.enum(['signed', 'public', 'stream'], { error: 'expected signed, public or stream' }),
  // V4 signed URLs live at most seven days.
  gcsSignedUrlExpiry: positiveInt('seconds').pipe(z.number().max(604800, 'expected at most 604800 seconds (seven days)')),
  gcsResumableThreshold: z
    .string()
    .trim()
    .regex(/^[0-9]+$/, 'expected a number of bytes')
    .transform(Number)
    .pipe(z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)),
  // AWS's rules for new buckets, with the upper case and underscores older buckets and other services allow.
  s3Bucket: nonEmpty.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$/, 'expected an S3 bucket name'),
  s3Region: nonEmpty.regex(/^[a-z0-9-]+$/, 'expected an AWS region such as eu-west-1'),
  s3Endpoint: z.url({ protocol: /^https?$/, error: 'expected an http(s):// URL' }),
  s3ForcePathStyle: z.enum(['true', 'false'], { error: 'expected true or false' }).transform((v) => v === 'true'),
  s3Prefix: z
    .string()
    .trim()
    .transform((raw) => raw.replace(/^\/+|\/+$/g, ''))
    .pipe(z.string().regex(/^([A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*)?$/, 'expected slash-separated segments of letters, digits, . _ -').refine((p) => !p.split('/').some((s) => s === '.' || s === '..'), 'expected no . or .. segments')),
  s3Redirect: z.enum(['presigned', 'stream'], { error: 'expected presigned or stream' }),
  // SigV4 presigned URLs live at most seven days.
  s3PresignedUrlExpiry: positiveInt('seconds').pipe(z.number().max(604800, 'expected at most 604800 seconds (seven days)')),
  s3ServerSideEncryption: z.enum(['AES256', 'aws:kms'], { error: 'expected AES256 or aws:kms' }),
  s3KmsKeyId: nonEmpty,
  s3PartSize: byteSize.pipe(z.number().min(5 * 1024 * 1024, 'expected at least 5Mi (S3\'s smallest part)').max(5 * 1024 * 1024 * 1024, 'expected at most 5Gi (S3\'s largest part)')),
  pushToken: z.string().trim().min(16, 'expected a token of at least 16 characters'),
  pushTokenFile: nonEmpty,
  anonymousPull: z.enum(['true', 'false'], { error: 'expected true or false' }).transform((v) => v === 'true'),
  htpasswdFile: z.string().transform((raw, ctx) => checkedList(raw, ctx, MAX_HTPASSWD_FILES, 'files', (f) => (f === '' ? 'an empty entry' : undefined), (problem) => `expected comma-separated paths of htpasswd files, but found ${problem}`)),
  authPolicyFile: nonEmpty,
  tokenKeyFile: nonEmpty,
  tokenTtl: positiveInt('seconds').pipe(z.number().max(86400, 'expected at most 86400 seconds (a day)')),
  k8sTokenAudience: nonEmpty.max(253, 'expected an audience of at most 253 characters'),
  k8sTokenVerification: z.enum(['tokenreview', 'oidc'], { error: 'expected tokenreview or oidc' }),
  k8sServiceAccountDir: nonEmpty,
  kubernetesServiceHost: nonEmpty,
  kubernetesServicePort: positiveInt('a TCP port').pipe(z.number().max(65535, 'expected a TCP port up to 65535')),
  onDemand: z.enum(['true', 'false'], { error: 'expected true or false' }).transform((v) => v === 'true'),
  allowedPackages: z.string().transform(packagePatterns),
  deniedPackages: z.string().transform(packagePatterns),
  headersTimeout: positiveInt('seconds'),
  receiveTimeout: positiveInt('seconds'),
  sendStallTimeout: positiveInt('seconds'),
  keepAliveTimeout: positiveInt('seconds'),
  maxConnections: positiveInt('a number of connections'),
  minFreeSpace: z.string().trim().transform(spaceReserve),
  tlsCertFile: nonEmpty,
  tlsKeyFile: nonEmpty,
  metricsPort: positiveInt('a TCP port').pipe(z.number().max(65535, 'expected a TCP port up to 65535')),
  platforms: z.string().transform(platformList),
  // The type only from pack/: the operator reads this module and loads none of packing.
  layerCompression: z.enum(['gzip', 'zstd'] satisfies LayerCompression[], { error: 'expected gzip or zstd' }),
  uploadSessionTtl: positiveInt('seconds'),
  stagingTtl: positiveInt('seconds'),
  gcGrace: positiveInt('seconds'),
  gcInterval: wholeNumber('expected seconds as a whole number (0 turns periodic garbage collection off)'),
  retainPulledWithin: wholeNumber('expected seconds as a whole number (0 keeps on-demand images forever)', { value: 100 * 365 * 86400, message: 'expected at most 100 years in seconds (0 keeps on-demand images forever)' }),
  gcMaxImagesPerName: wholeNumber('expected a number of images as a whole number (0: no limit)', { value: 1_000_000, message: 'expected at most 1000000 images (0: no limit)' }),
  // Renewals come every third of it: below 3 s a slow storage round trip alone could lose the lease.
  leaseDuration: positiveInt('seconds').pipe(z.number().min(3, 'expected at least 3 seconds').max(3600, 'expected at most 3600 seconds')),
  storageQuota: byteSize,
  nixGcInterval: wholeNumber('expected seconds as a whole number (0 turns the Nix store collection off)'),
  nixGcMaxFreed: byteSize,
} satisfies Record<keyof typeof ENV, z.ZodType>;

/**
 * A comma-separated list, whitespace around entries ignored: at most `max` entries, each passing
 * `problemOf` (undefined when it is fine); `refuse` words the first problem.
 */
function checkedList(raw: string, ctx: z.RefinementCtx, max: number, noun: string, problemOf: (entry: string) => string | undefined, refuse: (problem: string) => string): string[] {
  const entries = raw.split(',').map((e) => e.trim());
  if (entries.length > max) {
    ctx.addIssue({ code: 'custom', message: `expected at most ${max} comma-separated ${noun}, got ${entries.length}` });
    return z.NEVER;
  }
  for (const entry of entries) {
    const problem = problemOf(entry);
    if (problem) {
      ctx.addIssue({ code: 'custom', message: refuse(problem) });
      return z.NEVER;
    }
  }
  return entries;
}

/** A comma-separated list of package patterns, each checked. */
function packagePatterns(raw: string, ctx: z.RefinementCtx): string[] {
  return checkedList(raw, ctx, MAX_PACKAGE_PATTERNS, 'attribute paths', packagePatternProblem, (problem) => `expected comma-separated attribute paths with * as a glob, but found ${problem}`);
}

/** NIXERY_PLATFORMS: image/platform.ts's list. */
function platformList(raw: string, ctx: z.RefinementCtx): Platform[] {
  try {
    return parsePlatforms(raw);
  } catch (error) {
    if (!(error instanceof InvalidPlatformsError)) throw error;
    ctx.addIssue({ code: 'custom', message: error.message });
    return z.NEVER;
  }
}

/** Bytes, with Kubernetes' suffixes (`512Mi`, `2G`), or a percentage of the file system (`5%`). */
function spaceReserve(raw: string, ctx: z.RefinementCtx): SpaceReserve {
  const percent = /^([0-9]+(?:\.[0-9]+)?)%$/.exec(raw);
  if (percent) {
    const value = Number(percent[1]);
    if (value < 100) return { percent: value };
    ctx.addIssue({ code: 'custom', message: 'expected a percentage below 100%' });
    return z.NEVER;
  }
  const bytes = quantityBytes(raw);
  if (Number.isSafeInteger(bytes)) return { bytes };
  ctx.addIssue({ code: 'custom', message: 'expected bytes as a whole number with an optional k, M, G, T, Ki, Mi, Gi or Ti suffix (such as 2Gi), or a percentage (such as 5%)' });
  return z.NEVER;
}

/** Most trusted-ref patterns: each is a refspec of every mirror fetch. */
const MAX_TRUSTED_REF_PATTERNS = 64;

/** A comma-separated list of trusted-ref patterns (package-source.ts), each checked. */
function trustedRefPatterns(raw: string, ctx: z.RefinementCtx): string[] {
  return checkedList(raw, ctx, MAX_TRUSTED_REF_PATTERNS, 'ref patterns', trustedRefPatternProblem, (problem) => `expected comma-separated ref patterns such as refs/heads/*,refs/tags/v*, but ${problem}`);
}

type Parsed = { [K in keyof typeof fields]?: z.output<(typeof fields)[K]> };

/**
 * Reads the configuration from an environment. Empty variables count as unset, as in Nixery.
 * Throws ConfigError naming the first bad variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): Config {
  const v: Parsed = {};
  for (const key of Object.keys(fields) as (keyof typeof fields)[]) {
    const value = readField(key, env);
    if (value !== undefined) (v as Record<string, unknown>)[key] = value;
  }

  const channelBaseUrl = (v.channelBaseUrl ?? DEFAULT_CHANNEL_BASE_URL).replace(/\/+$/, '');
  let source: PackageSource;
  let sourceIsDefault = false;
  // Nixery's precedence: channel, then git repository, then local path.
  if (v.channel !== undefined) source = { type: 'channel', channel: v.channel, baseUrl: channelBaseUrl };
  else if (v.pkgsRepo !== undefined) source = { type: 'git', url: v.pkgsRepo, ...(v.pkgsRepoTrustedRefs ? { trustedRefs: v.pkgsRepoTrustedRefs } : {}) };
  else if (v.pkgsPath !== undefined) source = { type: 'path', path: path.resolve(cwd, v.pkgsPath) };
  else {
    source = { type: 'path', path: bundledPackageSetPath() };
    sourceIsDefault = true;
  }

  let storage: StorageConfig;
  if ((v.storageBackend ?? 'filesystem') === 'gcs') {
    if (v.gcsBucket === undefined) throw new ConfigError(ENV.gcsBucket, 'must be set when NIXERY_STORAGE_BACKEND is "gcs"');
    storage = {
      backend: 'gcs',
      bucket: v.gcsBucket,
      ...(v.googleCredentials ? { credentialsFile: v.googleCredentials } : {}),
      ...(v.gcsRedirect ? { redirect: v.gcsRedirect } : {}),
      ...(v.gcsSignedUrlExpiry !== undefined ? { signedUrlExpirySeconds: v.gcsSignedUrlExpiry } : {}),
      ...(v.gcsResumableThreshold !== undefined ? { resumableThresholdBytes: v.gcsResumableThreshold } : {}),
    };
  } else if (v.storageBackend === 's3') {
    if (v.s3Bucket === undefined) throw new ConfigError(ENV.s3Bucket, 'must be set when NIXERY_STORAGE_BACKEND is "s3"');
    if (v.s3KmsKeyId !== undefined && v.s3ServerSideEncryption !== 'aws:kms') throw new ConfigError(ENV.s3KmsKeyId, 'needs NIXERY_S3_SSE=aws:kms');
    storage = {
      backend: 's3',
      bucket: v.s3Bucket,
      ...(v.s3Region !== undefined ? { region: v.s3Region } : {}),
      ...(v.s3Endpoint !== undefined ? { endpoint: v.s3Endpoint } : {}),
      ...(v.s3ForcePathStyle !== undefined ? { forcePathStyle: v.s3ForcePathStyle } : {}),
      ...(v.s3Prefix ? { prefix: v.s3Prefix } : {}),
      ...(v.s3Redirect !== undefined ? { redirect: v.s3Redirect } : {}),
      ...(v.s3PresignedUrlExpiry !== undefined ? { presignedUrlExpirySeconds: v.s3PresignedUrlExpiry } : {}),
      ...(v.s3ServerSideEncryption !== undefined ? { serverSideEncryption: v.s3ServerSideEncryption } : {}),
      ...(v.s3KmsKeyId !== undefined ? { kmsKeyId: v.s3KmsKeyId } : {}),
      ...(v.s3PartSize !== undefined ? { partSizeBytes: v.s3PartSize } : {}),
    };
  } else {
    storage = { backend: 'filesystem', path: path.resolve(cwd, v.storagePath ?? DEFAULT_STORAGE_PATH) };
  }

  const connections: ConnectionLimits = {
    headersTimeoutSeconds: v.headersTimeout ?? DEFAULT_CONNECTION_LIMITS.headersTimeoutSeconds,
    receiveTimeoutSeconds: v.receiveTimeout ?? DEFAULT_CONNECTION_LIMITS.receiveTimeoutSeconds,
    sendStallTimeoutSeconds: v.sendStallTimeout ?? DEFAULT_CONNECTION_LIMITS.sendStallTimeoutSeconds,
    keepAliveTimeoutSeconds: v.keepAliveTimeout ?? DEFAULT_CONNECTION_LIMITS.keepAliveTimeoutSeconds,
    maxConnections: v.maxConnections ?? DEFAULT_CONNECTION_LIMITS.maxConnections,
  };
  // Node refuses a headers timeout longer than the request's: say which variables disagree.
  if (connections.headersTimeoutSeconds > connections.receiveTimeoutSeconds) {
    throw new ConfigError(
      ENV.headersTimeout,
      `${connections.headersTimeoutSeconds} s exceeds ${ENV.receiveTimeout} (${connections.receiveTimeoutSeconds} s), which bounds the whole request, headers included`,
    );
  }

  let pushToken = v.pushToken;
  if (v.pushTokenFile !== undefined) {
    if (pushToken !== undefined) throw new ConfigError(ENV.pushTokenFile, `set either ${ENV.pushToken} or ${ENV.pushTokenFile}, not both`);
    try {
      pushToken = readFileSync(path.resolve(cwd, v.pushTokenFile), 'utf8').trim();
    } catch (error) {
      throw new ConfigError(ENV.pushTokenFile, `cannot read ${v.pushTokenFile}: ${(error as Error).message}`);
    }
    if (pushToken.length < 16) throw new ConfigError(ENV.pushTokenFile, 'the token in the file must have at least 16 characters');
  }

  const tls = tlsFiles(v.tlsCertFile, v.tlsKeyFile, cwd);
  const port = v.port ?? DEFAULT_PORT;
  if (v.metricsPort !== undefined && v.metricsPort === port) {
    throw new ConfigError(ENV.metricsPort, `${v.metricsPort} is the registry's own port (${ENV.port}); /metrics needs a port of its own`);
  }

  const auth = authSettings(v, cwd);

  // A staging object younger than the longest legitimate write may be one in progress elsewhere.
  if (v.stagingTtl !== undefined && v.stagingTtl <= connections.receiveTimeoutSeconds) {
    throw new ConfigError(
      ENV.stagingTtl,
      `${v.stagingTtl} s must exceed ${ENV.receiveTimeout} (${connections.receiveTimeoutSeconds} s): a blob pushed by another replica is staged for up to that long`,
    );
  }
  // Upload sessions are shared by the replicas (push/uploads.ts), and another replica's request
  // in flight is known only by the activity it wrote when it began: it must end (the receive
  // timeout bounds it) before the session can look idle.
  if (v.uploadSessionTtl !== undefined && v.uploadSessionTtl <= connections.receiveTimeoutSeconds) {
    throw new ConfigError(
      ENV.uploadSessionTtl,
      `${v.uploadSessionTtl} s must exceed ${ENV.receiveTimeout} (${connections.receiveTimeoutSeconds} s): a chunk another replica is receiving shows as activity only when its request began`,
    );
  }
  const purge: PurgeLimits = {
    uploadSessionTtlSeconds: v.uploadSessionTtl ?? Math.max(DEFAULT_UPLOAD_SESSION_TTL_SECONDS, 2 * connections.receiveTimeoutSeconds),
    stagingTtlSeconds: v.stagingTtl ?? Math.max(DEFAULT_STAGING_TTL_SECONDS, 2 * connections.receiveTimeoutSeconds),
  };

  const nixTimeoutSeconds = v.nixTimeout ?? DEFAULT_NIX_TIMEOUT_SECONDS;
  // A build may find a layer blob in the layer cache and name it in a manifest only at its end.
  const minGrace = GC_GRACE_BUILD_FACTOR * nixTimeoutSeconds;
  if (v.gcGrace !== undefined && v.gcGrace < minGrace) {
    throw new ConfigError(
      ENV.gcGrace,
      `${v.gcGrace} s is too short: it must be at least ${GC_GRACE_BUILD_FACTOR} × ${ENV.nixTimeout} (${minGrace} s), ` +
        'so that garbage collection never deletes a cached layer a running build is about to reference',
    );
  }
  const gc: GcSettings = {
    graceSeconds: v.gcGrace ?? Math.max(DEFAULT_GC_GRACE_SECONDS, minGrace),
    intervalSeconds: v.gcInterval ?? DEFAULT_GC_INTERVAL_SECONDS,
    retainPulledWithinSeconds: v.retainPulledWithin ?? DEFAULT_RETAIN_PULLED_WITHIN_SECONDS,
    maxImagesPerName: v.gcMaxImagesPerName ?? DEFAULT_GC_MAX_IMAGES_PER_NAME,
  };
  // ---- Storage quota and Nix store collection.
  const nixGc: NixGcSettings = { intervalSeconds: v.nixGcInterval ?? DEFAULT_NIX_GC_INTERVAL_SECONDS, maxFreedBytes: v.nixGcMaxFreed ?? DEFAULT_NIX_GC_MAX_FREED_BYTES };
  // Eviction happens in garbage collection runs, which the server then must make.
  if (v.storageQuota !== undefined && gc.intervalSeconds === 0) {
    throw new ConfigError(ENV.storageQuota, `needs garbage collection in the server, which evicts: ${ENV.gcInterval} must not be 0`);
  }

  return {
    ...(pushToken ? { pushToken } : {}),
    auth,
    port,
    source,
    sourceIsDefault,
    storage,
    nixTimeoutSeconds,
    ...(v.popularityUrl ? { popularityUrl: v.popularityUrl } : {}),
    ...(v.webDir ? { webDir: path.resolve(cwd, v.webDir) } : {}),
    layerBudget: v.layerBudget ?? DEFAULT_LAYER_BUDGET,
    maxConcurrentBuilds: v.maxConcurrentBuilds ?? DEFAULT_MAX_CONCURRENT_BUILDS,
    tagFlushIntervalSeconds: v.tagFlushInterval ?? DEFAULT_TAG_FLUSH_INTERVAL_SECONDS,
    maxRecordedTags: v.maxRecordedTags ?? DEFAULT_MAX_RECORDED_TAGS,
    maxQueuedBuilds: v.maxQueuedBuilds ?? DEFAULT_MAX_QUEUED_BUILDS,
    clientBuildsPerMinute: v.clientBuildsPerMinute ?? DEFAULT_CLIENT_BUILDS_PER_MINUTE,
    clientAuthChecksPerMinute: v.clientAuthChecksPerMinute ?? DEFAULT_CLIENT_AUTH_CHECKS_PER_MINUTE,
    maxClosureBytes: v.maxClosureSize ?? DEFAULT_MAX_CLOSURE_BYTES,
    logLevel: v.logLevel ?? 'info',
    onDemand: v.onDemand ?? true,
    ...(v.allowedPackages ? { allowedPackages: v.allowedPackages } : {}),
    deniedPackages: v.deniedPackages ?? [],
    connections,
    minFreeSpace: v.minFreeSpace ?? DEFAULT_MIN_FREE_SPACE,
    ...(tls ? { tls } : {}),
    ...(v.metricsPort !== undefined ? { metricsPort: v.metricsPort } : {}),
    platforms: v.platforms ?? [...DEFAULT_PLATFORMS],
    layerCompression: v.layerCompression ?? 'gzip',
    purge,
    gc,
    leaseDurationSeconds: v.leaseDuration ?? DEFAULT_LEASE_DURATION_SECONDS,
    ...(v.storageQuota !== undefined ? { storageQuotaBytes: v.storageQuota } : {}),
    nixGc,
  };
}

/**
 * Both TLS variables or neither; set, the files must hold a usable pair now: a registry that
 * cannot serve what it was told to serve does not start (a renewal that goes wrong later is
 * only logged, by http/tls-files.ts, since the pair in use still works).
 */
function tlsFiles(certFile: string | undefined, keyFile: string | undefined, cwd: string): TlsFiles | undefined {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (keyFile === undefined) throw new ConfigError(ENV.tlsCertFile, `must be set together with ${ENV.tlsKeyFile}`);
  if (certFile === undefined) throw new ConfigError(ENV.tlsKeyFile, `must be set together with ${ENV.tlsCertFile}`);
  const files = { certFile: path.resolve(cwd, certFile), keyFile: path.resolve(cwd, keyFile) };
  try {
    readTlsPairSync(files);
  } catch (error) {
    if (!(error instanceof TlsPairError)) throw error;
    throw new ConfigError(error.file === 'keyFile' ? ENV.tlsKeyFile : ENV.tlsCertFile, error.message);
  }
  return files;
}

function authSettings(v: Parsed, cwd: string): AuthSettings {
  let kubernetesTokens: AuthSettings['kubernetesTokens'];
  if (v.k8sTokenAudience !== undefined) {
    if (v.kubernetesServiceHost === undefined || v.kubernetesServicePort === undefined) {
      throw new ConfigError(ENV.k8sTokenAudience, `needs the Kubernetes API, but ${ENV.kubernetesServiceHost} and ${ENV.kubernetesServicePort} are not set (is the registry running in a pod?)`);
    }
    const host = v.kubernetesServiceHost;
    kubernetesTokens = {
      audience: v.k8sTokenAudience,
      verification: v.k8sTokenVerification ?? 'tokenreview',
      apiServer: `https://${host.includes(':') ? `[${host}]` : host}:${v.kubernetesServicePort}`,
      serviceAccountDir: path.resolve(cwd, v.k8sServiceAccountDir ?? DEFAULT_SERVICE_ACCOUNT_DIR),
    };
  } else if (v.k8sTokenVerification !== undefined) {
    throw new ConfigError(ENV.k8sTokenVerification, `has no effect without ${ENV.k8sTokenAudience}`);
  }
  return {
    anonymousPull: v.anonymousPull ?? true,
    htpasswdFiles: (v.htpasswdFile ?? []).map((f) => path.resolve(cwd, f)),
    ...(v.authPolicyFile !== undefined ? { policyFile: path.resolve(cwd, v.authPolicyFile) } : {}),
    ...(v.tokenKeyFile !== undefined ? { tokenKeyFile: path.resolve(cwd, v.tokenKeyFile) } : {}),
    tokenTtlSeconds: v.tokenTtl ?? DEFAULT_TOKEN_TTL_SECONDS,
    ...(kubernetesTokens ? { kubernetesTokens } : {}),
  };
}

/** One variable: undefined when unset or empty, else its parsed value; throws ConfigError naming it. */
function readField<K extends keyof typeof fields>(key: K, env: NodeJS.ProcessEnv): Parsed[K] {
  const name = ENV[key];
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const result = fields[key].safeParse(raw);
  if (!result.success) {
    throw new ConfigError(name, `${result.error.issues[0]?.message ?? 'invalid value'} (got ${JSON.stringify(raw)})`);
  }
  return result.data as Parsed[K];
}

/**
 * NIXERY_LOG_LEVEL alone, exactly as loadConfig reads it: for a program (the operator) that logs
 * like the registry without being configured like it.
 */
export function loadLogLevel(env: NodeJS.ProcessEnv = process.env): Config['logLevel'] {
  return readField('logLevel', env) ?? 'info';
}

/** What a registry deployment is told, in the terms of this module; rendered to Nixery's variables. */
export interface RegistrySettings {
  port?: number;
  source?: PackageSource;
  storage?: StorageConfig;
  nixTimeoutSeconds?: number;
  popularityUrl?: string;
  layerBudget?: number;
  pushTokenFile?: string;
  /** Unset: the registry's default (true). */
  anonymousPull?: boolean;
  htpasswdFiles?: readonly string[];
  authPolicyFile?: string;
  tokenKeyFile?: string;
  tokenTtlSeconds?: number;
  k8sTokenAudience?: string;
  k8sTokenVerification?: 'tokenreview' | 'oidc';
  k8sServiceAccountDir?: string;
  onDemand?: boolean;
  /** Empty or unset: no allow list (every package allowed). */
  allowedPackages?: readonly string[];
  deniedPackages?: readonly string[];
  maxQueuedBuilds?: number;
  clientBuildsPerMinute?: number;
  clientAuthChecksPerMinute?: number;
  /** As NIXERY_MAX_CLOSURE_SIZE takes it: bytes, or with a Kubernetes quantity suffix (`10Gi`). */
  maxClosureSize?: string;
  /** Unset fields keep the registry's defaults (DEFAULT_CONNECTION_LIMITS). */
  connections?: Partial<ConnectionLimits>;
  /** As NIXERY_MIN_FREE_SPACE takes it: bytes with a quantity suffix (`2Gi`), or a percentage (`5%`). */
  minFreeSpace?: string;
  maxConcurrentBuilds?: number;
  tagFlushIntervalSeconds?: number;
  maxRecordedTags?: number;
  /** Paths in the registry's container (operator-api's TLS_MOUNT). */
  tls?: TlsFiles;
  metricsPort?: number;
  /** Unset: the registry's default (linux/amd64). */
  platforms?: readonly Platform[];
  /** Unset: the registry's default (gzip). */
  layerCompression?: LayerCompression;
  /** Unset fields keep the registry's defaults. */
  purge?: Partial<PurgeLimits>;
  /** Unset fields keep the registry's defaults (the grace delay's depends on nixTimeoutSeconds). */
  gc?: Partial<GcSettings>;
  /** NIXERY_STORAGE_QUOTA as written (`50Gi`, bytes); unset: no quota. */
  storageQuota?: string;
  /** NIXERY_NIX_GC_INTERVAL (seconds) and NIXERY_NIX_GC_MAX_FREED as written; unset: the registry's (off). */
  nixStoreGc?: { intervalSeconds?: number; maxFreed?: string };
}

/**
 * The inverse of loadConfig: the environment that makes a registry load `settings`. The operator
 * renders registry Deployments with it, so variable names live only in this module.
 */
export function renderEnvironment(settings: RegistrySettings): Record<string, string> {
  const env: Record<string, string> = {};
  if (settings.port !== undefined) env[ENV.port] = String(settings.port);
  const source = settings.source;
  if (source?.type === 'channel') {
    env[ENV.channel] = source.channel;
    if (source.baseUrl !== DEFAULT_CHANNEL_BASE_URL) env[ENV.channelBaseUrl] = source.baseUrl;
  } else if (source?.type === 'git') {
    env[ENV.pkgsRepo] = source.url;
    if (source.trustedRefs) env[ENV.pkgsRepoTrustedRefs] = source.trustedRefs.join(',');
  }
  else if (source?.type === 'path') env[ENV.pkgsPath] = source.path;
  const storage = settings.storage;
  if (storage?.backend === 'filesystem') {
    env[ENV.storageBackend] = 'filesystem';
    env[ENV.storagePath] = storage.path;
  } else if (storage?.backend === 'gcs') {
    env[ENV.storageBackend] = 'gcs';
    env[ENV.gcsBucket] = storage.bucket;
    if (storage.credentialsFile !== undefined) env[ENV.googleCredentials] = storage.credentialsFile;
    if (storage.redirect !== undefined) env[ENV.gcsRedirect] = storage.redirect;
    if (storage.signedUrlExpirySeconds !== undefined) env[ENV.gcsSignedUrlExpiry] = String(storage.signedUrlExpirySeconds);
    if (storage.resumableThresholdBytes !== undefined) env[ENV.gcsResumableThreshold] = String(storage.resumableThresholdBytes);
  } else if (storage?.backend === 's3') {
    env[ENV.storageBackend] = 's3';
    env[ENV.s3Bucket] = storage.bucket;
    if (storage.region !== undefined) env[ENV.s3Region] = storage.region;
    if (storage.endpoint !== undefined) env[ENV.s3Endpoint] = storage.endpoint;
    if (storage.forcePathStyle !== undefined) env[ENV.s3ForcePathStyle] = String(storage.forcePathStyle);
    if (storage.prefix !== undefined) env[ENV.s3Prefix] = storage.prefix;
    if (storage.redirect !== undefined) env[ENV.s3Redirect] = storage.redirect;
    if (storage.presignedUrlExpirySeconds !== undefined) env[ENV.s3PresignedUrlExpiry] = String(storage.presignedUrlExpirySeconds);
    if (storage.serverSideEncryption !== undefined) env[ENV.s3ServerSideEncryption] = storage.serverSideEncryption;
    if (storage.kmsKeyId !== undefined) env[ENV.s3KmsKeyId] = storage.kmsKeyId;
    if (storage.partSizeBytes !== undefined) env[ENV.s3PartSize] = String(storage.partSizeBytes);
  }
  if (settings.nixTimeoutSeconds !== undefined) env[ENV.nixTimeout] = String(settings.nixTimeoutSeconds);
  if (settings.popularityUrl !== undefined) env[ENV.popularityUrl] = settings.popularityUrl;
  if (settings.layerBudget !== undefined) env[ENV.layerBudget] = String(settings.layerBudget);
  if (settings.pushTokenFile !== undefined) env[ENV.pushTokenFile] = settings.pushTokenFile;
  if (settings.anonymousPull !== undefined) env[ENV.anonymousPull] = String(settings.anonymousPull);
  if (settings.htpasswdFiles?.length) env[ENV.htpasswdFile] = settings.htpasswdFiles.join(',');
  if (settings.authPolicyFile !== undefined) env[ENV.authPolicyFile] = settings.authPolicyFile;
  if (settings.tokenKeyFile !== undefined) env[ENV.tokenKeyFile] = settings.tokenKeyFile;
  if (settings.tokenTtlSeconds !== undefined) env[ENV.tokenTtl] = String(settings.tokenTtlSeconds);
  if (settings.k8sTokenAudience !== undefined) env[ENV.k8sTokenAudience] = settings.k8sTokenAudience;
  if (settings.k8sTokenVerification !== undefined) env[ENV.k8sTokenVerification] = settings.k8sTokenVerification;
  if (settings.k8sServiceAccountDir !== undefined) env[ENV.k8sServiceAccountDir] = settings.k8sServiceAccountDir;
  if (settings.onDemand !== undefined) env[ENV.onDemand] = String(settings.onDemand);
  if (settings.allowedPackages?.length) env[ENV.allowedPackages] = settings.allowedPackages.join(',');
  if (settings.deniedPackages?.length) env[ENV.deniedPackages] = settings.deniedPackages.join(',');
  if (settings.maxQueuedBuilds !== undefined) env[ENV.maxQueuedBuilds] = String(settings.maxQueuedBuilds);
  if (settings.clientBuildsPerMinute !== undefined) env[ENV.clientBuildsPerMinute] = String(settings.clientBuildsPerMinute);
  if (settings.clientAuthChecksPerMinute !== undefined) env[ENV.clientAuthChecksPerMinute] = String(settings.clientAuthChecksPerMinute);
  if (settings.maxClosureSize !== undefined) env[ENV.maxClosureSize] = settings.maxClosureSize;
  const connections = settings.connections ?? {};
  if (connections.headersTimeoutSeconds !== undefined) env[ENV.headersTimeout] = String(connections.headersTimeoutSeconds);
  if (connections.receiveTimeoutSeconds !== undefined) env[ENV.receiveTimeout] = String(connections.receiveTimeoutSeconds);
  if (connections.sendStallTimeoutSeconds !== undefined) env[ENV.sendStallTimeout] = String(connections.sendStallTimeoutSeconds);
  if (connections.keepAliveTimeoutSeconds !== undefined) env[ENV.keepAliveTimeout] = String(connections.keepAliveTimeoutSeconds);
  if (connections.maxConnections !== undefined) env[ENV.maxConnections] = String(connections.maxConnections);
  if (settings.minFreeSpace !== undefined) env[ENV.minFreeSpace] = settings.minFreeSpace;
  if (settings.maxConcurrentBuilds !== undefined) env[ENV.maxConcurrentBuilds] = String(settings.maxConcurrentBuilds);
  if (settings.tagFlushIntervalSeconds !== undefined) env[ENV.tagFlushInterval] = String(settings.tagFlushIntervalSeconds);
  if (settings.maxRecordedTags !== undefined) env[ENV.maxRecordedTags] = String(settings.maxRecordedTags);
  if (settings.tls !== undefined) {
    env[ENV.tlsCertFile] = settings.tls.certFile;
    env[ENV.tlsKeyFile] = settings.tls.keyFile;
  }
  if (settings.metricsPort !== undefined) env[ENV.metricsPort] = String(settings.metricsPort);
  if (settings.platforms?.length) env[ENV.platforms] = settings.platforms.join(',');
  if (settings.layerCompression !== undefined) env[ENV.layerCompression] = settings.layerCompression;
  if (settings.purge?.uploadSessionTtlSeconds !== undefined) env[ENV.uploadSessionTtl] = String(settings.purge.uploadSessionTtlSeconds);
  if (settings.purge?.stagingTtlSeconds !== undefined) env[ENV.stagingTtl] = String(settings.purge.stagingTtlSeconds);
  if (settings.gc?.graceSeconds !== undefined) env[ENV.gcGrace] = String(settings.gc.graceSeconds);
  if (settings.gc?.intervalSeconds !== undefined) env[ENV.gcInterval] = String(settings.gc.intervalSeconds);
  if (settings.gc?.retainPulledWithinSeconds !== undefined) env[ENV.retainPulledWithin] = String(settings.gc.retainPulledWithinSeconds);
  if (settings.gc?.maxImagesPerName !== undefined) env[ENV.gcMaxImagesPerName] = String(settings.gc.maxImagesPerName);
  if (settings.storageQuota !== undefined) env[ENV.storageQuota] = settings.storageQuota;
  if (settings.nixStoreGc?.intervalSeconds !== undefined) env[ENV.nixGcInterval] = String(settings.nixStoreGc.intervalSeconds);
  if (settings.nixStoreGc?.maxFreed !== undefined) env[ENV.nixGcMaxFreed] = settings.nixStoreGc.maxFreed;
  return env;
}
