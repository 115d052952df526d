import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runOk } from '@nixery/test-support';

const CREATE = new URL('./create.ts', import.meta.url).href;

/** The packages a child process loads while it opens `config` with openStorage. */
async function packagesLoadedOpening(config: unknown): Promise<string[]> {
  const script = `
    import { registerHooks } from 'node:module';
    const loaded = new Set();
    registerHooks({
      resolve(specifier, context, next) {
        if (!specifier.startsWith('.') && !specifier.startsWith('node:') && !specifier.startsWith('file:')) loaded.add(specifier);
        return next(specifier, context);
      },
    });
    const { openStorage } = await import(${JSON.stringify(CREATE)});
    await openStorage(${JSON.stringify(config)});
    process.stdout.write(JSON.stringify([...loaded]));
  `;
  const ran = await runOk(process.execPath, ['--input-type=module', '-e', script], { timeoutMs: 60_000 });
  return JSON.parse(ran.stdout) as string[];
}

describe('opening the configured storage', () => {
  it('loads no cloud SDK for filesystem storage (they cost a build process most of its start-up)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-create-'));
    try {
      const loaded = await packagesLoadedOpening({ backend: 'filesystem', path: dir });
      assert.deepEqual(
        loaded.filter((p) => p.startsWith('@aws-sdk/') || p.startsWith('@google-cloud/')),
        [],
      );
      assert.ok(fs.existsSync(dir), 'the filesystem backend was opened');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
