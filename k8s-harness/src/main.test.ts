// The program as the e2e suites start it: `nixery-k8s-harness --certs-dir DIR --strict-node-pulls`
// makes a strict node whose node root has containerd's configuration; without the flag the node is
// as lenient as DEFAULT_STRICT_NODE_PULLS says.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exited, spawn, stopChild, waitForOutput } from '@nixery/test-support';
import { DEFAULT_STRICT_NODE_PULLS } from './node/puller.ts';

const BIN = path.join(import.meta.dirname, '..', 'bin', 'nixery-k8s-harness.js');

async function start(args: string[]): Promise<{ stderr: () => string; dataDir: string; certsDir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'harness-cli-test-'));
  const dataDir = path.join(dir, 'data');
  const certsDir = path.join(dir, 'certs.d');
  const child = spawn(process.execPath, [BIN, '--kubeconfig', path.join(dir, 'kubeconfig'), '--data-dir', dataDir, '--certs-dir', certsDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    await waitForOutput(child, /"ready":true/, 60_000);
    child.kill('SIGTERM');
    await exited(child, 20_000);
  } finally {
    await stopChild(child);
  }
  return { stderr: () => stderr, dataDir, certsDir };
}

function started(stderr: string): { strictNodePulls?: boolean } {
  const line = stderr.split('\n').find((l) => l.includes('"node agent started"'));
  assert.ok(line, stderr);
  return JSON.parse(line) as { strictNodePulls?: boolean };
}

describe('nixery-k8s-harness', () => {
  it('--strict-node-pulls with --certs-dir: a strict node, its node root laid out, the certs dir made', async () => {
    const run = await start(['--strict-node-pulls']);
    try {
      assert.equal(started(run.stderr()).strictNodePulls, true);
      assert.match(fs.readFileSync(path.join(run.dataDir, 'node', 'node-root', 'etc', 'containerd', 'config.toml'), 'utf8'), /config_path = "\/etc\/containerd\/certs\.d"/);
      assert.ok(fs.statSync(path.join(run.dataDir, 'node', 'node-root', 'etc', 'containers', 'registries.conf.d')).isDirectory());
      assert.ok(fs.statSync(run.certsDir).isDirectory());
    } finally {
      fs.rmSync(path.dirname(run.dataDir), { recursive: true, force: true });
    }
  });

  it('without the flag the default applies; --no-strict-node-pulls turns it off', async () => {
    for (const [args, expected] of [[[], DEFAULT_STRICT_NODE_PULLS], [['--no-strict-node-pulls'], false]] as const) {
      const run = await start([...args]);
      try {
        assert.equal(started(run.stderr()).strictNodePulls, expected, args.join(' '));
      } finally {
        fs.rmSync(path.dirname(run.dataDir), { recursive: true, force: true });
      }
    }
  });
});
