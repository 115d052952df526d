import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

describe('nixery-operator start-up', () => {
  // The operator reads NIXERY_LOG_LEVEL with the registry's own reader (loadLogLevel, tested in
  // registry/src/config/config.test.ts): the same variable, the same levels and messages.
  it('stops at a bad NIXERY_LOG_LEVEL with one line naming the variable, as for a bad option', async () => {
    const main = path.join(import.meta.dirname, 'main.ts');
    const run = promisify(execFile)(process.execPath, [main, '--no-leader-elect'], { env: { ...process.env, NIXERY_LOG_LEVEL: 'loud' }, timeout: 30_000 });
    await assert.rejects(run, (error: { code?: number; stderr?: string }) => {
      assert.equal(error.code, 1);
      assert.equal(error.stderr, 'error: invalid configuration: NIXERY_LOG_LEVEL: expected debug, info, warn or error (got "loud")\n');
      return true;
    });
  });

  // Checked before anything starts: a typo must not leave the gate at its default unnoticed.
  it('stops at a bad --allowed-registry-images pattern with one line naming it, as for other bad options', async () => {
    const main = path.join(import.meta.dirname, 'main.ts');
    const run = promisify(execFile)(process.execPath, [main, '--no-leader-elect', '--allowed-registry-images', 'ghcr.io/x/nixery:*,**'], { timeout: 30_000 });
    await assert.rejects(run, (error: { code?: number; stderr?: string }) => {
      assert.equal(error.code, 1);
      assert.equal(error.stderr, `error: option '--allowed-registry-images <patterns>' argument 'ghcr.io/x/nixery:*,**' is invalid. "**" allows every image; name registries or repositories\n`);
      return true;
    });
  });

  it('stops at a --node-config-namespace that is no namespace name', async () => {
    const main = path.join(import.meta.dirname, 'main.ts');
    const run = promisify(execFile)(process.execPath, [main, '--no-leader-elect', '--node-config-namespace', 'Kube_System'], { timeout: 30_000 });
    await assert.rejects(run, (error: { code?: number; stderr?: string }) => {
      assert.equal(error.code, 1);
      assert.equal(error.stderr, "error: option '--node-config-namespace <namespace>' argument 'Kube_System' is invalid. expected a namespace name\n");
      return true;
    });
  });
});
