// Authentication and authorization at the HTTP edge, translation only (the rules are in auth/):
// who the request's credential is, whether that identity (and its registry token) has the actions
// a request needs, and the distribution spec's answers — 401 UNAUTHORIZED with a challenge naming
// the scope when a (better) credential could help, 403 DENIED when the identity has no such right,
// 429 TOOMANYREQUESTS when the client has used up its costly credential checks for now.
import type { Request, Response } from 'express';
import type { RegistryAuth } from '../auth/create.ts';
import { ANONYMOUS, CredentialCheckLimitError, identityName, parseAuthorization, type Authentication, type Credential, type Identity } from '../auth/identity.ts';
import { KubernetesUnavailableError } from '../auth/kubernetes-tokens.ts';
import { OnDemandCheckError } from '../auth/on-demand-names.ts';
import { actionsOn, renderScope, type Access, type Action } from '../auth/scope.ts';
import { clientAddress } from './client-address.ts';
import { RegistryError } from './errors.ts';

export interface AuthDeps {
  auth: RegistryAuth;
}

/** What a request needs: actions on a repository, and the scope a client should ask a token for. */
export interface Need {
  name: string;
  actions: Action[];
  /** The challenge's scope for it; default: `actions`. Pushes ask for pull,push, as clients do. */
  scope?: Action[];
}

/** The request's credential, verified once per request; the identity's name goes to the log line. */
export async function authenticate(deps: AuthDeps, req: Request, res: Response): Promise<Authentication> {
  const known = res.locals.authentication as Authentication | undefined;
  if (known) return known;
  const result = await verifyCredential(deps, req, parseAuthorization(req.headers.authorization));
  res.locals.authentication = result;
  res.locals.identity = result.ok ? identityName(result.identity) : 'anonymous';
  if (!result.ok) res.locals.credential = result.reason;
  return result;
}

/**
 * `credential` checked on behalf of the request's client (the per-client check limit counts it);
 * when it could not be checked now, the answer tells the client when to try again.
 */
export async function verifyCredential(deps: AuthDeps, req: Request, credential: Credential): Promise<Authentication> {
  try {
    return await deps.auth.authenticator.authenticate(credential, clientAddress(req.socket.remoteAddress));
  } catch (error) {
    if (error instanceof KubernetesUnavailableError) {
      throw new RegistryError('UNAVAILABLE', `cannot verify the Kubernetes token now: ${error.message}`, undefined, 503, { 'Retry-After': '5' });
    }
    if (error instanceof CredentialCheckLimitError) {
      throw new RegistryError(
        'TOOMANYREQUESTS',
        `${error.message}; retry in ${error.retryAfterSeconds} s`,
        { reason: 'auth_checks_rate_limited', client: error.client, authChecksPerMinute: error.perMinute, retryAfterSeconds: error.retryAfterSeconds },
        undefined,
        { 'Retry-After': String(error.retryAfterSeconds) },
      );
    }
    throw error;
  }
}

/**
 * Lets the request through when its identity may take every needed action; throws the answer
 * otherwise. Returns the identity.
 */
export async function authorize(deps: AuthDeps, req: Request, res: Response, needs: readonly Need[]): Promise<Identity> {
  const { auth } = deps;
  const writes = needs.some((n) => n.actions.some((a) => a !== 'pull'));
  if (writes && !auth.pushConfigured) {
    throw new RegistryError('UNSUPPORTED', 'pushing and deleting are disabled on this registry (neither NIXERY_PUSH_TOKEN nor NIXERY_AUTH_POLICY_FILE is configured)');
  }
  // A registry without authentication looks at no credential: reads are open to everyone.
  if (!auth.enabled) return ANONYMOUS;
  const authentication = await authenticate(deps, req, res);
  if (!authentication.ok) {
    challenge(req, res, needs);
    throw new RegistryError('UNAUTHORIZED', authentication.message);
  }
  const { identity } = authentication;
  let tokenScopeOnly = true;
  let refusal: string | undefined;
  const lacking: string[] = [];
  for (const need of needs) {
    const rights = await unlessUnknown(auth.access.rights(identity, need.name, need.actions));
    const held = authentication.access ? actionsOn(authentication.access, need.name) : rights.allowed;
    const missing = need.actions.filter((a) => !rights.allowed.has(a) || !held.has(a));
    if (missing.length === 0) continue;
    lacking.push(`${missing.join(' and ')} ${need.name}`);
    // The identity has the right and only its token lacks it: a new token would do.
    if (!missing.every((a) => rights.allowed.has(a))) tokenScopeOnly = false;
    refusal ??= rights.refusal;
  }
  if (lacking.length === 0) return identity;
  if (identity.kind === 'anonymous' || tokenScopeOnly) {
    challenge(req, res, needs);
    throw new RegistryError(
      'UNAUTHORIZED',
      identity.kind === 'anonymous' ? `authentication required to ${lacking.join(', ')}` : `the token does not grant ${lacking.join(', ')}: get one for this scope from the realm`,
    );
  }
  throw new RegistryError('DENIED', refusal ?? `${identityName(identity)} may not ${lacking.join(', ')}`);
}

/** An on-demand name the source cannot be asked about now: the client may try again. */
export async function unlessUnknown<T>(decision: Promise<T>): Promise<T> {
  try {
    return await decision;
  } catch (error) {
    if (error instanceof OnDemandCheckError) throw new RegistryError('UNAVAILABLE', error.message, undefined, 503, { 'Retry-After': '10' });
    throw error;
  }
}

/**
 * Bearer first, as registries do: clients given a token (skopeo --dest-registry-token) send it,
 * clients given credentials fetch one from the realm for the scope named. Basic stays available
 * for simple clients.
 */
export function challenge(req: Request, res: Response, needs: readonly Need[] = []): void {
  // The Host the client used; anything that is no host name or address is not echoed.
  const host = /^[A-Za-z0-9.:[\]-]+$/.test(req.headers.host ?? '') ? req.headers.host! : 'localhost';
  const realm = `${req.protocol}://${host}/v2/token`;
  const scope = renderScope(needs.map((n): Access => ({ type: 'repository', name: n.name, actions: n.scope ?? n.actions })));
  res.setHeader('WWW-Authenticate', [`Bearer realm="${realm}",service="nixery"${scope ? `,scope="${scope}"` : ''}`, 'Basic realm="nixery"']);
}
