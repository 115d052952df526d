import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { issueCertificate, makeCertificateAuthority } from '@nixery/test-support';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { deleteTag, deleteTokenUrl, TagDeleteError, tagUrl } from './delete-tag.ts';

const tempDir = tempDirs('nixery-delete-tag-');
const ADMIN = 'the-administrator-token';
const SCOPED = 'scoped.registry.token';

/** A registry's token endpoint and manifest DELETE; records what it was sent. */
function fakeRegistry(seen: string[], answers: { token: number; delete: number }): http.RequestListener {
  return (req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
    if (req.url?.startsWith('/v2/token')) {
      if (answers.token !== 200) return res.writeHead(answers.token, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token: SCOPED, access_token: SCOPED }));
    }
    res.writeHead(answers.delete, { 'Content-Type': 'application/json' }).end(answers.delete === 202 ? '' : '{"errors":[{"code":"DENIED"}]}');
  };
}

describe('deleting a pushed tag', () => {
  const seen: string[] = [];
  const answers = { token: 200, delete: 202 };
  let server: http.Server;
  let registry: string;

  before(async () => {
    server = http.createServer(fakeRegistry(seen, answers));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    registry = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('buys a token for deleting the repository alone with the administrator token, and deletes with that', async () => {
    seen.length = 0;
    Object.assign(answers, { token: 200, delete: 202 });
    await deleteTag({ registry, name: 'team/tool', tag: 'v1' }, ADMIN);
    assert.deepEqual(seen, [
      `GET /v2/token?service=nixery&scope=repository%3Ateam%2Ftool%3Adelete Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}`,
      `DELETE /v2/team/tool/manifests/v1 Bearer ${SCOPED}`,
    ]);
  });

  it('takes a tag that is already gone as done', async () => {
    Object.assign(answers, { token: 200, delete: 404 });
    await deleteTag({ registry, name: 'tool', tag: 'v1' }, ADMIN);
  });

  it('fails with the status and the registry\'s answer otherwise, at either step', async () => {
    Object.assign(answers, { token: 200, delete: 403 });
    await assert.rejects(deleteTag({ registry, name: 'tool', tag: 'v1' }, ADMIN), (error: unknown) => {
      assert.ok(error instanceof TagDeleteError);
      assert.equal(error.status, 403);
      assert.match(error.message, /^DELETE .* answered 403: .*DENIED/);
      return true;
    });
    Object.assign(answers, { token: 401, delete: 202 });
    await assert.rejects(deleteTag({ registry, name: 'tool', tag: 'v1' }, 'wrong'), (error: unknown) => error instanceof TagDeleteError && error.status === 401 && /^GET .*\/v2\/token/.test(error.message));
  });

  it('names the URLs plainly', () => {
    assert.equal(tagUrl({ registry: '10.0.0.7:5000', name: 'greeter', tag: '1.0' }), 'http://10.0.0.7:5000/v2/greeter/manifests/1.0');
    assert.equal(tagUrl({ registry: 'nixery.ns.svc:5000', name: 'greeter', tag: '1.0' }, 'https'), 'https://nixery.ns.svc:5000/v2/greeter/manifests/1.0');
    assert.equal(deleteTokenUrl({ registry: '10.0.0.7:5000', name: 'a/b', tag: 'x' }), 'http://10.0.0.7:5000/v2/token?service=nixery&scope=repository%3Aa%2Fb%3Adelete');
  });
});

describe('deleting a pushed tag over TLS', () => {
  it('trusts the CA it is given, and nothing else', async () => {
    const dir = await tempDir();
    const ca = await makeCertificateAuthority(path.join(dir, 'ca'));
    const serving = await issueCertificate(ca, path.join(dir, 'serving'), 'registry', { hosts: ['127.0.0.1'] });
    const seen: string[] = [];
    const server = https.createServer({ cert: serving.cert, key: serving.key }, fakeRegistry(seen, { token: 200, delete: 202 }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const registry = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      await assert.rejects(deleteTag({ registry, name: 'tool', tag: 'v1' }, ADMIN, { scheme: 'https' }), /self-signed|unable to verify|certificate/i);
      assert.deepEqual(seen, [], 'nothing is sent to a server that is not trusted');
      await deleteTag({ registry, name: 'tool', tag: 'v1' }, ADMIN, { scheme: 'https', ca: ca.cert });
      assert.equal(seen.at(-1), `DELETE /v2/tool/manifests/v1 Bearer ${SCOPED}`);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
