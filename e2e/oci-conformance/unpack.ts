// Unpacks the vendored conformance suite (see README.md here) to an executable file and checks
// it is the executable recorded in conformance.test.sha256.
//   node e2e/oci-conformance/unpack.ts DEST
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync } from 'node:zlib';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export async function unpackConformanceSuite(dest: string): Promise<string> {
  const executable = brotliDecompressSync(await fs.readFile(path.join(HERE, 'conformance.test.br')));
  const expected = (await fs.readFile(path.join(HERE, 'conformance.test.sha256'), 'utf8')).trim();
  const actual = createHash('sha256').update(executable).digest('hex');
  if (actual !== expected) throw new Error(`the unpacked conformance suite has SHA-256 ${actual}, not ${expected} (conformance.test.sha256)`);
  await fs.writeFile(dest, executable, { mode: 0o755 });
  return dest;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dest = process.argv[2];
  if (!dest) {
    console.error('usage: node e2e/oci-conformance/unpack.ts DEST');
    process.exit(2);
  }
  await unpackConformanceSuite(dest);
}
