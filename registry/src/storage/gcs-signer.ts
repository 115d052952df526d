// V4 signed URLs for object GETs (GOOG4-RSA-SHA256), signed locally with a service account key.
// Not @google-cloud/storage's getSignedUrl: that one signs the endpoint's host name without its
// port (wrong for any endpoint on a non-default port, such as an emulator) and, given anything
// but a key file through application default credentials, looks the account up on the GCE
// metadata server. Signing here needs nothing but the key and the clock.
import { createHash, sign, type KeyObject } from 'node:crypto';

export interface SigningKey {
  clientEmail: string;
  privateKey: KeyObject;
}

export const MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600;

export interface SignedUrlRequest {
  key: SigningKey;
  /** Where the URL points, e.g. https://storage.googleapis.com. */
  endpoint: string;
  bucket: string;
  object: string;
  expiresSeconds: number;
  now?: Date;
}

export function signedGetUrl(request: SignedUrlRequest): string {
  const { key, bucket, object, expiresSeconds } = request;
  if (!Number.isInteger(expiresSeconds) || expiresSeconds < 1 || expiresSeconds > MAX_SIGNED_URL_SECONDS) {
    throw new RangeError(`a V4 signed URL expires after 1 to ${MAX_SIGNED_URL_SECONDS} seconds, not ${expiresSeconds}`);
  }
  const endpoint = new URL(request.endpoint);
  const timestamp = (request.now ?? new Date()).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const scope = `${timestamp.slice(0, 8)}/auto/storage/goog4_request`;
  const path = `/${rfc3986(bucket)}/${object.split('/').map(rfc3986).join('/')}`;
  const query = canonicalQuery({
    'X-Goog-Algorithm': 'GOOG4-RSA-SHA256',
    'X-Goog-Credential': `${key.clientEmail}/${scope}`,
    'X-Goog-Date': timestamp,
    'X-Goog-Expires': String(expiresSeconds),
    'X-Goog-SignedHeaders': 'host',
  });
  // URL.host carries the port only when it is not the scheme's default, as the Host header does.
  const canonicalRequest = ['GET', path, query, `host:${endpoint.host}\n`, 'host', 'UNSIGNED-PAYLOAD'].join('\n');
  const stringToSign = ['GOOG4-RSA-SHA256', timestamp, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
  const signature = sign('sha256', Buffer.from(stringToSign), key.privateKey).toString('hex');
  return `${endpoint.origin}${path}?${query}&X-Goog-Signature=${signature}`;
}

/** The object's address for anonymous reads of a public bucket. */
export function publicObjectUrl(endpoint: string, bucket: string, object: string): string {
  return `${new URL(endpoint).origin}/${rfc3986(bucket)}/${object.split('/').map(rfc3986).join('/')}`;
}

function canonicalQuery(params: Record<string, string>): string {
  return Object.entries(params)
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/** Percent-encoding as V4 signing canonicalises it: everything but A-Z a-z 0-9 - . _ ~. */
function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
