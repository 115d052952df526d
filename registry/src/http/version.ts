// GET /v2/: the version check.
import type { Request, Response } from 'express';
import { challenge, type AuthDeps } from './auth.ts';
import { RegistryError } from './errors.ts';

/**
 * With pushing enabled it behaves like a token-auth registry: a request without a bearer token
 * is challenged, so clients learn where to get tokens (containers/image and Docker only send
 * credentials after such a challenge). Any bearer token passes: reads are open.
 */
export function versionCheck(deps: AuthDeps, req: Request, res: Response): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new RegistryError('UNSUPPORTED', `${req.method} is not supported here`);
  if (deps.pushToken && !/^bearer\s+\S/i.test(req.headers.authorization ?? '')) {
    challenge(req, res);
    throw new RegistryError('UNAUTHORIZED', 'authentication required: get a token from the realm (anonymous tokens allow pulls)');
  }
  res.json({});
}
