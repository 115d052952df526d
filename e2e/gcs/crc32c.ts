// CRC32C (Castagnoli), as Cloud Storage reports it: the 32-bit checksum big-endian, base64.
// Written independently of @google-cloud/storage's implementation so that the emulator checks
// the library rather than agreeing with it by construction.

const POLYNOMIAL = 0x82f63b78; // 0x1EDC6F41 bit-reversed: the reflected form the table method needs

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** Continues a running checksum; start with 0. */
export function crc32cUpdate(crc: number, data: Uint8Array): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export function crc32c(data: Uint8Array): number {
  return crc32cUpdate(0, data);
}

/** The form of the `crc32c` object field and the `x-goog-hash: crc32c=` header. */
export function crc32cBase64(data: Uint8Array): string {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32c(data));
  return out.toString('base64');
}
