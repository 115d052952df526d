// Hostile requests: 10,000 generated from a seed (names, tags, digests, ranges, headers, methods,
// bodies, query strings, and a few malformed HTTP messages), sent to a registry on 127.0.0.1 a few
// at a time. None may be answered with a 5xx, every error is the spec's JSON, the registry stays
// up and logs only JSON lines, and nothing is written outside its storage and scratch space.
//
// The registry builds from an empty git repository, so any request that gets as far as a build
// fails fast and for the client's reasons (no such branch, tag or commit: 404), and no Nix runs.
// A failure prints the seed and the requests: NIXERY_HOSTILE_SEED=<seed> repeats the run.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { runOk, within } from '@nixery/test-support';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const REQUESTS = 10_000;
const CONCURRENCY = 16;
const SEED = Number(process.env.NIXERY_HOSTILE_SEED ?? 0x5eed18);
const PUSH_TOKEN = 'hostile-requests-push-token-0123456789';
/** A name each path-escape attempt carries, so that whatever it wrote could be found. */
const ESCAPE_MARKER = 'nixery-hostile-escape';
/** The whole run; well under a minute on two cores (it takes 10-20 s). */
const RUN_BOUND_MS = 90_000;

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function generator(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const chance = (p: number) => next() < p;
  const chars = (alphabet: string, length: number) => Array.from({ length }, () => alphabet[int(alphabet.length)]).join('');
  return { int, pick, chance, chars };
}
type Random = ReturnType<typeof generator>;

const HEX = '0123456789abcdef';
const SAFE = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
/** Characters a URL path can carry without encoding, the dangerous ones among them. */
const PATH_CHARS = `${SAFE}._-~+!$&'()*,;=:@%/`;

function name(r: Random): string {
  return r.pick<() => string>([
    () => r.pick(['hello', 'shell/hello', 'shell', 'arm64/hello', 'hello/shell', 'hello/arm64', 'a/b/c', 'Hello', 'haskellPackages.pandoc', '_tags', 'documents']),
    () => r.pick(['..', '.', 'a/../b', '../..', `../../../../../../tmp/${ESCAPE_MARKER}`, `..%2F..%2F${ESCAPE_MARKER}`, '%2e%2e', '%2e%2e/%2e%2e', 'a%2Fb', 'a%00b', '%00']),
    () => r.pick(['a+b', 'a b'.replace(' ', '%20'), 'a//b', '/a', 'a/', '-a', 'a-', 'a..b', 'a__b', 'a___b', 'A'.repeat(255), 'a'.repeat(256), `${'a/'.repeat(127)}a`, '%C3%A4', '%FF%FE', '%', '%zz']),
    () => Array.from({ length: 1 + r.int(4) }, () => r.chars(SAFE, 1 + r.int(12))).join(r.pick(['/', '/', '.', '-', '__'])),
    () => r.chars(PATH_CHARS, 1 + r.int(r.chance(0.1) ? 600 : 40)),
  ])();
}

function digest(r: Random): string {
  return r.pick<() => string>([
    () => `sha256:${r.chars(HEX, 64)}`,
    () => `sha256:${r.chars(HEX, r.pick([0, 1, 63, 65, 128]))}`,
    () => `sha256:${r.chars('0123456789ABCDEF', 64)}`,
    () => `sha512:${r.chars(HEX, 128)}`,
    () => r.pick(['sha256:', ':', 'sha256:xyz', 'md5:d41d8cd98f00b204e9800998ecf8427e', `sha256:${'0'.repeat(64)}`, 'a:b:c', `sha256+b64:${'A'.repeat(43)}=`]),
    () => `sha256:${r.chars(HEX, 64)}${r.pick(['%00', '/..', '.json', '%2F..'])}`,
  ])();
}

function tag(r: Random): string {
  return r.pick<() => string>([
    () => r.pick(['latest', 'v1', 'main', '0', '_', 'a'.repeat(128)]),
    () => r.pick(['a'.repeat(129), 'x'.repeat(1000), 'a+b', '..', '.', '-x', '.x', 'a..b', '%2e%2e', '%2e', `..%2F..%2F${ESCAPE_MARKER}`, 'a%00b', '%00', 'a%20b', '%C3%A4', 'list', '%', '%zz', 'a;b', "a'b", 'a$b', 'a@b', '~a']),
    // Commit hashes: a git source checks each against its mirror of the trusted refs.
    () => r.chars(HEX, 40),
    () => digest(r),
    () => r.chars(PATH_CHARS.replace('/', ''), 1 + r.int(r.chance(0.1) ? 300 : 20)),
  ])();
}

