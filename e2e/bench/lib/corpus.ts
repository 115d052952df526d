// A store-like tree with realistic sizes and compressibility, made deterministically from what
// this machine has: ELF binaries and libraries copied from /usr, text (headers, Python, Perl)
// and incompressible data (like the compressed archives, images and fonts real closures carry).
// Laid out as <root>/nix/store/<hash>-<name>, so the registry's packer reads it as a store.
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface CorpusPackage {
  /** /nix/store/<hash>-<name> */
  storePath: string;
  name: string;
  bytes: number;
  files: number;
}

export interface Corpus {
  /** Read /nix/store/x at <root>/nix/store/x. */
  root: string;
  packages: CorpusPackage[];
  bytes: number;
  files: number;
  mix: { binary: number; text: number; random: number };
}

const VERSION = 2;
const NIX_BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';

export function storeHash(seed: string): string {
  const digest = createHash('sha256').update(seed).digest();
  let out = '';
  for (let i = 0; i < 32; i++) out += NIX_BASE32[digest[i]! % 32];
  return out;
}

// Share of the corpus per package (a few big ones, a long tail), and what each is made of.
const SHAPE: { name: string; weight: number; kind: Kind }[] = [
  { name: 'gcc-libs-13.2.0', weight: 20, kind: 'lib' },
  { name: 'python3-3.11.9', weight: 13, kind: 'interp' },
  { name: 'llvm-libs-17.0.6', weight: 10, kind: 'lib' },
  { name: 'fonts-and-icons-1.0', weight: 8, kind: 'data' },
  { name: 'perl-5.38.2', weight: 7, kind: 'interp' },
  { name: 'glibc-2.39', weight: 6, kind: 'lib' },
  { name: 'git-2.44.0', weight: 5, kind: 'tool' },
  { name: 'openssl-3.0.13', weight: 4, kind: 'lib' },
  { name: 'headers-6.8', weight: 4, kind: 'interp' },
  { name: 'curl-8.7.1', weight: 3, kind: 'tool' },
  { name: 'coreutils-9.5', weight: 3, kind: 'tool' },
  { name: 'sqlite-3.45.3', weight: 2.5, kind: 'lib' },
  { name: 'locale-archive-2.39', weight: 2.5, kind: 'data' },
  { name: 'bash-5.2p26', weight: 2, kind: 'tool' },
  { name: 'ncurses-6.4', weight: 1.5, kind: 'lib' },
  { name: 'zlib-1.3.1', weight: 1, kind: 'lib' },
  { name: 'xz-5.4.6', weight: 1, kind: 'tool' },
  { name: 'libffi-3.4.6', weight: 1, kind: 'lib' },
  { name: 'tzdata-2024a', weight: 1, kind: 'data' },
  { name: 'readline-8.2p10', weight: 0.8, kind: 'lib' },
  { name: 'gnugrep-3.11', weight: 0.7, kind: 'tool' },
  { name: 'attr-2.5.2', weight: 0.5, kind: 'lib' },
  { name: 'iana-etc-20240318', weight: 0.3, kind: 'data' },
  { name: 'cacert-3.98', weight: 0.2, kind: 'data' },
];

type Kind = 'lib' | 'interp' | 'data' | 'tool';
const MIX: Record<Kind, { binary: number; text: number; random: number }> = {
  lib: { binary: 0.8, text: 0.15, random: 0.05 },
  tool: { binary: 0.6, text: 0.3, random: 0.1 },
  interp: { binary: 0.15, text: 0.8, random: 0.05 },
  data: { binary: 0, text: 0.35, random: 0.65 },
};

interface Source {
  path: string;
  size: number;
}

