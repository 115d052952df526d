import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pack } from 'tar-stream';
import type { Header } from 'tar-stream';
import type { LayerEntry } from './entry.ts';
import { entryHeader, paddingAfter } from './tar-header.ts';
import { readTar } from './test-support.ts';

const FIXED = { uid: 0, gid: 0, uname: '', gname: '', mtime: new Date(0) } as const;

/** What tar-stream 3 (which encoded layers before) writes for the entry's header, up to `length` bytes. */
async function tarStreamHeader(entry: LayerEntry, length: number): Promise<Buffer> {
  const header: Partial<Header> & Pick<Header, 'name'> =
    entry.type === 'directory'
      ? { ...FIXED, type: 'directory', name: entry.name + '/', mode: entry.mode }
      : entry.type === 'symlink'
        ? { ...FIXED, type: 'symlink', name: entry.name, mode: 0o777, linkname: entry.target }
        : { ...FIXED, type: 'file', name: entry.name, mode: entry.mode, size: entry.size };
  const packer = pack();
  const chunks: Buffer[] = [];
  let seen = 0;
  return new Promise((resolve, reject) => {
    packer.on('data', (data: unknown) => {
      const chunk = data as Buffer;
      chunks.push(chunk);
      seen += chunk.length;
      if (seen >= length) {
        packer.destroy();
        resolve(Buffer.concat(chunks).subarray(0, length));
      }
    });
    packer.on('error', () => {});
    packer.on('end', () => reject(new Error(`tar-stream wrote only ${seen} bytes`)));
    // Contents are never written: the header is pushed when the entry starts.
    packer.entry(header);
    if (entry.type !== 'file' || entry.size === 0) packer.finalize();
  });
}

const entries: Array<[string, LayerEntry]> = [
  ['a directory', { type: 'directory', name: 'nix/store/abc-hello', mode: 0o555 }],
  ['a file', { type: 'file', name: 'nix/store/abc-hello/bin/hello', mode: 0o555, size: 123_456, fsPath: '/x' }],
  ['an empty file', { type: 'file', name: 'nix/store/abc-hello/empty', mode: 0o444, size: 0, fsPath: '/x' }],
  ['a file of 8 GiB and more (base-256 size)', { type: 'file', name: 'huge', mode: 0o444, size: 2 ** 33 + 5, fsPath: '/x' }],
  ['mode 0, which tar-stream replaced by its default', { type: 'file', name: 'zero', mode: 0, size: 1, fsPath: '/x' }],
  ['a directory of mode 0', { type: 'directory', name: 'zerodir', mode: 0 }],
  ['a setuid file', { type: 'file', name: 'suid', mode: 0o4555, size: 1, fsPath: '/x' }],
  ['a symlink', { type: 'symlink', name: 'nix/store/abc-hello/bin/hi', target: 'hello' }],
  ['a name split into prefix and name', { type: 'file', name: `${'d'.repeat(90)}/${'e'.repeat(60)}/${'f'.repeat(90)}`, mode: 0o444, size: 3, fsPath: '/x' }],
  ['a name of exactly 100 bytes', { type: 'file', name: 'n'.repeat(100), mode: 0o444, size: 3, fsPath: '/x' }],
  ['a name of 101 bytes with no slash (PAX)', { type: 'file', name: 'n'.repeat(101), mode: 0o444, size: 3, fsPath: '/x' }],
  ['a name too long for any prefix (PAX)', { type: 'directory', name: `${'p'.repeat(200)}/${'q'.repeat(90)}`, mode: 0o555 }],
  ['a non-ASCII name (PAX)', { type: 'file', name: 'nix/store/abc-hello/share/ünïcödé', mode: 0o444, size: 7, fsPath: '/x' }],
  ['a non-ASCII link target (kept in ustar)', { type: 'symlink', name: 'link', target: '../ünï' }],
  ['a link target over 100 bytes (PAX)', { type: 'symlink', name: 'link', target: '/nix/store/' + 't'.repeat(120) }],
  ['a PAX record of 999 bytes, whose length gains a digit', { type: 'file', name: 'x/'.repeat(10) + 'y'.repeat(971), mode: 0o444, size: 1, fsPath: '/x' }],
];

describe('entryHeader', () => {
  for (const [label, entry] of entries) {
    it(`writes the bytes tar-stream wrote for ${label}`, async () => {
      const ours = entryHeader(entry);
      assert.equal(ours.length % 512, 0);
      assert.ok(ours.equals(await tarStreamHeader(entry, ours.length)));
    });
  }

  it('gives names, targets, modes and sizes that a tar reader reads back', async () => {
    const kept = entries.filter(([, e]) => e.type !== 'file' || e.size < 1 << 20).map(([, e]) => e);
    const archive: Buffer[] = [];
    for (const entry of kept) {
      archive.push(entryHeader(entry));
      if (entry.type === 'file') archive.push(Buffer.alloc(entry.size + paddingAfter(entry.size)));
    }
    archive.push(Buffer.alloc(1024));
    const records = (await readTar(Buffer.concat(archive))).map((r) => r.header);
    assert.deepEqual(
      records.map((h) => h.name),
      kept.map((e) => (e.type === 'directory' ? e.name + '/' : e.name)),
    );
    for (const [i, entry] of kept.entries()) {
      const header = records[i]!;
      assert.equal(header.type, entry.type);
      assert.equal(header.uid, 0);
      assert.equal(header.mtime?.getTime(), 0);
      if (entry.type === 'symlink') assert.equal(header.linkname, entry.target);
      if (entry.type === 'file') assert.equal(header.size, entry.size);
      if (entry.type !== 'symlink') assert.equal(header.mode, entry.mode || (entry.type === 'directory' ? 0o755 : 0o644));
    }
  });
});

describe('paddingAfter', () => {
  it('pads contents to the next 512-byte record', () => {
    assert.deepEqual([0, 1, 511, 512, 513, 1024].map(paddingAfter), [0, 511, 1, 0, 511, 0]);
  });
});
