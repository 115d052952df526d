// GET /v2/token: the token endpoint of the bearer flow.
import type { Request, Response } from 'express';
import { checkPushAuthorization } from '../push/auth.ts';
import type { AuthDeps } from './auth.ts';
import { RegistryError } from './errors.ts';

/** What anonymous clients get from the token endpoint: it grants reads, which need no token anyway. */
export const ANONYMOUS_TOKEN = 'anonymous';

/**
 * Basic credentials (any user, the push token as password) buy the push token; no credentials
 * buy an anonymous token, since pulls are open to everyone.
 */
export function issueToken(deps: AuthDeps, req: Request, res: Response): void {
  if (!deps.pushToken) throw new RegistryError('UNSUPPORTED', 'this registry has no authentication: pulls need no token');
  let token = ANONYMOUS_TOKEN;
  if (req.headers.authorization !== undefined) {
    if (!checkPushAuthorization(req.headers.authorization, deps.pushToken).ok) {
      res.setHeader('WWW-Authenticate', 'Basic realm="nixery"');
      throw new RegistryError('UNAUTHORIZED', 'the token endpoint needs the push token as the password');
    }
    token = deps.pushToken;
  }
  res.setHeader('Cache-Control', 'no-store');
  res.json({ token, access_token: token, expires_in: 3600, issued_at: new Date().toISOString() });
}