/** The corpus of about `bytes` bytes under `baseDir`, generated once and reused. */
export function ensureCorpus(bytes: number, baseDir: string): Corpus {
  const final = path.join(baseDir, `corpus-${bytes}-v${VERSION}`);
  const marker = path.join(final, 'corpus.json');
  if (fs.existsSync(marker)) return JSON.parse(fs.readFileSync(marker, 'utf8')) as Corpus;
  fs.rmSync(final, { recursive: true, force: true });
  // Generated aside and renamed into place, so concurrent runs never see half a corpus.
  const dir = `${final}.tmp-${process.pid}`;
  fs.rmSync(dir, { recursive: true, force: true });
  const store = path.join(dir, 'nix', 'store');
  fs.mkdirSync(store, { recursive: true });

  const totalWeight = SHAPE.reduce((s, p) => s + p.weight, 0);
  const binaries = new Pool(collect(['/usr/lib/x86_64-linux-gnu', '/usr/bin', '/usr/sbin', '/usr/libexec', '/usr/lib/gcc'], isElf, 8 << 10, 24 << 20, bytes * 0.6));
  const texts = new Pool(collect(['/usr/include', '/usr/lib/python3.11', '/usr/lib/python3', '/usr/share/perl', '/usr/share/perl5'], isText, 256, 2 << 20, bytes * 0.5));
  if (binaries.empty() || texts.empty()) throw new Error('found no binaries or text files under /usr to build the corpus from');
  const random = new RandomSource(`corpus-${bytes}`);

  const packages: CorpusPackage[] = [];
  const mixTotal = { binary: 0, text: 0, random: 0 };
  let files = 0;
  for (const shape of SHAPE) {
    const quota = Math.max(64 << 10, Math.round((bytes * shape.weight) / totalWeight));
    const hashName = `${storeHash(`${shape.name}-${bytes}`)}-${shape.name}`;
    const pkgDir = path.join(store, hashName);
    const writer = new PackageWriter(pkgDir, shape.name);
    const mix = MIX[shape.kind];
    const want = { binary: quota * mix.binary, text: quota * mix.text, random: quota * mix.random };
    let got = { binary: 0, text: 0, random: 0 };
    for (;;) {
      // Fill whichever share is furthest behind, so files of the three kinds interleave.
      const lag = (k: keyof typeof want) => (want[k] === 0 ? -Infinity : (want[k] - got[k]) / want[k]);
      const kind = (['binary', 'text', 'random'] as const).reduce((a, b) => (lag(b) > lag(a) ? b : a));
      if (lag(kind) <= 0) break;
      const remaining = want[kind] - got[kind];
      let size: number;
      if (kind === 'binary') size = writer.binary(binaries.next());
      else if (kind === 'text') size = writer.text(texts.next());
      else size = writer.random(random, Math.round(Math.max(512, Math.min(remaining, random.logUniform(16 << 10, 4 << 20)))));
      got = { ...got, [kind]: got[kind] + size };
    }
    writer.finish();
    mixTotal.binary += got.binary;
    mixTotal.text += got.text;
    mixTotal.random += got.random;
    const pkgBytes = got.binary + got.text + got.random;
    packages.push({ storePath: `/nix/store/${hashName}`, name: shape.name, bytes: pkgBytes, files: writer.files });
    files += writer.files;
  }
  const total = mixTotal.binary + mixTotal.text + mixTotal.random;
  const corpus: Corpus = {
    root: final,
    packages,
    bytes: total,
    files,
    mix: { binary: round2(mixTotal.binary / total), text: round2(mixTotal.text / total), random: round2(mixTotal.random / total) },
  };
  fs.writeFileSync(path.join(dir, 'corpus.json'), JSON.stringify(corpus, null, 1));
  return publish(dir, final, 'corpus.json') as Corpus;
}

/**
 * A single-layer tree of at least `bytes` bytes made of hard-linked copies of the corpus
 * packages (no extra disk space), for measuring memory while packing a big layer.
 */
export function ensureBigTree(corpus: Corpus, bytes: number, baseDir: string): { root: string; storePaths: string[]; bytes: number } {
  const final = path.join(baseDir, `big-${bytes}-from-${path.basename(corpus.root)}`);
  const marker = path.join(final, 'tree.json');
  if (fs.existsSync(marker)) return JSON.parse(fs.readFileSync(marker, 'utf8')) as { root: string; storePaths: string[]; bytes: number };
  fs.rmSync(final, { recursive: true, force: true });
  const dir = `${final}.tmp-${process.pid}`;
  fs.rmSync(dir, { recursive: true, force: true });
  const store = path.join(dir, 'nix', 'store');
  fs.mkdirSync(store, { recursive: true });
  const storePaths: string[] = [];
  let total = 0;
  for (let copy = 0; total < bytes; copy++) {
    for (const pkg of corpus.packages) {
      if (total >= bytes) break;
      const name = `${storeHash(`${pkg.name}-copy-${copy}`)}-${pkg.name}`;
      linkTree(path.join(corpus.root, pkg.storePath), path.join(store, name));
      storePaths.push(`/nix/store/${name}`);
      total += pkg.bytes;
    }
  }
  const tree = { root: final, storePaths, bytes: total };
  fs.writeFileSync(path.join(dir, 'tree.json'), JSON.stringify(tree));
  return publish(dir, final, 'tree.json') as { root: string; storePaths: string[]; bytes: number };
}

