import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { ConfigError, loadConfig } from '@nixery/registry/operator-api';
import { logLevelFrom } from './log-level.ts';

describe('NIXERY_LOG_LEVEL of the operator', () => {
  it('is info when unset or empty', () => {
    assert.equal(logLevelFrom({}), 'info');
    assert.equal(logLevelFrom({ NIXERY_LOG_LEVEL: ' ' }), 'info');
  });

  it('takes debug, info, warn or error', () => {
    for (const level of ['debug', 'info', 'warn', 'error']) assert.equal(logLevelFrom({ NIXERY_LOG_LEVEL: level }), level);
  });

  it('rejects anything else with an error naming the variable and the value', () => {
    assert.throws(() => logLevelFrom({ NIXERY_LOG_LEVEL: 'verbose' }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.variable, 'NIXERY_LOG_LEVEL');
      assert.equal(error.message, 'NIXERY_LOG_LEVEL: expected debug, info, warn or error (got "verbose")');
      return true;
    });
  });

  it('accepts exactly what the registry accepts', () => {
    const outcome = (read: () => unknown) => {
      try {
        return read();
      } catch (error) {
        return (error as Error).message;
      }
    };
    for (const value of ['', 'debug', 'info', 'warn', 'error', 'INFO', ' info', 'trace', 'constructor']) {
      const env = { NIXERY_LOG_LEVEL: value };
      assert.equal(outcome(() => logLevelFrom(env)), outcome(() => loadConfig(env).logLevel), `NIXERY_LOG_LEVEL=${JSON.stringify(value)}`);
    }
  });

  it('stops nixery-operator at start-up with a message naming the variable', async () => {
    const main = path.join(import.meta.dirname, 'main.ts');
    const run = promisify(execFile)(process.execPath, [main, '--no-leader-elect'], { env: { ...process.env, NIXERY_LOG_LEVEL: 'loud' }, timeout: 30_000 });
    await assert.rejects(run, (error: { code?: number; stderr?: string }) => {
      assert.equal(error.code, 1);
      assert.equal(error.stderr, 'error: invalid configuration: NIXERY_LOG_LEVEL: expected debug, info, warn or error (got "loud")\n');
      return true;
    });
  });
});
