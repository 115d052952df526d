import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadPopularity, parsePopularity, PopularityError, storePathName } from './popularity.ts';

function isPopularityError(problem: RegExp, url?: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof PopularityError, `expected a PopularityError, got ${String(e)}`);
    assert.equal(e.code, 'POPULARITY_INVALID');
    assert.match(e.problem, problem);
    if (url !== undefined) assert.equal(e.url, url);
    assert.ok(e.message.includes(e.url), 'the message names the URL');
    return true;
  };
}

describe('storePathName', () => {
  it('strips /nix/store/<hash>- and keeps the rest of the name', () => {
    assert.equal(storePathName('/nix/store/0c7c96gikmzv87i7lv3vq5s1cmfjd6zf-glibc-2.38-44'), 'glibc-2.38-44');
    assert.equal(storePathName('/nix/store/0c7c96gikmzv87i7lv3vq5s1cmfjd6zf-nss-cacert-3.98'), 'nss-cacert-3.98');
  });

  it('returns strings that are not store paths unchanged', () => {
    for (const s of ['glibc-2.38', '/nix/store/short-glibc', '/opt/store/0c7c96gikmzv87i7lv3vq5s1cmfjd6zf-x']) {
      assert.equal(storePathName(s), s);
    }
  });
});

describe('parsePopularity', () => {
  it('maps store path names to counts', () => {
    assert.deepEqual(parsePopularity({ 'glibc-2.38': 300000, 'zlib-1.3': 42 }, 'file:///p.json'), new Map([
      ['glibc-2.38', 300000],
      ['zlib-1.3', 42],
    ]));
  });

  it('rejects documents that are not an object of non-negative numbers', () => {
    const cases: Array<[unknown, RegExp]> = [
      [null, /expected a JSON object.*got null/],
      [[1, 2], /got an array/],
      ['glibc', /got string/],
      [{ glibc: '3' }, /"glibc" must be a non-negative number, got "3"/],
      [{ glibc: null }, /"glibc" must be a non-negative number/],
      [{ glibc: -1 }, /"glibc" must be a non-negative number, got -1/],
    ];
    for (const [document, problem] of cases) {
      assert.throws(() => parsePopularity(document, 'file:///p.json'), isPopularityError(problem, 'file:///p.json'));
    }
  });
});

describe('loadPopularity', () => {
  let dir = '';
  let server: Server | undefined;
  let base = '';

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'popularity-'));
    server = createServer((req, res) => {
      const routes: Record<string, [number, string]> = {
        '/pop.json': [200, '{"glibc-2.38":300000,"openssl-3.0":1200}'],
        '/array.json': [200, '[1]'],
        '/text.json': [200, 'not json'],
        '/string-values.json': [200, '{"glibc":"many"}'],
      };
      if (req.url === '/slow.json') return; // never answers
      const [status, body] = routes[(req.url ?? '').split('?')[0] ?? ''] ?? [404, 'no such file'];
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('returns no data when no URL is configured', async () => {
    assert.deepEqual(await loadPopularity(undefined), new Map());
    assert.deepEqual(await loadPopularity(''), new Map());
  });

  it('reads a file:// URL', async () => {
    const file = path.join(dir, 'popularity.json');
    await writeFile(file, JSON.stringify({ 'glibc-2.38': 300000, 'zlib-1.3': 42 }));
    assert.deepEqual(await loadPopularity(pathToFileURL(file).href), new Map([
      ['glibc-2.38', 300000],
      ['zlib-1.3', 42],
    ]));
  });

  it('names the file when it is missing or not JSON', async () => {
    const missing = pathToFileURL(path.join(dir, 'missing.json')).href;
    await assert.rejects(loadPopularity(missing), isPopularityError(/cannot read file: .*ENOENT/, missing));
    const broken = path.join(dir, 'broken.json');
    await writeFile(broken, '{"glibc": 1');
    await assert.rejects(loadPopularity(pathToFileURL(broken).href), isPopularityError(/not valid JSON/));
  });

  it('fetches an http:// URL', async () => {
    assert.deepEqual(await loadPopularity(`${base}/pop.json`), new Map([
      ['glibc-2.38', 300000],
      ['openssl-3.0', 1200],
    ]));
  });

  it('rejects HTTP errors and invalid documents, naming the URL', async () => {
    await assert.rejects(loadPopularity(`${base}/missing.json`), isPopularityError(/HTTP 404/, `${base}/missing.json`));
    await assert.rejects(loadPopularity(`${base}/array.json`), isPopularityError(/got an array/));
    await assert.rejects(loadPopularity(`${base}/text.json`), isPopularityError(/not valid JSON/));
    await assert.rejects(loadPopularity(`${base}/string-values.json`), isPopularityError(/"glibc" must be a non-negative number/));
  });

  it('gives up after the timeout', async () => {
    await assert.rejects(loadPopularity(`${base}/slow.json`, { timeoutMs: 50 }), isPopularityError(/timed out after 50 ms/));
  });

  it('reports a server that cannot be reached', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await assert.rejects(loadPopularity(`http://127.0.0.1:${port}/pop.json`), isPopularityError(/request failed/));
  });

  it('keeps credentials and query strings out of errors', async () => {
    const url = `${base.replace('http://', 'http://user:hunter2@')}/missing.json?signature=s3cret`;
    await assert.rejects(loadPopularity(url, { fetch: async () => new Response('gone', { status: 410 }) }), (e: unknown) => {
      assert.ok(e instanceof PopularityError);
      assert.doesNotMatch(e.message, /hunter2|s3cret/);
      assert.equal(e.url, `${base.replace('http://', 'http://***@')}/missing.json?…`);
      return true;
    });
  });

  it('uses the fetch it is given', async () => {
    const seen: string[] = [];
    const fake: typeof fetch = async (input) => {
      seen.push(String(input));
      return new Response('{"zlib-1.3":7}');
    };
    assert.deepEqual(await loadPopularity('https://example.invalid/pop.json', { fetch: fake }), new Map([['zlib-1.3', 7]]));
    assert.deepEqual(seen, ['https://example.invalid/pop.json']);
  });

  it('rejects URLs it cannot load', async () => {
    await assert.rejects(loadPopularity('ftp://example.invalid/pop.json'), isPopularityError(/unsupported URL scheme "ftp:"/));
    await assert.rejects(loadPopularity('popularity.json'), isPopularityError(/not a valid URL/));
  });
});
