import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';

const WATCHDOG = path.join(import.meta.dirname, 'exit-watchdog.ts');

/** Runs `files` (name → source) under the watchdog as the test scripts do, with a 1 s limit. */
function runUnderWatchdog(files: Record<string, string>): { status: number | null; output: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exit-watchdog-'));
  try {
    for (const [name, source] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), source);
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const ran = spawnSync(process.execPath, ['--import', WATCHDOG, '--test', '--test-reporter=spec', ...Object.keys(files)], {
      cwd: dir,
      env: { ...env, NIXERY_TEST_LINGER_LIMIT_MS: '1000' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { status: ran.status, output: ran.stdout + ran.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('the exit watchdog of test files', () => {
  it('fails a file whose passing tests left a handle open, naming it, and the run still ends', () => {
    const { status, output } = runUnderWatchdog({
      'leaks.test.mjs': "import test from 'node:test';\ntest('passes but leaves a timer', () => { setInterval(() => {}, 1000); });\n",
      'clean.test.mjs': "import test from 'node:test';\ntest('clean', () => {});\n",
    });
    assert.equal(status, 1, output);
    assert.match(output, /leaks\.test\.mjs is still running 1 s after its tests ended; open: .*Timeout/);
    assert.match(output, /ℹ pass 2/);
    assert.match(output, /ℹ fail 1/);
  });

  it('leaves files that exit by themselves alone', () => {
    const { status, output } = runUnderWatchdog({
      'slow-clean-up.test.mjs': "import test, { after } from 'node:test';\nafter(() => new Promise((r) => setTimeout(r, 200)));\ntest('clean', () => {});\n",
    });
    assert.equal(status, 0, output);
    assert.doesNotMatch(output, /still running/);
  });
});