const ACCEPTS = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json;q=0.5, application/vnd.oci.image.index.v1+json',
  '*/*',
  '*/*;q=abc',
  ';;;,,,',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  `${'x/y;q=0.1,'.repeat(400)}`,
  'text/html',
];
const RANGES = ['bytes=0-', 'bytes=-5', 'bytes=5-1', 'bytes=abc', 'bytes=0-0,1-1,2-2', 'bytes=99999999999999999999-', 'items=0-1', 'bytes=-0', 'bytes=0-9007199254740993', `bytes=${'0-1,'.repeat(1000)}0-1`, 'bytes= 1 - 2 ', 'bytes=--1'];
const CONTENT_RANGES = ['0-9', '10-5', 'abc', '0-99999999999999999999', '-1', 'bytes 0-9/10', '5-'];

interface Planned {
  index: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

function plan(r: Random, index: number): Planned {
  const method = r.pick(['GET', 'GET', 'GET', 'HEAD', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'PROPFIND', 'MKCOL']);
  const n = name(r);
  const where = r.pick<() => string>([
    () => `/v2/${n}/manifests/${tag(r)}`,
    () => `/v2/${n}/manifests/${tag(r)}`,
    () => `/v2/${n}/manifests/${tag(r)}`,
    () => `/v2/${n}/blobs/${r.chance(0.8) ? digest(r) : tag(r)}`,
    () => `/v2/${n}/blobs/uploads/${r.chance(0.5) ? '' : r.pick([r.chars(HEX, 32), '..', '../..', `..%2F${ESCAPE_MARKER}`, r.chars(PATH_CHARS.replace('/', ''), 1 + r.int(80))])}`,
    () => `/v2/${n}/tags/${r.pick(['list', 'list', 'x', '..', ''])}`,
    () => r.pick(['/v2/', '/v2', '/v2/token', '/', '/healthz', '/metrics', '/v2/_catalog', '/favicon.ico', `/${ESCAPE_MARKER}/../../..`, '//v2//hello//manifests//latest', '/v2/../v2/', '/V2/hello/manifests/latest']),
    () => `/v2/${n}/${r.pick(['manifest', 'blob', 'referrers', 'manifests', 'blobs'])}${r.chance(0.5) ? '' : '/'}${r.chance(0.5) ? '' : tag(r)}/${r.chance(0.5) ? '' : tag(r)}`,
  ])();
  const query = r.chance(0.3)
    ? `?${Array.from({ length: 1 + r.int(3) }, () =>
        r.pick([
          `n=${r.pick(['-1', 'abc', '0', '5', '99999999999999999999', '1e3', '', '%00'])}`,
          `last=${r.pick(['..', 'a'.repeat(300), '%00', 'latest'])}`,
          `digest=${digest(r)}`,
          `mount=${digest(r)}`,
          `from=${name(r)}`,
          `scope=repository:${name(r)}:pull,push`,
          `service=${r.chars(PATH_CHARS.replace('/', ''), 10)}`,
          `n=1&n=2`,
          `__proto__[x]=1`,
          `a[b][c][d][e][f]=1`,
        ]),
      ).join('&')}`
    : '';
  const headers: Record<string, string> = {};
  if (r.chance(0.5)) headers.Accept = r.pick(ACCEPTS);
  if (r.chance(0.3)) headers.Range = r.pick(RANGES);
  if (r.chance(0.4)) {
    headers.Authorization = r.pick([
      `Basic ${Buffer.from(`any:${PUSH_TOKEN}`).toString('base64')}`,
      `Basic ${Buffer.from(`any:${PUSH_TOKEN}`).toString('base64')}`,
      `Bearer ${PUSH_TOKEN}`,
      `Bearer ${PUSH_TOKEN}`,
      `Bearer ${PUSH_TOKEN}`,
      'Bearer anonymous',
      'Basic !!!notbase64',
      `Basic ${Buffer.from('no-colon').toString('base64')}`,
      `Bearer ${'x'.repeat(8000)}`,
      'Digest username="a"',
      '',
    ]);
  }
  if (r.chance(0.2)) headers['Content-Type'] = r.pick(['application/vnd.oci.image.manifest.v1+json', 'application/octet-stream', 'text/plain;;charset=', 'multipart/form-data; boundary=', 'application/json']);
  if (r.chance(0.15)) headers['Content-Range'] = r.pick(CONTENT_RANGES);
  if (r.chance(0.05)) headers['If-None-Match'] = r.pick(['*', '"sha256:x"', 'W/"a"']);
  if (r.chance(0.05)) headers['X-Forwarded-For'] = r.pick(['127.0.0.1, 10.0.0.1', 'garbage', '']);
  let body: Buffer | undefined;
  if (['PUT', 'POST', 'PATCH'].includes(method) && r.chance(0.7)) {
    body = r.pick<() => Buffer>([
      () => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: digest(r) }, layers: [{ digest: digest(r) }] })),
      () => Buffer.from(JSON.stringify({ mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ digest: digest(r) }, { digest: 7 }] })),
      () => Buffer.from('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"x": 1}}}'),
      () => Buffer.from('{not json'),
      () => Buffer.from(r.pick(['null', '[]', '"a string"', '5', 'true'])),
      () => Buffer.from(JSON.stringify({ mediaType: 'application/vnd.oci.image.manifest.v1+json', config: r.pick([null, 5, 'x', { digest: digest(r) }]), layers: r.pick([5, 'x', null, {}, [null], [5]]) })),
      () => Buffer.from(JSON.stringify({ mediaType: r.pick(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']), manifests: r.pick([5, null, {}, [null], ['x']]) })),
      () => Buffer.alloc(r.int(4096), r.int(256)),
      () => Buffer.from(''),
    ])();
  }
  return { index, method, path: where + query, headers, ...(body ? { body } : {}) };
}

