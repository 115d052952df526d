import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { createLogger } from '../log/logger.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { HtpasswdError, HtpasswdUsers, parseHtpasswd } from './htpasswd.ts';
import { WatchedFileError } from './watched-file.ts';

const tempDir = tempDirs('nixery-htpasswd-');
/** The lowest cost bcrypt allows: the tests check behaviour, not strength. */
const hash = (password: string, prefix = '$2y$') => bcrypt.hashSync(password, 4).replace(/^\$2[ab]\$/, prefix);

function recordingLog() {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: createLogger({ write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }) };
}

describe('htpasswd files', () => {
  it('parse bcrypt entries of every prefix, skipping blank lines and comments', () => {
    const users = parseHtpasswd(`# team\nalice:${hash('a', '$2y$')}\n\nbob:${hash('b', '$2a$')}\r\ncarol:${hash('c', '$2b$')}\n`);
    assert.deepEqual([...users.keys()], ['alice', 'bob', 'carol']);
  });

  it('refuse every entry that is not bcrypt, naming the line, the user and the scheme', () => {
    const refused = (line: string, pattern: RegExp) => assert.throws(() => parseHtpasswd(`alice:${hash('a')}\n${line}\n`), (e: unknown) => e instanceof HtpasswdError && pattern.test(e.message));
    refused('bob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/', /line 2 \(user "bob"\): only bcrypt entries .* MD5 \(apr1\)/);
    refused('bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', /SHA-1/);
    refused('bob:rqXexS6ZhobKA', /crypt or plain text/);
    refused('bob:$2y$10$tooshort', /malformed bcrypt/);
    refused('bob:$5$rounds=5000$salt$hash', /unsupported scheme \(5\)/);
    refused('no-colon-here', /line 2: expected user:hash/);
    refused(`alice:${hash('again')}`, /appears twice/);
  });

  it('verify passwords; an unknown user is told apart from a wrong password', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'htpasswd');
    await fs.writeFile(file, `alice:${hash('wonderland')}\n`);
    const users = await HtpasswdUsers.open([file], { log: createLogger({ write: () => {} }) });
    try {
      assert.equal(await users.verify('alice', 'wonderland'), 'valid');
      assert.equal(await users.verify('alice', 'wonderland'), 'valid', 'remembered, still valid');
      assert.equal(await users.verify('alice', 'Wonderland'), 'invalid');
      assert.equal(await users.verify('mallory', 'wonderland'), 'unknown');
    } finally {
      users.close();
    }
  });

  it('several files: the first one naming a user decides', async () => {
    const dir = await tempDir();
    const [first, second] = [path.join(dir, 'a'), path.join(dir, 'b')];
    await fs.writeFile(first, `alice:${hash('one')}\n`);
    await fs.writeFile(second, `alice:${hash('two')}\npuller:${hash('pull-secret')}\n`);
    const users = await HtpasswdUsers.open([first, second], { log: createLogger({ write: () => {} }) });
    try {
      assert.equal(await users.verify('alice', 'one'), 'valid');
      assert.equal(await users.verify('alice', 'two'), 'invalid');
      assert.equal(await users.verify('puller', 'pull-secret'), 'valid');
    } finally {
      users.close();
    }
  });

  it('refuse to start with a file holding a non-bcrypt entry, or a missing file', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'htpasswd');
    await fs.writeFile(file, 'alice:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n');
    const log = createLogger({ write: () => {} });
    await assert.rejects(HtpasswdUsers.open([file], { log }), (e: unknown) => e instanceof WatchedFileError && /htpasswd file .* is not valid: line 1 .*MD5/.test(e.message));
    await assert.rejects(HtpasswdUsers.open([path.join(dir, 'absent')], { log }), (e: unknown) => e instanceof WatchedFileError && /cannot read/.test(e.message));
  });

  it('are read again when they change; a bad new version is logged and the old one kept', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'htpasswd');
    await fs.writeFile(file, `alice:${hash('first')}\n`);
    const { lines, log } = recordingLog();
    const users = await HtpasswdUsers.open([file], { log, intervalMs: 3_600_000 });
    try {
      assert.equal(await users.verify('alice', 'first'), 'valid');
      // As the kubelet updates a Secret: a new file renamed over the old one.
      await fs.writeFile(`${file}.new`, `alice:${hash('second')}\nbob:${hash('b')}\n`);
      await fs.rename(`${file}.new`, file);
      await users.check();
      assert.equal(await users.verify('alice', 'first'), 'invalid', 'the remembered check ends with the entry');
      assert.equal(await users.verify('alice', 'second'), 'valid');
      assert.equal(await users.verify('bob', 'b'), 'valid');

      await fs.writeFile(file, `alice:plain-text\n`);
      await users.check();
      assert.equal(await users.verify('alice', 'second'), 'valid', 'the last good version stays');
      const refused = lines.find((l) => l.level === 'error');
      assert.match(String(refused?.msg), /htpasswd file changed but is not valid/);
      assert.match(String(refused?.error), /crypt or plain text/);
      assert.ok(!JSON.stringify(lines).includes('plain-text'), 'the entry itself is not logged');
    } finally {
      users.close();
    }
  });
});
