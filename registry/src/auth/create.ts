// The registry's authentication and authorization, put together from its configuration: who a
// credential is (identity.ts with htpasswd.ts, kubernetes-tokens.ts, tokens.ts) and what an
// identity may do (access-control.ts with policy.ts and on-demand-names.ts).
import { readFile } from 'node:fs/promises';
import { RateLimiter } from '../cache/rate-limiter.ts';
import type { AuthSettings } from '../config/config.ts';
import type { Logger } from '../log/logger.ts';
import { AccessControl } from './access-control.ts';
import { HtpasswdUsers } from './htpasswd.ts';
import { Authenticator, type ServiceAccountVerifier } from './identity.ts';
import { InClusterApi, OidcVerifier, TokenReviewVerifier } from './kubernetes-tokens.ts';
import type { OnDemandNames } from './on-demand-names.ts';
import { parsePolicy, type CompiledPolicy } from './policy.ts';
import { loadTokenKey, RegistryTokens, TokenKeyError } from './tokens.ts';
import { WatchedFile } from './watched-file.ts';

/** The part of the configuration (config.ts) that decides who may do what. */
export type AuthConfig = AuthSettings & {
  /** The administrator's credential (NIXERY_PUSH_TOKEN); unset: there is no administrator. */
  pushToken?: string;
  /** Costly credential checks each client address may cause a minute (NIXERY_CLIENT_AUTH_CHECKS_PER_MINUTE); unset: no limit. */
  clientAuthChecksPerMinute?: number;
};

export interface RegistryAuthParts {
  authenticator: Authenticator;
  access: AccessControl;
  tokens: RegistryTokens;
  /** Whether any identity could push: there is an administrator or a policy. */
  pushConfigured: boolean;
  /** Whether any credential is accepted at all; false: the anonymous registry Nixery is. */
  enabled: boolean;
  close?: () => void;
}

export class RegistryAuth {
  readonly authenticator: Authenticator;
  readonly access: AccessControl;
  readonly tokens: RegistryTokens;
  readonly pushConfigured: boolean;
  readonly enabled: boolean;
  private readonly closeParts: () => void;

  constructor(parts: RegistryAuthParts) {
    this.authenticator = parts.authenticator;
    this.access = parts.access;
    this.tokens = parts.tokens;
    this.pushConfigured = parts.pushConfigured;
    this.enabled = parts.enabled;
    this.closeParts = parts.close ?? (() => {});
  }

  get anonymousPull(): boolean {
    return this.access.anonymousPull;
  }

  /** Only the push token, anonymous pulls on: what a registry configured with nothing else gets. */
  static withPushToken(pushToken: string | undefined, onDemandNames?: OnDemandNames): RegistryAuth {
    const tokens = new RegistryTokens();
    return new RegistryAuth({
      authenticator: new Authenticator({ tokens, ...(pushToken ? { adminToken: pushToken } : {}) }),
      access: new AccessControl({ policy: () => undefined, anonymousPull: true, ...(onDemandNames ? { onDemandNames } : {}) }),
      tokens,
      pushConfigured: pushToken !== undefined,
      enabled: pushToken !== undefined,
    });
  }

  stop(): void {
    this.closeParts();
  }
}

/** Reads the files the configuration names; throws when one cannot be read or is not valid. */
export async function openAuth(
  config: AuthConfig,
  deps: {
    log: Logger;
    onDemandNames?: OnDemandNames;
    pollIntervalMs?: number;
    /** The credential-check limit's clock, monotonic milliseconds (tests move it). */
    checkLimitNow?: () => number;
  },
): Promise<RegistryAuth> {
  const { log } = deps;
  const interval = deps.pollIntervalMs ? { intervalMs: deps.pollIntervalMs } : {};
  const closers: (() => void)[] = [];
  try {
    const tokens = new RegistryTokens({
      ttlSeconds: config.tokenTtlSeconds,
      ...(config.tokenKeyFile ? { key: loadTokenKey(await readTokenKey(config.tokenKeyFile), config.tokenKeyFile) } : {}),
    });
    let users: HtpasswdUsers | undefined;
    if (config.htpasswdFiles.length) {
      users = await HtpasswdUsers.open(config.htpasswdFiles, { log, ...interval });
      closers.push(() => users!.close());
    }
    let policy: WatchedFile<CompiledPolicy> | undefined;
    if (config.policyFile) {
      policy = await WatchedFile.open({ path: config.policyFile, what: 'the access policy', parse: parsePolicy, log, ...interval });
      closers.push(() => policy!.close());
    }
    let serviceAccounts: ServiceAccountVerifier | undefined;
    const k8s = config.kubernetesTokens;
    if (k8s) {
      const api = new InClusterApi({ server: k8s.apiServer, serviceAccountDir: k8s.serviceAccountDir });
      serviceAccounts = k8s.verification === 'oidc' ? new OidcVerifier({ api, audience: k8s.audience }) : new TokenReviewVerifier({ api, audience: k8s.audience });
    }
    const checkLimit =
      config.clientAuthChecksPerMinute === undefined
        ? undefined
        : new RateLimiter({ perMinute: config.clientAuthChecksPerMinute, ...(deps.checkLimitNow ? { now: deps.checkLimitNow } : {}) });
    return new RegistryAuth({
      authenticator: new Authenticator({
        tokens,
        ...(config.pushToken ? { adminToken: config.pushToken } : {}),
        ...(users ? { users } : {}),
        ...(serviceAccounts ? { serviceAccounts } : {}),
        ...(checkLimit ? { checkLimit } : {}),
      }),
      access: new AccessControl({
        policy: () => policy?.current,
        anonymousPull: config.anonymousPull,
        ...(deps.onDemandNames ? { onDemandNames: deps.onDemandNames } : {}),
      }),
      tokens,
      pushConfigured: config.pushToken !== undefined || policy !== undefined,
      enabled: config.pushToken !== undefined || users !== undefined || serviceAccounts !== undefined || policy !== undefined || !config.anonymousPull,
      close: () => closers.forEach((close) => close()),
    });
  } catch (error) {
    closers.forEach((close) => close());
    throw error;
  }
}

async function readTokenKey(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new TokenKeyError(`cannot read the token signing key ${file}: ${(error as Error).message}`);
  }
}