interface Answer {
  status: number;
  contentType: string;
  body: string;
}

function send(port: number, p: Planned): Promise<Answer | { skipped: string }> {
  return new Promise((resolve, reject) => {
    let request: http.ClientRequest;
    try {
      request = http.request({ host: '127.0.0.1', port, method: p.method, path: p.path, headers: p.headers, agent: false, timeout: 30_000 });
    } catch (error) {
      // The client refuses some paths outright (e.g. characters that need encoding); nothing was sent.
      resolve({ skipped: (error as Error).message });
      return;
    }
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, contentType: String(response.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within 30 s to ${p.method} ${p.path}`)));
    request.on('error', reject);
    request.end(p.body);
  });
}

/** Malformed HTTP, written to a socket: the answer's status line, or what became of the connection. */
function sendRaw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer within 10 s to ${JSON.stringify(bytes.slice(0, 80))}`)));
    socket.on('data', (c: Buffer) => (answer += c.toString('latin1')));
    socket.on('close', () => resolve(answer.split('\r\n')[0] ?? ''));
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? resolve('reset') : reject(error)));
    socket.end(bytes);
  });
}

const RAW = [
  'GET /v2/hello/manifests/latest HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'GET /v2/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  `GET /v2/hello/manifests/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
  `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\nConnection: close\r\n\r\n`,
  'GET /v2/hello/manifests/a b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  'GET /v2/hello/manifests/\u00e4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  'BREW /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  'GET /v2/ HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n',
  'GET /v2/\r\n\r\n',
  'PUT /v2/hello/manifests/latest HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\nConnection: close\r\n\r\n',
  'PATCH /v2/hello/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\nConnection: close\r\n\r\n',
  'GET /v2/hello/manifests/latest HTTP/1.1\r\nHost: x\r\nBad Header\r\nConnection: close\r\n\r\n',
  'GET http://evil.example/v2/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n',
  'GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03',
];

/** Every file and directory under `dir`, relative to it. */
async function listTree(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true });
  return entries.map(String).sort();
}

describe('hostile requests', () => {
  let work: string;
  let registry: RegistryProcess;
  const dirs = {} as Record<'storage' | 'home' | 'tmp' | 'repo', string>;

  before(async () => {
    work = await tempDir('nixery-e2e-hostile-');
    // Storage deep inside the work directory: an escape from it lands in the work directory.
    dirs.storage = path.join(work, 'a', 'b', 'storage');
    dirs.home = path.join(work, 'home');
    dirs.tmp = path.join(work, 'tmp');
    dirs.repo = path.join(work, 'empty-repo');
    for (const d of Object.values(dirs)) await fs.mkdir(d, { recursive: true });
    await runOk('git', ['init', '-q', '-b', 'main', dirs.repo]);
    registry = await startRegistry({
      storagePath: dirs.storage,
      env: {
        NIXERY_PKGS_REPO: dirs.repo,
        NIXERY_PUSH_TOKEN: PUSH_TOKEN,
        HOME: dirs.home,
        TMPDIR: dirs.tmp,
        XDG_CACHE_HOME: path.join(dirs.home, '.cache'),
      },
    });
  });
  after(async () => {
    await registry?.stop();
    await fs.rm(work, { recursive: true, force: true });
  });

  it(`answers ${REQUESTS} generated requests (seed ${SEED}) without a 5xx, with the spec's JSON errors`, async () => {
    const r = generator(SEED);
    const planned = Array.from({ length: REQUESTS }, (_, i) => plan(r, i));
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let skipped = 0;
    let next = 0;
    const worker = async () => {
      while (next < planned.length) {
        const p = planned[next++]!;
        let answer: Awaited<ReturnType<typeof send>>;
        try {
          answer = await send(registry.port, p);
        } catch (error) {
          failures.push(`#${p.index} ${p.method} ${p.path.slice(0, 300)} ${JSON.stringify(p.headers).slice(0, 300)} → ${(error as Error).message}`);
          if (registry.child.exitCode !== null || registry.child.signalCode !== null) break;
          continue;
        }
        if ('skipped' in answer) {
          skipped++;
          continue;
        }
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        const describe = () => `#${p.index} ${p.method} ${p.path.slice(0, 300)} ${JSON.stringify(p.headers).slice(0, 300)} → ${answer.status} ${answer.body.slice(0, 300)}`;
        if (answer.status >= 500) failures.push(describe());
        else if (answer.status >= 400 && p.method !== 'HEAD' && answer.contentType.startsWith('application/json')) {
          // An error in the spec's shape: {"errors": [{"code", "message"}]}.
          const body = JSON.parse(answer.body) as { errors?: { code?: unknown; message?: unknown }[] };
          if (!Array.isArray(body.errors) || typeof body.errors[0]?.code !== 'string' || typeof body.errors[0]?.message !== 'string') failures.push(`not an OCI error: ${describe()}`);
        } else if (answer.status >= 400 && p.method !== 'HEAD' && p.path.startsWith('/v2/')) {
          failures.push(`an error under /v2/ that is not JSON: ${describe()}`);
        }
      }
    };
    const started = performance.now();
    await within(RUN_BOUND_MS, `${REQUESTS} requests`, Promise.all(Array.from({ length: CONCURRENCY }, worker)));
    const seconds = (performance.now() - started) / 1000;
    const summary = `seed ${SEED}, ${seconds.toFixed(1)} s, statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}, ${skipped} not sendable`;
    assert.deepEqual(failures.slice(0, 20), [], `${failures.length} bad answers (${summary}); repeat with NIXERY_HOSTILE_SEED=${SEED}\n${registry.logs().slice(-3000)}`);
    // Most requests were sent, and they reached the registry's different answers.
    assert.ok(skipped < REQUESTS / 20, summary);
    for (const status of [200, 202, 400, 401, 404, 405]) assert.ok(statuses.has(status), `no ${status} among the answers: ${summary}`);
  });

  it('answers the known cases with the spec codes', async () => {
    const auth = { Authorization: `Bearer ${PUSH_TOKEN}`, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' };
    const zero = `sha256:${'0'.repeat(64)}`;
    const cases: [string, string, Record<string, string>, string | undefined, number, string][] = [
      // Tags no manifest can have: 404 MANIFEST_UNKNOWN, for GET, HEAD and DELETE alike.
      ['GET', `/v2/hello/manifests/${'a'.repeat(129)}`, {}, undefined, 404, 'MANIFEST_UNKNOWN'],
      ['GET', `/v2/hello/manifests/${'a'.repeat(5000)}`, {}, undefined, 404, 'MANIFEST_UNKNOWN'],
      ['GET', '/v2/hello/manifests/a+b', {}, undefined, 404, 'MANIFEST_UNKNOWN'],
      ['GET', '/v2/hello/manifests/..', {}, undefined, 404, 'MANIFEST_UNKNOWN'],
      ['GET', '/v2/hello/manifests/.', {}, undefined, 404, 'MANIFEST_UNKNOWN'],
      ['GET', '/v2/shell/hello/manifests/..', {}, undefined, 404, 'MANIFEST_UNKNOWN'],
      ['GET', '/v2/hello/manifests/-x', {}, undefined, 404, 'MANIFEST_UNKNOWN'],
      ['GET', '/v2/hello/manifests/a%zz', {}, undefined, 404, 'MANIFEST_UNKNOWN'],
      ['HEAD', '/v2/hello/manifests/a+b', {}, undefined, 404, ''],
      ['DELETE', '/v2/hello/manifests/a+b', auth, undefined, 404, 'MANIFEST_UNKNOWN'],
      ['DELETE', '/v2/hello/manifests/..', auth, undefined, 404, 'MANIFEST_UNKNOWN'],
      // Names that are no repository names, even ones that do not percent-decode.
      ['GET', '/v2/a%zz/manifests/latest', {}, undefined, 400, 'NAME_INVALID'],
      ['GET', '/v2/%/tags/list', {}, undefined, 400, 'NAME_INVALID'],
      ['GET', '/v2/../manifests/latest', {}, undefined, 400, 'NAME_INVALID'],
      // Tags that could be, but name nothing in the (empty) repository.
      ['GET', '/v2/hello/manifests/latest', {}, undefined, 404, 'MANIFEST_UNKNOWN'],
      ['GET', `/v2/hello/manifests/${'a'.repeat(40)}`, {}, undefined, 404, 'MANIFEST_UNKNOWN'],
      // Pushed manifests of the wrong shape.
      ['PUT', '/v2/hello/manifests/v1', auth, 'null', 400, 'MANIFEST_INVALID'],
      ['PUT', '/v2/hello/manifests/v1', auth, JSON.stringify({ mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: zero }, layers: 5 }), 400, 'MANIFEST_INVALID'],
      ['PUT', '/v2/hello/manifests/v1', auth, JSON.stringify({ mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [null] }), 400, 'MANIFEST_INVALID'],
    ];
    for (const [method, where, headers, body, status, code] of cases) {
      const answer = await send(registry.port, { index: -1, method, path: where, headers, ...(body === undefined ? {} : { body: Buffer.from(body) }) });
      assert.ok(!('skipped' in answer), where);
      assert.equal(answer.status, status, `${method} ${where.slice(0, 100)}: ${answer.body}`);
      if (code) assert.equal((JSON.parse(answer.body) as { errors: { code: string }[] }).errors[0]!.code, code, `${method} ${where.slice(0, 100)}`);
      if (code) assert.ok(answer.body.length < 1000, `the answer echoes the request whole: ${answer.body.length} bytes`);
    }
  });

  it('answers malformed HTTP with 4xx or by closing the connection', async () => {
    for (const raw of RAW) {
      const line = await sendRaw(registry.port, raw);
      assert.ok(line === '' || line === 'reset' || /^HTTP\/1\.[01] [1-4][0-9][0-9] /.test(line), `${JSON.stringify(raw.slice(0, 80))} → ${line}`);
    }
  });

  it('stays up, healthy, and logging JSON lines only', async () => {
    assert.equal(registry.child.exitCode, null, 'the registry exited');
    assert.equal((await fetch(`${registry.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${registry.url}/v2/`)).status, 401, 'a registry with a push token challenges /v2/');
    const lines = registry.logs().split('\n').filter((l) => l.trim() !== '');
    for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), line.slice(0, 300));
    assert.ok(!lines.some((l) => /"level":"error"/.test(l) && !/"msg":"request failed"/.test(l)), 'an unexpected error logged');
  });

  it('writes nothing outside its storage and scratch space', async () => {
    const allowed = [
      // The storage, and the directories it lives in.
      /^a$/, /^a\/b$/, /^a\/b\/storage(\/|$)/,
      // The empty package repository, untouched by the registry.
      /^empty-repo(\/|$)/,
      // TMPDIR itself, left empty (upload sessions live in the storage, uploads/), and the
      // mirror of the trusted refs.
      /^tmp$/,
      /^home$/, /^home\/\.cache$/, /^home\/\.cache\/nixery$/, /^home\/\.cache\/nixery\/git-mirrors(\/|$)/,
    ];
    const outside = (await listTree(work)).filter((p) => !allowed.some((a) => a.test(p)));
    assert.deepEqual(outside, []);
    const escaped = (await listTree(work)).filter((p) => p.includes(ESCAPE_MARKER));
    assert.deepEqual(escaped, [], 'a path escape wrote something');
    assert.deepEqual((await fs.readdir('/tmp')).filter((p) => p.includes(ESCAPE_MARKER)), []);
    // Inside storage, documents are only where the registry puts them: names hash or validate.
    const documents = (await listTree(dirs.storage)).filter((p) => p.startsWith('documents/'));
    for (const d of documents) assert.ok(!d.split('/').some((s) => s === '..' || s === '.'), d);
  });
});
