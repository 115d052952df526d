import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { silentLogger } from '../log/logger.ts';
import { NixSpawnError, NixTimeoutError } from './errors.ts';
import { failedDerivation, parsePathInfo } from './realise.ts';
import { LogTail, run } from './run.ts';
import { eventually, noProcessMatching } from '@nixery/test-support';

const base = { phase: 'realise', timeoutSeconds: 1, log: silentLogger } as const;

describe('run', () => {
  it('returns exit status, stdout and the stderr tail', async () => {
    const result = await run('sh', ['-c', 'echo out; echo err1 >&2; printf err2 >&2; exit 3'], { ...base, deadline: null });
    assert.equal(result.exitCode, 3);
    assert.equal(result.stdout, 'out\n');
    assert.equal(result.logTail, 'err1\nerr2');
  });

  it('runs the program, and what it starts, at the nice value asked for', async () => {
    // `nice` prints the nice value it inherited from the shell, which was lowered right after the spawn.
    const result = await run('sh', ['-c', 'sleep 0.3; nice'], { ...base, deadline: null, nice: 6 });
    assert.equal(result.stdout.trim(), String(Math.max(6, os.getPriority(0))));
  });

  it('passes arguments as data, with no shell in between', async () => {
    const tricky = '$(echo injected); `echo x` | cat';
    const result = await run('printf', ['%s', tricky], { ...base, deadline: null });
    assert.equal(result.stdout, tricky);
  });

  it('kills the whole process group at the deadline', async () => {
    // Unusual sleep lengths, so that the check below finds these processes and no others.
    const marker = `${1000 + (process.pid % 1000)}.${Date.now() % 10}`;
    const started = performance.now();
    await assert.rejects(
      run('sh', ['-c', `sleep ${marker} & sleep ${marker}1; wait`], { ...base, deadline: performance.now() + 300 }),
      (error: unknown) => error instanceof NixTimeoutError && error.seconds === 1 && error.phase === 'realise',
    );
    assert.ok(performance.now() - started < 5000);
    await eventually('the group to be gone', () => noProcessMatching(`sleep ${marker}`), 2000, 50);
  });

  it('rejects with a typed error when the program does not exist', async () => {
    await assert.rejects(run('nix-no-such-program', [], { ...base, deadline: null }), NixSpawnError);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const reason = new Error('gone');
    await assert.rejects(run('true', [], { ...base, deadline: null, signal: AbortSignal.abort(reason) }), (e) => e === reason);
  });
});

describe('LogTail', () => {
  it('keeps the last lines, without colours', () => {
    const seen: string[] = [];
    const tail = new LogTail(2, (line) => seen.push(line));
    tail.push('one\ntw');
    tail.push('o\n\x1b[31;1mthree\x1b[0m\nfour');
    tail.end();
    assert.equal(tail.toString(), 'three\nfour');
    assert.deepEqual(seen, ['one', 'two', 'three', 'four']);
  });
});

describe('reading Nix output', () => {
  it('drops self-references and sorts the closure', () => {
    const json = JSON.stringify([
      { path: '/nix/store/b-x', narSize: 2, narHash: 'sha256:0dpnhxl4nrzl63dwzm2frzkbjw9qqapzzw5j5gj844kqlvvccyl2', references: ['/nix/store/b-x', '/nix/store/a-y'] },
      { path: '/nix/store/a-y', narSize: 1, narHash: 'sha256-a', references: [] },
    ]);
    assert.deepEqual(parsePathInfo(json), [
      { path: '/nix/store/a-y', narSize: 1, narHash: 'sha256-a', references: [] },
      { path: '/nix/store/b-x', narSize: 2, narHash: 'sha256:0dpnhxl4nrzl63dwzm2frzkbjw9qqapzzw5j5gj844kqlvvccyl2', references: ['/nix/store/a-y'] },
    ]);
    assert.throws(() => parsePathInfo(JSON.stringify([{ path: '/nix/store/a-y', narSize: 1, references: [] }])), /lacks narSize, narHash or references/);
  });

  it('reads the object form of path-info that Nix 2.19 and later print', () => {
    const a = '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a';
    const b = '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b';
    const json = JSON.stringify({
      [a]: { narSize: 100, references: [a, b], narHash: 'sha256-x', ca: null, deriver: null, registrationTime: 1, signatures: [], ultimate: false },
      [b]: { narSize: 50, references: [], narHash: 'sha256-y', ca: null, deriver: null, registrationTime: 1, signatures: [], ultimate: false },
    });
    assert.deepEqual(parsePathInfo(json), [
      { path: a, narSize: 100, narHash: 'sha256-x', references: [b] },
      { path: b, narSize: 50, narHash: 'sha256-y', references: [] },
    ]);
    assert.throws(() => parsePathInfo(JSON.stringify({ [a]: null })), /invalid entry/, 'an invalid path is null there');
    assert.throws(() => parsePathInfo('"text"'), /expected an array or an object/);
  });

  it('finds the derivation an error line blames', () => {
    assert.equal(
      failedDerivation("error: builder for '/nix/store/abc-broken-1.0.drv' failed with exit code 1"),
      '/nix/store/abc-broken-1.0.drv',
    );
    assert.equal(
      failedDerivation("error: a 'aarch64-linux' with features {} is required to build '/nix/store/abc-b.drv', but I am a 'x86_64-linux'"),
      '/nix/store/abc-b.drv',
    );
    assert.equal(
      failedDerivation("error: building of '/nix/store/abc-slow-1.0.drv!*' from .drv file timed out after 2 seconds"),
      '/nix/store/abc-slow-1.0.drv',
    );
    assert.equal(failedDerivation("error: 1 dependencies of derivation '/nix/store/x.drv' failed to build"), undefined);
  });
});
