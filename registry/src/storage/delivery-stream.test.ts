import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { DeliveryUrlError, deliveryStream } from './delivery-stream.ts';

const info = { digest: 'sha256:' + '0'.repeat(64), size: 5, contentType: 'application/octet-stream' };

describe('deliveryStream', () => {
  let server: http.Server;
  let base: string;

  before(async () => {
    // A signed URL's server: /ok answers the bytes, anything else 403 as an expired signature does.
    server = http.createServer((req, res) => {
      if (req.url === '/ok') res.end('hello');
      else res.writeHead(403).end('<Error>expired</Error>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('opens a stream delivery', async () => {
    const stream = await deliveryStream({ kind: 'stream', info, open: () => Readable.from([Buffer.from('hello')]) });
    assert.equal(await text(stream), 'hello');
  });

  it('reads a redirect from its URL', async () => {
    assert.equal(await text(await deliveryStream({ kind: 'redirect', info, url: `${base}/ok` })), 'hello');
  });

  it('refuses a URL that answers with an error, naming its status', async () => {
    await assert.rejects(deliveryStream({ kind: 'redirect', info, url: `${base}/expired` }), (err: unknown) => err instanceof DeliveryUrlError && err.status === 403 && /HTTP 403/.test(err.message));
  });
});