/** Renames a finished tree into place; if another run got there first, uses theirs. */
function publish(dir: string, final: string, markerName: string): unknown {
  try {
    fs.renameSync(dir, final);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return JSON.parse(fs.readFileSync(path.join(final, markerName), 'utf8'));
}

function linkTree(from: string, to: string): void {
  const stat = fs.lstatSync(from);
  if (stat.isDirectory()) {
    fs.mkdirSync(to);
    for (const name of fs.readdirSync(from)) linkTree(path.join(from, name), path.join(to, name));
  } else if (stat.isSymbolicLink()) {
    fs.symlinkSync(fs.readlinkSync(from), to);
  } else {
    fs.linkSync(from, to);
  }
}

class PackageWriter {
  files = 0;
  private readonly dir: string;
  private readonly name: string;
  private counters = { bin: 0, lib: 0, text: 0, data: 0 };
  constructor(dir: string, name: string) {
    this.dir = dir;
    this.name = name.replace(/-[0-9].*$/, '');
    fs.mkdirSync(dir, { recursive: true });
  }

  binary(src: Source): number {
    const base = safeName(path.basename(src.path));
    const isLib = /\.so(\.|$)/.test(base);
    const index = isLib ? this.counters.lib++ : this.counters.bin++;
    const rel = isLib ? path.join('lib', this.sub(index), base) : path.join('bin', this.sub(index), base);
    const target = this.place(rel);
    fs.copyFileSync(src.path, target);
    fs.chmodSync(target, 0o555);
    if (isLib) {
      // Libraries come with their soname links, as in the store.
      const link = base.replace(/\.so\..*$/, '.so');
      const linkPath = path.join(path.dirname(target), link);
      if (link !== base && !fs.existsSync(linkPath)) fs.symlinkSync(base, linkPath);
    }
    this.files++;
    return src.size;
  }

  text(src: Source): number {
    const index = this.counters.text++;
    const base = safeName(path.basename(src.path));
    const rel = path.join('share', this.name, this.sub(index), base);
    const target = this.place(rel);
    fs.copyFileSync(src.path, target);
    fs.chmodSync(target, 0o444);
    this.files++;
    return src.size;
  }

  random(source: RandomSource, size: number): number {
    const index = this.counters.data++;
    const rel = path.join('share', this.name, 'data', `blob-${index}.bin`);
    const target = this.place(rel);
    fs.writeFileSync(target, source.bytes(size), { mode: 0o444 });
    this.files++;
    return size;
  }

  finish(): void {
    // Every package has the usual small metadata too.
    const support = this.place(path.join('nix-support', 'propagated-build-inputs'));
    fs.writeFileSync(support, '', { mode: 0o444 });
  }

  /** Up to 48 entries per directory, in nested directories like real trees. */
  private sub(index: number): string {
    return `d${Math.floor(index / 48)}`;
  }

  private place(rel: string): string {
    let target = path.join(this.dir, rel);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    for (let n = 1; fs.existsSync(target); n++) target = path.join(this.dir, `${rel}.${n}`);
    return target;
  }
}

function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._+-]/g, '_') || 'file';
}

class Pool {
  private readonly sources: Source[];
  private index = 0;
  constructor(sources: Source[]) {
    this.sources = sources;
  }
  empty(): boolean {
    return this.sources.length === 0;
  }
  next(): Source {
    const s = this.sources[this.index % this.sources.length]!;
    this.index++;
    return s;
  }
}

/** Regular files under `roots` in sorted order, until `budget` bytes are found. */
function collect(roots: string[], accept: (file: string) => boolean, min: number, max: number, budget: number): Source[] {
  const out: Source[] = [];
  let total = 0;
  const seen = new Set<string>();
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (total >= budget) return;
      const file = path.join(dir, name);
      let stat: fs.Stats;
      try {
        stat = fs.lstatSync(file);
      } catch {
        continue;
      }
      if (stat.isDirectory()) walk(file);
      else if (stat.isFile() && stat.size >= min && stat.size <= max && !seen.has(`${stat.dev}:${stat.ino}`) && accept(file)) {
        seen.add(`${stat.dev}:${stat.ino}`);
        out.push({ path: file, size: stat.size });
        total += stat.size;
      }
    }
  };
  for (const root of roots) walk(root);
  return out;
}

function head(file: string, n: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const read = fs.readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, read);
  } catch {
    return Buffer.alloc(0);
  } finally {
    fs.closeSync(fd);
  }
}

function isElf(file: string): boolean {
  try {
    const h = head(file, 4);
    return h.length === 4 && h[0] === 0x7f && h[1] === 0x45 && h[2] === 0x4c && h[3] === 0x46;
  } catch {
    return false;
  }
}

function isText(file: string): boolean {
  try {
    return !head(file, 1024).includes(0);
  } catch {
    return false;
  }
}

