// Tar headers for layer entries: ustar, with a PAX extended header for what
// ustar cannot hold (non-ASCII names, names that cannot be split into a
// 155-byte prefix and a 100-byte name, link targets over 100 bytes).
//
// The bytes are those tar-stream 3 writes for the same entries, so layers keep
// the digests they had when tar-stream encoded them (store-tar.test.ts pins one).
// Metadata is fixed: owner 0:0 with no names, mtime 0, so a layer depends only
// on what is in the store.

import type { LayerEntry } from './entry.ts';

export const TAR_RECORD = 512;
/** Two zero records end the archive. */
export const END_OF_ARCHIVE_SIZE = 2 * TAR_RECORD;

const SYMLINK_MODE = 0o777;
// tar-stream's defaults for a mode of 0; Nix never writes one, but the bytes stay the same.
const DEFAULT_DIR_MODE = 0o755;
const DEFAULT_FILE_MODE = 0o644;
const MODE_MASK = 0o7777;

const TYPE_FILE = 0;
const TYPE_SYMLINK = 2;
const TYPE_DIRECTORY = 5;
const TYPE_PAX = 72; // 'x'

interface Fields {
  name: string;
  mode: number;
  size: number;
  typeflag: number;
  linkname: string | undefined;
}

/** The header records of one entry (one record, or three plus the PAX data's padding). */
export function entryHeader(entry: LayerEntry): Buffer {
  const fields = entryFields(entry);
  const plain = ustarHeader(fields);
  if (plain) return plain;
  // Both records are named PaxHeader; readers take the real name and target from the PAX data.
  const pax = paxRecords(fields);
  const linkname = fields.linkname === undefined ? undefined : 'PaxHeader';
  const extended = ustarHeader({ name: 'PaxHeader', mode: fields.mode, size: pax.length, typeflag: TYPE_PAX, linkname })!;
  const real = ustarHeader({ name: 'PaxHeader', mode: fields.mode, size: fields.size, typeflag: fields.typeflag, linkname })!;
  return Buffer.concat([extended, pax, Buffer.alloc(paddingAfter(pax.length)), real]);
}

/** Zero bytes that follow `size` bytes of contents, up to the next record. */
export function paddingAfter(size: number): number {
  const over = size % TAR_RECORD;
  return over === 0 ? 0 : TAR_RECORD - over;
}

function entryFields(entry: LayerEntry): Fields {
  switch (entry.type) {
    case 'directory':
      return { name: entry.name + '/', mode: entry.mode || DEFAULT_DIR_MODE, size: 0, typeflag: TYPE_DIRECTORY, linkname: undefined };
    case 'symlink':
      return { name: entry.name, mode: SYMLINK_MODE, size: 0, typeflag: TYPE_SYMLINK, linkname: entry.target };
    case 'file':
      return { name: entry.name, mode: entry.mode || DEFAULT_FILE_MODE, size: entry.size, typeflag: TYPE_FILE, linkname: undefined };
  }
}

/** One ustar record, or undefined when the name or link target does not fit. */
function ustarHeader(fields: Fields): Buffer | undefined {
  let name = fields.name;
  // Non-ASCII names always go to PAX (tar-stream's rule; ustar has no encoding).
  if (Buffer.byteLength(name) !== name.length) return undefined;
  let prefix = '';
  while (name.length > 100) {
    const slash = name.indexOf('/');
    if (slash === -1) return undefined;
    prefix += prefix ? '/' + name.slice(0, slash) : name.slice(0, slash);
    name = name.slice(slash + 1);
  }
  if (name.length > 100 || prefix.length > 155) return undefined;
  if (fields.linkname !== undefined && Buffer.byteLength(fields.linkname) > 100) return undefined;

  const record = Buffer.alloc(TAR_RECORD);
  record.write(name, 0, 'latin1');
  record.write(octal(fields.mode & MODE_MASK, 6), 100, 'latin1');
  record.write(octal(0, 6), 108, 'latin1'); // uid
  record.write(octal(0, 6), 116, 'latin1'); // gid
  writeSize(record, fields.size);
  record.write(octal(0, 11), 136, 'latin1'); // mtime
  record[156] = 0x30 + fields.typeflag;
  if (fields.linkname) record.write(fields.linkname, 157, 'utf8');
  record.write('ustar\u000000', 257, 'latin1');
  record.write(octal(0, 6), 329, 'latin1'); // devmajor
  record.write(octal(0, 6), 337, 'latin1'); // devminor
  if (prefix) record.write(prefix, 345, 'latin1');
  record.write(octal(checksum(record), 6), 148, 'latin1');
  return record;
}

/** `digits` octal digits and a space; all sevens when the value does not fit. */
function octal(value: number, digits: number): string {
  const text = value.toString(8);
  if (text.length > digits) return '7'.repeat(digits) + ' ';
  return text.padStart(digits, '0') + ' ';
}

function writeSize(record: Buffer, size: number): void {
  if (size.toString(8).length <= 11) {
    record.write(octal(size, 11), 124, 'latin1');
    return;
  }
  // Base-256 for files of 8 GiB and more (GNU and PAX readers accept it).
  record[124] = 0x80;
  let rest = size;
  for (let i = 11; i > 0; i--) {
    record[124 + i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
}

/** The sum of the record's bytes with the checksum field counted as spaces. */
function checksum(record: Buffer): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += record[i]!;
  for (let i = 156; i < TAR_RECORD; i++) sum += record[i]!;
  return sum;
}

function paxRecords(fields: Fields): Buffer {
  let text = paxRecord(` path=${fields.name}\n`);
  if (fields.linkname) text += paxRecord(` linkpath=${fields.linkname}\n`);
  return Buffer.from(text, 'utf8');
}

/** A PAX record is prefixed with its own length in decimal, which counts its own digits. */
function paxRecord(body: string): string {
  const length = Buffer.byteLength(body);
  let digits = String(length).length;
  if (length + digits >= 10 ** digits) digits++;
  return `${length + digits}${body}`;
}
