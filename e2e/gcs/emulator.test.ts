// The emulator's own rules, checked with plain HTTP: what the GCS backend's tests rely on.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { crc32c, crc32cBase64 } from './crc32c.ts';
import { RESUMABLE_CHUNK_UNIT, startGcsEmulator } from './emulator.ts';

const emulator = await startGcsEmulator({ buckets: ['emu-bucket'] });
after(() => emulator.close());
const upload = `${emulator.url}/upload/storage/v1/b/emu-bucket/o`;

describe('GCS emulator', () => {
  it('computes CRC32C (Castagnoli) as GCS reports it: big-endian, base64', () => {
    // Check values from RFC 3720, appendix B.4, and the common "123456789" check.
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa);
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
    assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
    assert.equal(crc32cBase64(Buffer.from('123456789')), Buffer.from([0xe3, 0x06, 0x92, 0x83]).toString('base64'));
  });

  it('runs a resumable session: 308 with the persisted Range, whole units only, then the object', async () => {
    const data = Buffer.alloc(RESUMABLE_CHUNK_UNIT + 1000, 7);
    const start = await fetch(`${upload}?uploadType=resumable&name=r1&ifGenerationMatch=0`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-upload-content-type': 'x/y' },
      body: '{}',
    });
    assert.equal(start.status, 200);
    const session = start.headers.get('location')!;
    const status = await fetch(session, { method: 'PUT', headers: { 'content-range': 'bytes */*' } });
    assert.equal(status.status, 308);
    assert.equal(status.headers.get('range'), null, 'nothing persisted yet');
    const odd = await fetch(session, { method: 'PUT', headers: { 'content-range': 'bytes 0-999/*' }, body: data.subarray(0, 1000) });
    assert.equal(odd.status, 400, 'chunks before the last are whole 256 KiB units');
    const first = await fetch(session, {
      method: 'PUT',
      headers: { 'content-range': `bytes 0-${RESUMABLE_CHUNK_UNIT - 1}/*` },
      body: data.subarray(0, RESUMABLE_CHUNK_UNIT),
    });
    assert.equal(first.status, 308);
    assert.equal(first.headers.get('range'), `bytes=0-${RESUMABLE_CHUNK_UNIT - 1}`);
    const last = await fetch(session, {
      method: 'PUT',
      headers: { 'content-range': `bytes ${RESUMABLE_CHUNK_UNIT}-${data.length - 1}/${data.length}` },
      body: data.subarray(RESUMABLE_CHUNK_UNIT),
    });
    assert.equal(last.status, 200);
    const object = (await last.json()) as Record<string, string>;
    assert.equal(object.size, String(data.length));
    assert.equal(object.contentType, 'x/y');
    assert.equal(object.md5Hash, createHash('md5').update(data).digest('base64'));
    assert.equal(object.crc32c, crc32cBase64(data));
  });

  it('enforces ifGenerationMatch=0 with 412 conditionNotMet in Google’s error format', async () => {
    emulator.putObject('emu-bucket', 'taken', Buffer.from('x'));
    const response = await fetch(`${upload}?uploadType=media&name=taken&ifGenerationMatch=0`, { method: 'POST', body: 'y' });
    assert.equal(response.status, 412);
    assert.deepEqual(await response.json(), {
      error: {
        code: 412,
        message: 'At least one of the pre-conditions you specified did not hold.',
        errors: [{ message: 'At least one of the pre-conditions you specified did not hold.', domain: 'global', reason: 'conditionNotMet' }],
      },
    });
  });

  it('rejects an upload whose X-Goog-Hash does not match what arrived', async () => {
    const response = await fetch(`${upload}?uploadType=media&name=hashed`, {
      method: 'POST',
      headers: { 'x-goog-hash': `crc32c=${crc32cBase64(Buffer.from('other'))}` },
      body: 'content',
    });
    assert.equal(response.status, 400);
    assert.equal(emulator.object('emu-bucket', 'hashed'), undefined);
  });

  it('serves media with Range (206), x-goog-hash and 416 for an unsatisfiable range; 404 for a missing bucket', async () => {
    emulator.putObject('emu-bucket', 'dir/media', Buffer.from('0123456789'), 'text/plain');
    const media = `${emulator.url}/b/emu-bucket/o/${encodeURIComponent('dir/media')}?alt=media`;
    const ranged = await fetch(media, { headers: { range: 'bytes=2-5' } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get('content-range'), 'bytes 2-5/10');
    assert.equal(await ranged.text(), '2345');
    assert.match(ranged.headers.get('x-goog-hash') ?? '', /^crc32c=.+,md5=.+$/);
    assert.equal((await fetch(media, { headers: { range: 'bytes=10-' } })).status, 416);
    assert.equal((await fetch(`${emulator.url}/storage/v1/b/missing-bucket`)).status, 404);
  });

  it('refuses signed URLs it cannot parse and anonymous reads of private buckets', async () => {
    emulator.putObject('emu-bucket', 'private', Buffer.from('secret'));
    const anonymous = await fetch(`${emulator.url}/emu-bucket/private`);
    assert.equal(anonymous.status, 403);
    assert.match(await anonymous.text(), /<Code>AccessDenied<\/Code>/);
    const malformed = await fetch(`${emulator.url}/emu-bucket/private?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=x&X-Goog-Signature=00`);
    assert.equal(malformed.status, 400);
    assert.match(await malformed.text(), /<Code>MalformedSecurityHeader<\/Code>/);
  });
});