/** Deterministic incompressible bytes (AES-CTR keystream) and sizes. */
class RandomSource {
  private readonly seed: Buffer;
  private counter = 0;
  private state: number;
  constructor(seed: string) {
    this.seed = createHash('sha256').update(seed).digest();
    this.state = this.seed.readUInt32LE(0) || 1;
  }
  bytes(size: number): Buffer {
    const iv = Buffer.alloc(16);
    iv.writeUInt32BE(this.counter++, 0);
    const cipher = createCipheriv('aes-128-ctr', this.seed.subarray(0, 16), iv);
    return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
  }
  /** A size between min and max, log-uniformly distributed. */
  logUniform(min: number, max: number): number {
    this.state ^= this.state << 13;
    this.state ^= this.state >>> 17;
    this.state ^= this.state << 5;
    const u = (this.state >>> 0) / 0xffffffff;
    return Math.round(Math.exp(Math.log(min) + u * (Math.log(max) - Math.log(min))));
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

export interface BigPath {
  /** Read /nix/store/x at <root>/nix/store/x. */
  root: string;
  /** /nix/store/<hash>-<name>: the one store path. */
  storePath: string;
  bytes: number;
  files: number;
  /** Bytes of Python sources (and the rest of its library tree) and of shared libraries. */
  textBytes: number;
  libraryBytes: number;
  libraries: number;
}

const BIG_PATH_VERSION = 1;
// The issue's closure: Python's standard library and its shared libraries in one store path
// (489 MB; 150 libraries, which make up most of the bytes).
const BIG_PATH_TEXT_SHARE = 0.4;

/**
 * One store path of about `bytes` bytes like a Python environment: Python's library tree from
 * /usr (thousands of small .py files, copied with their directories; copied again under
 * site-packages/ until its share is filled) and shared libraries of 100 KB–24 MB from
 * /usr/lib/x86_64-linux-gnu in lib/. Deterministic for a machine, generated once and reused.
 */
export function ensureBigPath(bytes: number, baseDir: string): BigPath {
  const final = path.join(baseDir, `bigpath-${bytes}-v${BIG_PATH_VERSION}`);
  const marker = path.join(final, 'bigpath.json');
  if (fs.existsSync(marker)) return JSON.parse(fs.readFileSync(marker, 'utf8')) as BigPath;
  fs.rmSync(final, { recursive: true, force: true });
  const dir = `${final}.tmp-${process.pid}`;
  fs.rmSync(dir, { recursive: true, force: true });
  const name = 'python3-env-3.11.9';
  const hashName = `${storeHash(`${name}-${bytes}`)}-${name}`;
  const pkgDir = path.join(dir, 'nix', 'store', hashName);

  const textBudget = bytes * BIG_PATH_TEXT_SHARE;
  const pythonRoots = ['/usr/lib/python3.11', '/usr/lib/python3'].filter((r) => fs.existsSync(r));
  const python = pythonRoots.flatMap((r) => collect([r], () => true, 0, 24 << 20, Infinity).map((s) => ({ ...s, rel: path.relative(r, s.path), root: path.basename(r) })));
  const libraries = collect(['/usr/lib/x86_64-linux-gnu'], (f) => /\.so(\.|$)/.test(path.basename(f)) && isElf(f), 100 << 10, 24 << 20, Infinity);
  if (python.length === 0 || libraries.length === 0) throw new Error('found no Python library tree or shared libraries under /usr to build the big store path from');

  let textBytes = 0;
  let files = 0;
  for (let copy = 0, i = 0; textBytes < textBudget; i++) {
    if (i === python.length) (i = 0), copy++;
    const src = python[i]!;
    // The first copy is the standard library, the next ones stand in for installed packages.
    const base = copy === 0 ? path.join('lib', src.root) : path.join('lib', 'python3.11', 'site-packages', `vendored${copy}`, src.root);
    const target = path.join(pkgDir, base, src.rel);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.copyFileSync(src.path, target);
    fs.chmodSync(target, 0o444);
    textBytes += src.size;
    files++;
  }
  let libraryBytes = 0;
  let libraryCount = 0;
  for (let copy = 0, i = 0; textBytes + libraryBytes < bytes; i++) {
    if (i === libraries.length) (i = 0), copy++;
    const src = libraries[i]!;
    const base = path.basename(src.path);
    const target = path.join(pkgDir, copy === 0 ? 'lib' : path.join('lib', `vendored${copy}`), base);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.copyFileSync(src.path, target);
    fs.chmodSync(target, 0o555);
    const link = base.replace(/\.so\..*$/, '.so');
    const linkPath = path.join(path.dirname(target), link);
    if (link !== base && !fs.existsSync(linkPath)) fs.symlinkSync(base, linkPath);
    libraryBytes += src.size;
    libraryCount++;
    files++;
  }
  const big: BigPath = { root: final, storePath: `/nix/store/${hashName}`, bytes: textBytes + libraryBytes, files, textBytes, libraryBytes, libraries: libraryCount };
  fs.writeFileSync(path.join(dir, 'bigpath.json'), JSON.stringify(big, null, 1));
  return publish(dir, final, 'bigpath.json') as BigPath;
}
