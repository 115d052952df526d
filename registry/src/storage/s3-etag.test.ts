import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { unquoteEtag, UploadEtag } from './s3-etag.ts';

const md5 = (data: Buffer) => createHash('md5').update(data).digest();

function etagOf(data: Buffer, partSize: number, chunk: number): string {
  const etag = new UploadEtag(partSize);
  for (let i = 0; i < data.length; i += chunk) etag.update(data.subarray(i, i + chunk));
  return etag.value();
}

describe('the ETag S3 computes for an upload by lib-storage', () => {
  it('is the hex MD5 of the body when it fits in one part, a full part included', () => {
    const body = randomBytes(100);
    assert.equal(etagOf(body, 100, 7), md5(body).toString('hex'));
    assert.equal(etagOf(Buffer.alloc(0), 100, 1), md5(Buffer.alloc(0)).toString('hex'));
  });

  it('is the MD5 of the parts\' MD5s and the part count above one part, however the bytes arrive', () => {
    const body = randomBytes(250);
    const expected = `${createHash('md5').update(Buffer.concat([md5(body.subarray(0, 100)), md5(body.subarray(100, 200)), md5(body.subarray(200))])).digest('hex')}-3`;
    for (const chunk of [1, 7, 50, 100, 250]) assert.equal(etagOf(body, 100, chunk), expected, `chunks of ${chunk}`);
    assert.match(etagOf(randomBytes(200), 100, 100), /-2$/, 'two full parts');
  });

  it('counts the bytes', () => {
    const etag = new UploadEtag(10);
    etag.update(Buffer.alloc(25));
    assert.equal(etag.size, 25);
  });

  it('reads ETags without their quotes', () => {
    assert.equal(unquoteEtag('"abc-2"'), 'abc-2');
    assert.equal(unquoteEtag('abc'), 'abc');
    assert.equal(unquoteEtag(undefined), undefined);
  });
});
