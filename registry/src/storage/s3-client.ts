// The S3 client as the backend uses it, and what its errors mean. Credentials and (unless given)
// the region come from the SDK's default chain: AWS_* variables, the shared config and
// credentials files, web identity tokens (IRSA, EKS Pod Identity), container and instance
// metadata. Nothing here reads a secret itself.
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

export interface S3ClientOptions {
  /** Unset: the SDK's chain (AWS_REGION, the shared config file). */
  region?: string;
  /** An S3-compatible service's URL (Ceph RGW, MinIO, …); unset: AWS's regional endpoint. */
  endpoint?: string;
  /** Bucket in the path instead of the host name, as most S3-compatible services want. */
  forcePathStyle?: boolean;
  /** Attempts of one request, the first included. */
  maxAttempts?: number;
}

export const DEFAULT_MAX_ATTEMPTS = 6;

export function makeS3Client(options: S3ClientOptions): S3Client {
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const config: S3ClientConfig = {
    ...(options.region !== undefined ? { region: options.region } : {}),
    ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
    forcePathStyle: options.forcePathStyle ?? false,
    // The standard strategy retries throttling (503 SlowDown, 429), 5xx, timeouts and cut
    // connections, with jittered exponential back-off from 100 ms; every request we send has a
    // Buffer body or none, so a retry resends it whole.
    retryMode: 'standard',
    maxAttempts,
    // Checksums only where the API requires them: the SDK's default (a CRC32 trailer in an
    // aws-chunked body on every upload) is refused or ignored by many S3-compatible services.
    // Uploads are verified instead against the ETag the server computed (s3-etag.ts).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  return new S3Client(config);
}

/** The HTTP status the service answered, when it answered. */
export function s3Status(error: unknown): number | undefined {
  const status = (error as { $metadata?: { httpStatusCode?: unknown } } | undefined)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The S3 error code (NoSuchKey, SlowDown, …), when the service sent one. */
export function s3Code(error: unknown): string | undefined {
  const e = error as { Code?: unknown; name?: unknown } | undefined;
  if (typeof e?.Code === 'string') return e.Code;
  return s3Status(error) !== undefined && typeof e?.name === 'string' ? e.name : undefined;
}

const TRANSIENT_NETWORK_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET']);

/** For reads resumed by Range (gcs-download.ts's reader): throttling, 5xx and cut connections. */
export function isTransientS3Error(error: unknown): boolean {
  const status = s3Status(error);
  if (status !== undefined) return status === 408 || status === 429 || status >= 500;
  for (let e = error as { code?: unknown; cause?: unknown; message?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && TRANSIENT_NETWORK_CODES.has(e.code)) return true;
    if (e.message === 'aborted' || e.message === 'socket hang up') return true;
  }
  return false;
}
