// No test can hang the suite: whatever a test file starts is gone once the file ends, however it
// ends, and the file's process ends with it. Each case runs a small test file (or program) of
// its own in a child process that starts programs through the tracker and then goes wrong.
import { after, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { eventually } from './eventually.ts';
import { isRunning, type ProcessIdentity } from './proc.ts';
import { spawn, stopChild } from './process.ts';
import { within } from './within.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-children-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const support = (file: string) => JSON.stringify(pathToFileURL(path.join(import.meta.dirname, file)).href);

/** What every fixture imports: the tracker, through the test support. */
const IMPORTS = `
import fs from 'node:fs';
import { identify } from ${support('proc.ts')};
import { spawn, waitForOutput } from ${support('process.ts')};
`;

/**
 * Starts one of each kind of program the tracker must stop: one that ignores SIGTERM (as a stuck
 * server might), and a detached shell with a child of its own (as the registry has Nix). Writes
 * their identities to $PIDS_FILE.
 */
const START_PROGRAMS = `
const stubborn = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)"], { stdio: ['ignore', 'pipe', 'pipe'] });
const shell = spawn('sh', ['-c', 'sleep 600 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
const [sleep] = await Promise.all([waitForOutput(shell, /^\\d+$/, 10_000).then(Number), waitForOutput(stubborn, /ready/, 10_000)]);
fs.writeFileSync(process.env.PIDS_FILE, JSON.stringify([stubborn.pid, shell.pid, sleep].map(identify)));
`;

/** Longer than the tracker needs: SIGTERM, its grace period, SIGKILL. */
const ENDS_WITHIN_MS = 30_000;

interface Outcome {
  code: number | null;
  output: string;
  started: ProcessIdentity[];
}

/**
 * Runs `source` as `name` with node (and `nodeArgs`), until it exits; `whenStarted` runs once the
 * programs it starts are running.
 */
async function runFixture(name: string, source: string, nodeArgs: string[], whenStarted?: (child: ChildProcess) => void): Promise<Outcome> {
  const file = path.join(dir, name);
  const pidsFile = `${file}.pids`;
  fs.writeFileSync(file, source);
  // Without NODE_TEST_CONTEXT a nested `node --test` reports as a run of its own.
  const env = Object.fromEntries(Object.entries({ ...process.env, PIDS_FILE: pidsFile }).filter(([k]) => k !== 'NODE_TEST_CONTEXT'));
  const child = spawn(process.execPath, [...nodeArgs, file], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let started: ProcessIdentity[] = [];
  try {
    started = await eventually('the programs to start', async () => (fs.existsSync(pidsFile) ? (JSON.parse(fs.readFileSync(pidsFile, 'utf8')) as ProcessIdentity[]) : undefined), ENDS_WITHIN_MS, 50);
    whenStarted?.(child);
    const code = await within(ENDS_WITHIN_MS, `${name} to end`, exit);
    return { code, output, started };
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${output.slice(-4000)}`, { cause: error });
  } finally {
    await stopChild(child, 'SIGKILL');
    // Not its own: they are the subject, and must not outlive a failure of this test either.
    for (const p of started.filter(isRunning)) process.kill(p.pid, 'SIGKILL');
  }
}

function stillRunning(outcome: Outcome): ProcessIdentity[] {
  assert.equal(outcome.started.length, 3, outcome.output);
  return outcome.started.filter(isRunning);
}

describe('processes a test file starts', () => {
  it('are stopped, and the file ends as failed, when a test fails its bounded wait', async () => {
    const outcome = await runFixture('fails-its-wait.test.mts', `${IMPORTS}
      import { it } from 'node:test';
      it('starts programs, then waits in vain', async () => {
        ${START_PROGRAMS}
        await waitForOutput(shell, /never printed/, 500);
      });
    `, ['--test']);
    assert.notEqual(outcome.code, 0, outcome.output);
    assert.match(outcome.output, /timed out after 500 ms waiting for \/never printed\//);
    assert.deepEqual(stillRunning(outcome), [], 'nothing it started still runs');
  });

  it('are stopped when the test runner is stopped (Ctrl-C, a CI time limit)', async () => {
    const outcome = await runFixture('is-stopped.test.mts', `${IMPORTS}
      import { it } from 'node:test';
      it('starts programs, then waits long', async () => {
        ${START_PROGRAMS}
        await new Promise((resolve) => setTimeout(resolve, 600_000));
      });
    `, ['--test'], (runner) => runner.kill('SIGTERM'));
    assert.notEqual(outcome.code, 0, outcome.output);
    assert.deepEqual(stillRunning(outcome), [], 'nothing it started still runs');
  });

  it('are killed when a program that is no test file (the cluster harness) crashes', async () => {
    const outcome = await runFixture('crashes.mts', `${IMPORTS}${START_PROGRAMS}\nthrow new Error('crashed');\n`, []);
    assert.equal(outcome.code, 1, outcome.output);
    assert.deepEqual(stillRunning(outcome), [], 'nothing it started still runs');
  });
});
