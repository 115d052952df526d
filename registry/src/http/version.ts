// GET /v2/: the version check.
import type { Request, Response } from 'express';
import { authenticate, challenge, type AuthDeps } from './auth.ts';
import { RegistryError } from './errors.ts';

/**
 * A registry without authentication answers everyone. One with it behaves like a token-auth
 * registry: a request with a valid credential (the anonymous token too, while anonymous pulls are
 * on) gets 200; one without any credential is challenged, so clients learn where to get tokens
 * (containers/image and Docker send credentials only after such a challenge, and fetch anonymous
 * tokens from the realm when they have none); an invalid or expired one gets 401 as well.
 */
export async function versionCheck(deps: AuthDeps, req: Request, res: Response): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new RegistryError('UNSUPPORTED', `${req.method} is not supported here`);
  if (!deps.auth.enabled) {
    res.json({});
    return;
  }
  const authentication = await authenticate(deps, req, res);
  if (!authentication.ok) {
    challenge(req, res);
    throw new RegistryError('UNAUTHORIZED', authentication.message);
  }
  const anonymous = authentication.identity.kind === 'anonymous';
  if (anonymous && (req.headers.authorization === undefined || !deps.auth.anonymousPull)) {
    challenge(req, res);
    throw new RegistryError('UNAUTHORIZED', deps.auth.anonymousPull ? 'authentication required: get a token from the realm (anonymous tokens allow pulls)' : 'authentication required: anonymous pulls are off');
  }
  res.json({});
}
