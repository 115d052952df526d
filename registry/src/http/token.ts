// /v2/token, the realm of the distribution token flow: credentials (Basic, a Bearer Kubernetes
// token, or none) buy a short-lived registry token for the scopes asked, limited to what the
// identity may do. GET as Docker and containers/image ask; POST with the OAuth2 password grant
// form, as containerd asks first.
import type { Request, Response } from 'express';
import { identityName, parseAuthorization, type Credential } from '../auth/identity.ts';
import { parseScopes, ScopeError } from '../auth/scope.ts';
import { unlessUnknown, verifyCredential, type AuthDeps } from './auth.ts';
import { RegistryError } from './errors.ts';

export async function issueToken(deps: AuthDeps, req: Request, res: Response): Promise<void> {
  const { credential, scopes } = req.method === 'POST' ? fromForm(req) : fromQuery(req);
  const { auth } = deps;
  // A registry token is what this endpoint sells; buying a wider one with a narrow one would
  // undo its scope.
  if (credential.scheme === 'bearer' && auth.tokens.isRegistryToken(credential.token)) {
    refuse(res, 'a registry token cannot be exchanged for another: present the credentials it was issued for');
  }
  const authentication = await verifyCredential(deps, req, credential);
  if (!authentication.ok) {
    res.locals.credential = authentication.reason;
    refuse(res, authentication.message);
  }
  const { identity } = authentication;
  res.locals.identity = identityName(identity);
  if (identity.kind === 'anonymous' && !auth.anonymousPull) refuse(res, 'this registry needs credentials: anonymous pulls are off');
  let requested;
  try {
    requested = parseScopes(scopes);
  } catch (error) {
    if (error instanceof ScopeError) throw new RegistryError('DENIED', error.message, undefined, 400);
    throw error;
  }
  const granted = await unlessUnknown(auth.access.grant(identity, requested));
  const issued = await auth.tokens.issue(identityName(identity), granted);
  res.setHeader('Cache-Control', 'no-store');
  res.json({ token: issued.token, access_token: issued.token, expires_in: issued.expiresIn, issued_at: issued.issuedAt });
}

function fromQuery(req: Request): { credential: Credential; scopes: string[] } {
  const scope = req.query.scope;
  const scopes = (Array.isArray(scope) ? scope : [scope]).filter((s): s is string => typeof s === 'string');
  return { credential: parseAuthorization(req.headers.authorization), scopes };
}

/** RFC 6749's password grant: `grant_type=password&username=…&password=…&scope=…` (scopes space-separated). */
function fromForm(req: Request): { credential: Credential; scopes: string[] } {
  const form = (req.body ?? {}) as Record<string, unknown>;
  const field = (name: string) => (typeof form[name] === 'string' ? (form[name] as string) : undefined);
  const grant = field('grant_type');
  if (grant !== 'password') {
    // containerd takes anything but success here as a sign to try GET.
    throw new RegistryError('UNSUPPORTED', `grant_type ${JSON.stringify(grant ?? '')} is not supported: use password, or GET`, undefined, 400);
  }
  const username = field('username');
  const password = field('password');
  const credential: Credential =
    username !== undefined && password !== undefined ? { scheme: 'basic', username, password } : parseAuthorization(req.headers.authorization);
  return { credential, scopes: [field('scope') ?? ''] };
}

function refuse(res: Response, message: string): never {
  res.setHeader('WWW-Authenticate', 'Basic realm="nixery"');
  throw new RegistryError('UNAUTHORIZED', message);
}
