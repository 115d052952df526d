// Pushes need the instance's push token; pulls stay anonymous. Clients send it as a bearer token
// (skopeo --dest-registry-token) or as the password of basic auth (docker login, any user name).
import { timingSafeEqual, createHash } from 'node:crypto';

export type PushAuthResult = { ok: true } | { ok: false; reason: 'disabled' | 'missing' | 'invalid' };

export function checkPushAuthorization(header: string | undefined, token: string | undefined): PushAuthResult {
  if (!token) return { ok: false, reason: 'disabled' };
  if (!header) return { ok: false, reason: 'missing' };
  const presented = presentedSecret(header);
  if (presented === undefined) return { ok: false, reason: 'invalid' };
  // Compare digests so length differences leak nothing either.
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b) ? { ok: true } : { ok: false, reason: 'invalid' };
}

function presentedSecret(header: string): string | undefined {
  const [scheme, value] = header.trim().split(/\s+/, 2);
  if (!value) return undefined;
  if (scheme?.toLowerCase() === 'bearer') return value;
  if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}
