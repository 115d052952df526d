// The README's first steps, as a newcomer follows them: the start command runs the registry on
// its embedded defaults, and the skopeo and umoci lines from the README, run as written (on
// another port, so that they do not collide with anything else on the machine), print
// `Hello, world!` from the pulled image.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { freePort, REPO_ROOT, runOk, spawn, stopChild, waitForOutput } from '@nixery/test-support';
import { tempDir } from '../support/registry.ts';

const README = await fs.readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');

/** The README's fenced `sh` blocks, in order. */
function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

describe('the README\'s quick start', () => {
  const [commands, pull] = shellBlocks(README);
  let work: string;

  before(async () => {
    work = await tempDir('nixery-e2e-readme-');
  });
  after(async () => {
    await fs.rm(work, { recursive: true, force: true });
  });

  it('starts with the start command and the test command, which CI runs', async () => {
    assert.match(commands ?? '', /^bash scripts\/start\.sh\b/m);
    assert.match(commands ?? '', /^bash scripts\/test\.sh\b/m);
    assert.match(await fs.readFile(path.join(REPO_ROOT, '.ci/run'), 'utf8'), /\bbash scripts\/test\.sh\b/);
  });

  it('start.sh serves the registry, and the README\'s skopeo and umoci lines print Hello, world!', async () => {
    assert.match(pull ?? '', /skopeo copy .*docker:\/\/localhost:8080\//);
    assert.match(pull ?? '', /umoci unpack/);
    const port = await freePort();
    const server = spawn('bash', [path.join(REPO_ROOT, 'scripts/start.sh')], {
      cwd: REPO_ROOT,
      env: { ...process.env, PORT: String(port), STORAGE_PATH: path.join(work, 'storage') },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    try {
      // start.sh first runs the setup, which has nothing left to do on a machine the tests run on.
      await waitForOutput(server, /nixery is listening/, 180_000);
      const lines = pull!.replaceAll('localhost:8080', `localhost:${port}`);
      const { stdout } = await runOk('bash', ['-euo', 'pipefail', '-c', lines], { cwd: work, timeoutMs: 300_000 });
      assert.match(stdout, /^Hello, world!$/m);
    } finally {
      await stopChild(server);
    }
  });
});
