import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { criWriter, followLog, logTail, parseCriLine, readLogFile, renderLogs } from './logs.ts';

describe('container logs (CRI format)', () => {
  it('writes one stamped line per output line and keeps a trailing partial line', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'nixery-node-logs-'));
    try {
      const file = path.join(dir, '0.log');
      const out = fs.createWriteStream(file, { flags: 'a' });
      const stdout = criWriter(out, 'stdout');
      const stderr = criWriter(out, 'stderr');
      stdout.write('hello\nwor');
      stdout.write('ld\n');
      stderr.write('oops\n');
      await new Promise<void>((r) => stdout.end('no newline', r));
      await new Promise<void>((r) => out.end(r));
      const lines = await readLogFile(file);
      assert.deepEqual(lines.map((l) => [l.stream, l.full, l.text]), [
        ['stdout', true, 'hello'], ['stdout', true, 'world'], ['stderr', true, 'oops'], ['stdout', false, 'no newline'],
      ]);
      assert.equal(renderLogs(lines, {}), 'hello\nworld\noops\nno newline');
      assert.equal(renderLogs(lines, { tailLines: 2 }), 'oops\nno newline');
      assert.match(renderLogs(lines, { tailLines: 1, timestamps: true }), /^\d{4}-\d\d-\d\dT[\d:.]+Z no newline$/);
      assert.equal(await logTail(file), 'hello\nworld\noops\nno newline');
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
  it('parses lines whose text contains spaces', () => {
    assert.deepEqual(parseCriLine('2025-01-01T00:00:00.5Z stderr F a b  c'), { time: '2025-01-01T00:00:00.5Z', stream: 'stderr', full: true, text: 'a b  c' });
  });
  it('follows from where it read: a line half written when following starts comes out once, whole', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'nixery-node-logs-'));
    try {
      const file = path.join(dir, '0.log');
      const stamp = '2025-01-01T00:00:00.5Z';
      await fsp.writeFile(file, `${stamp} stdout F line 1\n${stamp} stdout F li`);
      const chunks: string[] = [];
      let finished = false;
      const following = followLog(file, {}, (text) => chunks.push(text), () => finished, new AbortController().signal);
      await new Promise((r) => setTimeout(r, 50));
      await fsp.appendFile(file, `ne 2\n${stamp} stdout F line 3\n`);
      finished = true;
      await following;
      assert.equal(chunks.join(''), 'line 1\nline 2\nline 3\n');
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});
