// The secrets the operator makes once per instance and keeps: the key that signs the registry's
// tokens (shared by its replicas), and the pull user whose credentials go into pull Secrets.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';

/** The htpasswd user the operator's pull Secrets log in as. */
export const PULL_USER = 'nixery-operator-pull';
/** bcrypt's cost: the registry checks the hash once per token exchange, not per request. */
const BCRYPT_COST = 10;

/** An EC P-256 private key, PEM PKCS#8, as NIXERY_TOKEN_KEY_FILE takes it. */
export function generateTokenKey(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export interface PullUser {
  username: string;
  password: string;
  /** One htpasswd line with the password's bcrypt hash: all the registry gets to see. */
  htpasswd: string;
}

export function generatePullUser(): PullUser {
  const password = randomBytes(24).toString('base64url');
  return { username: PULL_USER, password, htpasswd: `${PULL_USER}:${bcrypt.hashSync(password, BCRYPT_COST)}\n` };
}
