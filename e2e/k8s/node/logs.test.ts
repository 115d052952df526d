import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { criWriter, logTail, parseCriLine, readLogFile, renderLogs } from './logs.ts';

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
});
