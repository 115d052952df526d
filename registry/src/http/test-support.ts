// The whole HTTP app with authentication, in-process on 127.0.0.1: filesystem storage, a builder
// that only answers which names resolve (no Nix), htpasswd users, a policy, a token key of its own,
// and optionally Kubernetes ServiceAccount tokens against a fake API server (auth/test-support.ts).
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { openAuth, type AuthConfig, type RegistryAuth } from '../auth/create.ts';
import type { FakeKubernetesApi } from '../auth/test-support.ts';
import type { ImageBuilder } from '../builder/builder.ts';
import { ALWAYS_INCLUDED, type ImageSpec } from '../image/name.ts';
import { createLogger } from '../log/logger.ts';
import { createMetrics } from '../metrics/metrics.ts';
import { Uploads } from '../push/uploads.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { createApp, onDemandNames } from './app.ts';

export const TEST_ADMIN_TOKEN = 'the-administrator-token-0123456789';
export const TEST_AUDIENCE = 'nixery.dev/team-a/registry';
/** The packages the fake source has: `hello` and `shell/hello` are on-demand names, `team-a/tool` is not. */
const PACKAGES = new Set(['hello', 'git', 'bashInteractive', 'coreutils', 'moreutils', 'nano', ...ALWAYS_INCLUDED]);

export interface AuthServerOptions {
  dir: string;
  /** Each user's password is `<user>-password`. */
  users: string[];
  policy?: unknown;
  anonymousPull?: boolean;
  kubernetes?: FakeKubernetesApi;
  /** How often the policy file is read again (default: the registry's). */
  policyIntervalMs?: number;
  /** Costly credential checks per client a minute (default: no limit), and the limit's clock. */
  clientAuthChecksPerMinute?: number;
  checkLimitNow?: () => number;
  /** The clock of the upload sessions' idle rule (default: the real one). */
  uploadsNow?: () => number;
}

export interface AuthServer {
  url: string;
  host: string;
  auth: RegistryAuth;
  /** Every log line, parsed. */
  logs: Record<string, unknown>[];
  tokenKey: KeyObject;
  policyFile: string;
  uploads: Uploads;
  close(): Promise<void>;
}

export async function startAuthServer(options: AuthServerOptions): Promise<AuthServer> {
  const { dir } = options;
  await fs.mkdir(dir, { recursive: true });
  const htpasswd = path.join(dir, 'htpasswd');
  await fs.writeFile(htpasswd, options.users.map((u) => `${u}:${bcrypt.hashSync(`${u}-password`, 4)}`).join('\n'));
  const policyFile = path.join(dir, 'policy.json');
  if (options.policy !== undefined) await fs.writeFile(policyFile, JSON.stringify(options.policy));
  const tokenKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const tokenKeyFile = path.join(dir, 'key.pem');
  await fs.writeFile(tokenKeyFile, tokenKey.export({ type: 'pkcs8', format: 'pem' }));
  const storage = new FilesystemStorage(path.join(dir, 'storage'));
  await storage.init();
  const uploads = new Uploads(storage.uploads, options.uploadsNow ? { now: options.uploadsNow } : {});
  const builder = { resolves: async (image: ImageSpec) => image.packages.every((p) => PACKAGES.has(p)) } as unknown as ImageBuilder;
  const logs: Record<string, unknown>[] = [];
  const log = createLogger({ write: (line) => logs.push(JSON.parse(line) as Record<string, unknown>) });
  const config: AuthConfig = {
    pushToken: TEST_ADMIN_TOKEN,
    anonymousPull: options.anonymousPull ?? true,
    htpasswdFiles: [htpasswd],
    ...(options.policy !== undefined ? { policyFile } : {}),
    tokenKeyFile,
    tokenTtlSeconds: 300,
    ...(options.clientAuthChecksPerMinute !== undefined ? { clientAuthChecksPerMinute: options.clientAuthChecksPerMinute } : {}),
    ...(options.kubernetes
      ? { kubernetesTokens: { audience: TEST_AUDIENCE, verification: 'tokenreview' as const, apiServer: options.kubernetes.url, serviceAccountDir: options.kubernetes.serviceAccountDir } }
      : {}),
  };
  const auth = await openAuth(config, {
    log,
    onDemandNames: onDemandNames({ builder, onDemand: true }),
    ...(options.policyIntervalMs ? { pollIntervalMs: options.policyIntervalMs } : {}),
    ...(options.checkLimitNow ? { checkLimitNow: options.checkLimitNow } : {}),
  });
  const app = createApp({
    storage,
    builder,
    metrics: createMetrics({ defaultMetrics: false }),
    log,
    source: { type: 'path', path: '/nonexistent' },
    sourceIsDefault: false,
    uploads,
    auth,
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `http://${host}`,
    host,
    auth,
    logs,
    tokenKey,
    policyFile,
    uploads,
    close: () =>
      new Promise((resolve) => {
        auth.stop();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
