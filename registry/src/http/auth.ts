// The push token at the HTTP edge: every write needs it, and a refused request is challenged so
// that clients learn where to get a token.
import type { Request, Response } from 'express';
import { checkPushAuthorization } from '../push/auth.ts';
import { RegistryError } from './errors.ts';

export interface AuthDeps {
  pushToken: string | undefined;
}

export function authorizePush(deps: AuthDeps, req: Request, res: Response): void {
  const result = checkPushAuthorization(req.headers.authorization, deps.pushToken);
  if (result.ok) return;
  if (result.reason === 'disabled') {
    throw new RegistryError('UNSUPPORTED', 'pushing is disabled on this registry (no NIXERY_PUSH_TOKEN is configured)');
  }
  challenge(req, res);
  throw new RegistryError('UNAUTHORIZED', result.reason === 'missing' ? 'pushing needs the push token' : 'the push token is not valid');
}

/**
 * Bearer first, as registries do: clients given a token (skopeo --dest-registry-token) send it,
 * clients given credentials fetch one from the realm. Basic stays available for simple clients.
 */
export function challenge(req: Request, res: Response): void {
  const realm = `${req.protocol}://${req.headers.host ?? 'localhost'}/v2/token`;
  res.setHeader('WWW-Authenticate', [`Bearer realm="${realm}",service="nixery"`, 'Basic realm="nixery"']);
}
