// TokenReview (authentication.k8s.io/v1), as kube-apiserver's tokenreview REST answers it: the
// token goes through the same authenticators as a request's bearer token (auth.ts), for the
// audiences the review names (none: this server's own), and the answer is the review with its
// status filled in. Nothing is stored: a review exists only in its answer.
import { authenticateToken, type Lookup } from './auth.ts';
import { badRequest } from './errors.ts';
import { obj, type JsonObject } from './json.ts';
import { API_AUDIENCE, type TokenSigner } from './tokens.ts';

const API_VERSION = 'authentication.k8s.io/v1';

export interface TokenReviewContext {
  signer: TokenSigner;
  lookup: Lookup;
  nowSeconds?: number;
}

/** The answer to `POST /apis/authentication.k8s.io/v1/tokenreviews` (201). */
export function reviewToken(body: unknown, ctx: TokenReviewContext): JsonObject {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('Object cannot be handled as a TokenReview: body must be a JSON object');
  const review = structuredClone(body) as JsonObject;
  if (review.apiVersion !== undefined && review.apiVersion !== API_VERSION) {
    throw badRequest(`the API version in the data (${String(review.apiVersion)}) does not match the expected API version (${API_VERSION})`);
  }
  if (review.kind !== undefined && review.kind !== 'TokenReview') {
    throw badRequest(`TokenReview in version "v1" cannot be handled as a TokenReview: the kind in the data (${String(review.kind)}) does not match the expected kind (TokenReview)`);
  }
  const meta = obj(review.metadata);
  if (typeof meta.namespace === 'string' && meta.namespace !== '') throw badRequest(`namespace is not allowed on this type: ${meta.namespace}`);
  const spec = obj(review.spec);
  const token = typeof spec.token === 'string' ? spec.token : '';
  if (token === '') throw badRequest('token is required for TokenReview in authentication.k8s.io/__internal');
  const asked = Array.isArray(spec.audiences) ? spec.audiences.map(String) : [];
  const result = authenticateToken(token, ctx.signer, ctx.lookup, asked.length > 0 ? asked : [API_AUDIENCE], ctx.nowSeconds);
  const status: JsonObject = result.user
    ? {
        authenticated: true,
        user: {
          username: result.user.username,
          ...(result.user.uid ? { uid: result.user.uid } : {}),
          groups: result.user.groups,
          ...(result.user.extra ? { extra: result.user.extra } : {}),
        },
        audiences: result.audiences,
      }
    : { user: {}, error: result.error };
  return {
    kind: 'TokenReview',
    apiVersion: API_VERSION,
    metadata: { ...meta, creationTimestamp: meta.creationTimestamp ?? null },
    spec: { ...spec, token },
    status,
  };
}
