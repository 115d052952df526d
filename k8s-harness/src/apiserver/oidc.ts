// Service account issuer discovery, as kube-apiserver serves it (pkg/serviceaccount/openidmetadata.go):
// an OpenID Connect discovery document naming the issuer of its service-account tokens and
// where its signing keys are, and those keys as a JSON Web Key Set, so that anyone can verify a
// projected token without asking the API server (a TokenReview) each time.
import type { TokenSigner } from './tokens.ts';

export const OPENID_CONFIGURATION_PATH = '/.well-known/openid-configuration';
export const JWKS_PATH = '/openid/v1/jwks';
/** Both documents may be cached this long, as upstream says (its public keys getter caches as long). */
export const DISCOVERY_CACHE_CONTROL = 'public, max-age=3600';

/** The discovery document; `serverAddress` is `host:port`, the address this server is reached at (upstream: --service-account-jwks-uri's default, the external address). */
export function openidConfiguration(issuer: string, serverAddress: string): Record<string, unknown> {
  return {
    issuer,
    jwks_uri: `https://${serverAddress}${JWKS_PATH}`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['ES256'],
  };
}

export function jwks(signer: TokenSigner): { keys: Array<Record<string, string>> } {
  return { keys: [signer.jwk()] };
}
