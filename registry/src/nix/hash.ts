// Nix's ways of printing a SHA-256 hash, read back to hex: `nix path-info --json` prints a NAR
// hash as SRI (`sha256-<base64>`, Nix 2.4 and later) or as `sha256:<nix32>` (older Nix, and
// `nix-store --query --hash`); `sha256:<hex>` is accepted too. Pure.

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';
const SHA256_BYTES = 32;
/** Characters of a SHA-256 hash in Nix's base-32: ceil(256 / 5). */
const SHA256_NIX32_CHARS = 52;

export class InvalidNixHashError extends Error {
  readonly hash: string;
  constructor(hash: string) {
    super(`not a SHA-256 hash as Nix prints one: ${JSON.stringify(hash)}`);
    this.name = 'InvalidNixHashError';
    this.hash = hash;
  }
}

/** The 64 hex digits of a Nix SHA-256 hash in any of its printed forms; InvalidNixHashError otherwise. */
export function nixSha256Hex(hash: string): string {
  if (hash.startsWith('sha256-')) {
    const bytes = Buffer.from(hash.slice('sha256-'.length), 'base64');
    if (bytes.length !== SHA256_BYTES || bytes.toString('base64') !== hash.slice('sha256-'.length)) throw new InvalidNixHashError(hash);
    return bytes.toString('hex');
  }
  if (hash.startsWith('sha256:')) {
    const rest = hash.slice('sha256:'.length);
    if (/^[0-9a-f]{64}$/.test(rest)) return rest;
    if (rest.length === SHA256_NIX32_CHARS) return decodeNix32(rest, hash).toString('hex');
  }
  throw new InvalidNixHashError(hash);
}

/** Nix's base-32 (libutil's `parseHash32`): the last character holds the lowest five bits. */
function decodeNix32(text: string, hash: string): Buffer {
  const bytes = Buffer.alloc(SHA256_BYTES);
  for (let n = 0; n < text.length; n++) {
    const digit = NIX32.indexOf(text[text.length - n - 1]!);
    if (digit < 0) throw new InvalidNixHashError(hash);
    const bit = n * 5;
    const i = bit >> 3;
    const j = bit & 7;
    bytes[i] = bytes[i]! | ((digit << j) & 0xff);
    const carry = digit >> (8 - j);
    if (i < SHA256_BYTES - 1) bytes[i + 1] = bytes[i + 1]! | carry;
    else if (carry) throw new InvalidNixHashError(hash);
  }
  return bytes;
}
