import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { RateLimiter } from '../cache/rate-limiter.ts';
import { createLogger } from '../log/logger.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { HtpasswdError, HtpasswdUsers, parseHtpasswd } from './htpasswd.ts';
import { Authenticator, CredentialCheckLimitError } from './identity.ts';
import { RegistryTokens } from './tokens.ts';
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

describe('bcrypt checks bounded per client (NIXERY_CLIENT_AUTH_CHECKS_PER_MINUTE)', () => {
  const A = '192.0.2.1';
  const B = '192.0.2.2';

  /** alice (password wonderland) behind an Authenticator allowing each client 3 checks a minute; time stands still until moved. */
  async function setup(t: TestContext) {
    const file = path.join(await tempDir(), 'htpasswd');
    await fs.writeFile(file, `alice:${hash('wonderland')}\n`);
    const clock = { ms: 1_000_000 };
    const users = await HtpasswdUsers.open([file], { log: createLogger({ write: () => {} }), now: () => clock.ms });
    t.after(() => users.close());
    const compares = t.mock.method(bcrypt, 'compare');
    const authenticator = new Authenticator({ tokens: new RegistryTokens(), users, checkLimit: new RateLimiter({ perMinute: 3, now: () => clock.ms }) });
    const login = (password: string, client: string, username = 'alice') => authenticator.authenticate({ scheme: 'basic', username, password }, client);
    return { clock, login, bcryptRuns: () => compares.mock.callCount() };
  }
  const refusedFor = (client: string, retryAfterSeconds: number) => (error: unknown) =>
    error instanceof CredentialCheckLimitError && error.client === client && error.perMinute === 3 && error.retryAfterSeconds === retryAfterSeconds;

  it('check 3 wrong passwords of one client a minute; the fourth is refused without running bcrypt, with the wait until the next', async (t) => {
    const { login, bcryptRuns } = await setup(t);
    for (const password of ['one', 'two', 'three']) assert.equal((await login(password, A)).ok, false, password);
    assert.equal(bcryptRuns(), 3);
    await assert.rejects(login('four', A), refusedFor(A, 20));
    await assert.rejects(login('wonderland', A), refusedFor(A, 20), 'even the right password: it would cost a bcrypt run');
    assert.equal(bcryptRuns(), 3, 'no bcrypt run for a refused check');
  });

  it('charge nothing for a remembered success or a user no file names', async (t) => {
    const { login, bcryptRuns } = await setup(t);
    assert.equal((await login('wonderland', A)).ok, true);
    for (const password of ['one', 'two']) assert.equal((await login(password, A)).ok, false);
    await assert.rejects(login('three', A), refusedFor(A, 20));
    for (let i = 0; i < 5; i++) assert.deepEqual(await login('wonderland', A), { ok: true, identity: { kind: 'user', name: 'alice' } });
    assert.deepEqual(await login('anything', A, 'mallory'), { ok: false, reason: 'invalid', message: 'unknown user name or password' });
    assert.equal(bcryptRuns(), 3);
  });

  it('leave another client its own allowance, and give one back every 60/3 s', async (t) => {
    const { clock, login, bcryptRuns } = await setup(t);
    for (const password of ['one', 'two', 'three']) await login(password, A);
    await assert.rejects(login('four', A), refusedFor(A, 20));
    assert.deepEqual(await login('wonderland', B), { ok: true, identity: { kind: 'user', name: 'alice' } }, 'another client address');
    assert.equal((await login('wonderland', A)).ok, true, 'remembered from B\'s check: nothing to charge');
    clock.ms += 19_000;
    await assert.rejects(login('five', A), refusedFor(A, 1));
    clock.ms += 1_000;
    assert.equal((await login('five', A)).ok, false, 'checked with the check given back after 20 s');
    await assert.rejects(login('six', A), refusedFor(A, 20));
    assert.equal(bcryptRuns(), 5);
  });

  it('call beforeCostlyCheck right before each bcrypt compare, not for a remembered success or an unknown user', async (t) => {
    const file = path.join(await tempDir(), 'htpasswd');
    await fs.writeFile(file, `alice:${hash('wonderland')}\n`);
    const users = await HtpasswdUsers.open([file], { log: createLogger({ write: () => {} }) });
    t.after(() => users.close());
    const compares = t.mock.method(bcrypt, 'compare');
    let calls = 0;
    const count = () => {
      assert.equal(calls, compares.mock.callCount(), 'before the compare');
      calls++;
    };
    assert.equal(await users.verify('alice', 'wonderland', count), 'valid');
    assert.equal(await users.verify('alice', 'wonderland', count), 'valid');
    assert.equal(await users.verify('mallory', 'x', count), 'unknown');
    assert.equal(await users.verify('alice', 'wrong', count), 'invalid');
    assert.equal(calls, 2);
    const refusal = new CredentialCheckLimitError(A, 1, 60);
    await assert.rejects(users.verify('alice', 'wrong', () => { throw refusal; }), (e: unknown) => e === refusal);
    assert.equal(compares.mock.callCount(), 2);
  });
});
