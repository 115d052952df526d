import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { deleteTag, TagDeleteError, tagUrl } from './delete-tag.ts';

describe('deleting a pushed tag', () => {
  const seen: string[] = [];
  let status = 202;
  let server: http.Server;
  let registry: string;

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
      res.writeHead(status, { 'Content-Type': 'application/json' }).end(status === 202 ? '' : '{"errors":[{"code":"DENIED"}]}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    registry = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('sends DELETE of the manifest by tag with the push token as a bearer token', async () => {
    status = 202;
    await deleteTag({ registry, name: 'team/tool', tag: 'v1' }, 'the-token');
    assert.equal(seen.at(-1), 'DELETE /v2/team/tool/manifests/v1 Bearer the-token');
  });

  it('takes a tag that is already gone as done', async () => {
    status = 404;
    await deleteTag({ registry, name: 'tool', tag: 'v1' }, 'the-token');
  });

  it('fails with the status and the registry\'s answer otherwise', async () => {
    status = 401;
    await assert.rejects(deleteTag({ registry, name: 'tool', tag: 'v1' }, 'wrong'), (error: unknown) => {
      assert.ok(error instanceof TagDeleteError);
      assert.equal(error.status, 401);
      assert.match(error.message, /DENIED/);
      return true;
    });
  });

  it('names the manifest URL plainly', () => {
    assert.equal(tagUrl({ registry: '10.0.0.7:5000', name: 'greeter', tag: '1.0' }), 'http://10.0.0.7:5000/v2/greeter/manifests/1.0');
  });
});
