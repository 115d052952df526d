// `nixery build --push --push-identity-token-file`: a build Job's projected ServiceAccount token
// buys a registry token at the realm (Basic `serviceaccount:<jwt>`, scope pull,push on its
// repository), read anew for every exchange; a 403 DENIED while the policy grant has not reached
// the registry yet is retried for a while. Against the real app, with a fake Kubernetes API.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { eventually } from '@nixery/test-support';
import { startFakeKubernetesApi, type FakeKubernetesApi } from '../auth/test-support.ts';
import { startAuthServer, TEST_AUDIENCE, type AuthServer } from '../http/test-support.ts';
import { createLogger } from '../log/logger.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { PushError, pushImage, type PushTarget } from './client.ts';
import { storedTestImage } from './test-support.ts';

const tempDir = tempDirs('nixery-push-identity-');
const GRANT = { rules: [{ repositories: ['team-a/tool'], serviceAccounts: ['team-a/nixery-build-tool'], actions: ['pull', 'push', 'delete'] }] };
const NOTHING = { rules: [] };

function recordingLog() {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: createLogger({ write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }) };
}

describe('pushing with a ServiceAccount identity token', () => {
  let api: FakeKubernetesApi;
  let registry: AuthServer;
  let identityFile: string;

  before(async () => {
    const dir = await tempDir();
    api = await startFakeKubernetesApi(path.join(dir, 'api'));
    registry = await startAuthServer({ dir: path.join(dir, 'registry'), users: [], policy: NOTHING, kubernetes: api, anonymousPull: false, policyIntervalMs: 100 });
    identityFile = path.join(dir, 'token');
  });
  after(async () => {
    await registry?.close();
    await api?.close();
  });

  const target = (name = 'team-a/tool'): PushTarget => ({ registry: registry.host, name, tag: 'v1', scheme: 'http', identityTokenFile: identityFile });
  const projectedToken = async () => {
    const jwt = await api.serviceAccountToken('team-a', 'nixery-build-tool', { audiences: [TEST_AUDIENCE] });
    // As the kubelet writes a projected token: a new file renamed over the old one.
    await fs.writeFile(`${identityFile}.new`, jwt);
    await fs.rename(`${identityFile}.new`, identityFile);
    return jwt;
  };

  it('waits out a 403 DENIED until the grant is in force, reading the rotated token for each exchange', async () => {
    await fs.writeFile(registry.policyFile, JSON.stringify(NOTHING));
    const first = await projectedToken();
    const { storage, result } = await storedTestImage(await tempDir());
    const { lines, log } = recordingLog();
    const pushing = pushImage(storage, result, target(), log, { deniedRetry: { forMs: 30_000, firstDelayMs: 100 } });
    await eventually('the registry to deny the push', () => lines.find((l) => l.msg === 'the registry denies the push; its grant for this repository may not be in force yet, retrying with a new token'), 10_000, 50);
    const second = await projectedToken();
    await fs.writeFile(registry.policyFile, JSON.stringify(GRANT));
    const outcome = await pushing;
    assert.equal(outcome.digest, result.digest);
    assert.ok(api.reviewed.includes(first) && api.reviewed.includes(second), 'the token file was read again after it changed');
    const denied = lines.find((l) => l.level === 'warn');
    assert.match(String(denied?.registry), /failed with HTTP 403/, 'the first step, a blob HEAD, was denied pulling');
    const pushes = registry.logs.filter((l) => l.msg === 'request' && l.method === 'PUT' && l.status === '201');
    assert.ok(pushes.length >= 2 && pushes.every((l) => l.identity === 'system:serviceaccount:team-a:nixery-build-tool'), 'the push used the ServiceAccount, no static token');
    assert.ok(!JSON.stringify(registry.logs).includes(second), 'no token in the registry log');
  });

  it('asks the realm for pull and push on its repository only, and cannot push another', async () => {
    await fs.writeFile(registry.policyFile, JSON.stringify(GRANT));
    await projectedToken();
    const { storage, result } = await storedTestImage(await tempDir());
    const before = registry.logs.length;
    const { log } = recordingLog();
    await assert.rejects(pushImage(storage, result, target('team-b/tool'), log, { deniedRetry: { forMs: 500, firstDelayMs: 100 } }), (error: unknown) => {
      assert.ok(error instanceof PushError);
      assert.equal(error.status, 403);
      return true;
    });
    const tokenRequests = registry.logs.slice(before).filter((l) => l.msg === 'request' && String(l.path).startsWith('/v2/token'));
    assert.ok(tokenRequests.length >= 2, 'a new token for each retry');
    for (const request of tokenRequests) assert.match(String(request.path), /scope=repository%3Ateam-b%2Ftool%3Apull%2Cpush$/);
  });

  it('fails at once when the token file cannot be read', async () => {
    const { storage, result } = await storedTestImage(await tempDir());
    const missing: PushTarget = { ...target(), identityTokenFile: path.join(path.dirname(identityFile), 'absent') };
    await assert.rejects(pushImage(storage, result, missing, createLogger({ write: () => {} })), /cannot read the identity token .*absent/);
  });
});
