import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import { IMAGE_BOM_REF, renderCycloneDx, SbomInputError, type SbomInput } from './cyclonedx.ts';

// CycloneDX's own JSON schema for 1.5, strict (no unknown properties), run by the CycloneDX
// project's library: the independent check that real tools will read the document.
const validator = new Validation.JsonStrictValidator(Spec.Version.v1dot5);

async function assertValid(document: Buffer): Promise<void> {
  const errors = await validator.validate(document.toString('utf8'));
  assert.equal(errors, null, `schema errors: ${JSON.stringify(errors, null, 2)}`);
}

function storePath(name: string): string {
  const hash = createHash('sha256').update(name).digest('hex').replace(/[eotu]/g, 'a').slice(0, 32);
  return `/nix/store/${hash}-${name}`;
}

function sri(name: string): string {
  return `sha256-${createHash('sha256').update(name).digest('base64')}`;
}

const hello = storePath('hello-2.12.1');
const glibc = storePath('glibc-2.38-44');
const libidn = storePath('libidn2-2.3.4');
const cacert = storePath('nss-cacert-3.95');
const ianaEtc = storePath('iana-etc-20231227');
const noVersion = storePath('busybox-static');

const LAYER_A = `sha256:${'a'.repeat(64)}`;
const LAYER_B = `sha256:${'b'.repeat(64)}`;
const CUSTOMISATION = `sha256:${'c'.repeat(64)}`;

/** hello (needing glibc, which needs libidn2), cacert and iana-etc, in two layers plus customisation. */
function input(): SbomInput {
  return {
    system: 'x86_64-linux',
    source: { type: 'git', location: 'https://example.org/nixpkgs.git', revision: '0123456789abcdef0123456789abcdef01234567' },
    packages: [
      { attrPath: ['hello'], drvPath: storePath('hello-2.12.1.drv'), outputs: { out: hello } },
      { attrPath: ['cacert'], drvPath: storePath('nss-cacert-3.95.drv'), outputs: { out: cacert } },
      { attrPath: ['iana-etc'], drvPath: storePath('iana-etc-20231227.drv'), outputs: { out: ianaEtc } },
    ],
    closure: [
      { path: hello, narHash: sri('hello'), narSize: 120_000, references: [glibc] },
      { path: glibc, narHash: 'sha256:0dpnhxl4nrzl63dwzm2frzkbjw9qqapzzw5j5gj844kqlvvccyl2', narSize: 30_000_000, references: [libidn] },
      { path: libidn, narHash: sri('libidn2'), narSize: 400_000, references: [] },
      { path: cacert, narHash: sri('cacert'), narSize: 500_000, references: [] },
      { path: ianaEtc, narHash: sri('iana-etc'), narSize: 600_000, references: [] },
      { path: noVersion, narHash: sri('busybox'), narSize: 1_000, references: [] },
    ],
    layers: [
      { digest: LAYER_A, storePaths: [glibc, libidn] },
      { digest: LAYER_B, storePaths: [hello, cacert, ianaEtc, noVersion] },
      { digest: CUSTOMISATION, storePaths: [] },
    ],
  };
}

interface Component {
  type: string;
  'bom-ref': string;
  name: string;
  version?: string;
  hashes: { alg: string; content: string }[];
  properties: { name: string; value: string }[];
}

function parse(document: Buffer) {
  return JSON.parse(document.toString('utf8')) as {
    bomFormat: string;
    specVersion: string;
    metadata: { timestamp?: string; component: { name: string; type: string }; properties: { name: string; value: string }[] };
    components: Component[];
    dependencies: { ref: string; dependsOn: string[] }[];
    serialNumber?: string;
  };
}

const property = (c: { properties: { name: string; value: string }[] }, name: string) => c.properties.filter((p) => p.name === name).map((p) => p.value);

describe('the CycloneDX SBOM of an image', () => {
  it('is CycloneDX 1.5 JSON that its schema accepts', async () => {
    const document = renderCycloneDx(input());
    await assertValid(document);
    const bom = parse(document);
    assert.equal(bom.bomFormat, 'CycloneDX');
    assert.equal(bom.specVersion, '1.5');
    assert.equal(bom.metadata.component.type, 'container');
  });

  it('names every store path once, with the name and version builtins.parseDrvName gives, its NAR hash and size and its layer', () => {
    const bom = parse(renderCycloneDx(input()));
    assert.deepEqual(bom.components.map((c) => c['bom-ref']).sort(), input().closure.map((p) => p.path).sort());
    const byPath = new Map(bom.components.map((c) => [c['bom-ref'], c]));
    const glibcEntry = byPath.get(glibc)!;
    assert.equal(glibcEntry.name, 'glibc');
    assert.equal(glibcEntry.version, '2.38-44');
    assert.deepEqual(glibcEntry.hashes, [{ alg: 'SHA-256', content: '827ac6f6a6781282e42bb2f0ffafc23871b9e6cf4ed4cfdb30f4674b6887f636' }]);
    assert.deepEqual(property(glibcEntry, 'nix:store-path'), [glibc]);
    assert.deepEqual(property(glibcEntry, 'nix:nar-hash'), ['sha256:0dpnhxl4nrzl63dwzm2frzkbjw9qqapzzw5j5gj844kqlvvccyl2']);
    assert.deepEqual(property(glibcEntry, 'nix:nar-size'), ['30000000']);
    assert.deepEqual(property(glibcEntry, 'nixery:layer'), [LAYER_A]);
    assert.deepEqual(property(byPath.get(hello)!, 'nixery:layer'), [LAYER_B]);
    assert.equal(byPath.get(hello)!.hashes[0]!.content, createHash('sha256').update('hello').digest('hex'));
    assert.equal(byPath.get(noVersion)!.name, 'busybox-static');
    assert.equal(byPath.get(noVersion)!.version, undefined, 'no version: none claimed');
  });

  it('marks the requested packages with their attribute path, output and derivation, and the image depends on them', () => {
    const bom = parse(renderCycloneDx(input()));
    const byPath = new Map(bom.components.map((c) => [c['bom-ref'], c]));
    const helloEntry = byPath.get(hello)!;
    assert.equal(helloEntry.type, 'application');
    assert.deepEqual(property(helloEntry, 'nix:attribute-path'), ['hello']);
    assert.deepEqual(property(helloEntry, 'nix:output'), ['out']);
    assert.deepEqual(property(helloEntry, 'nix:derivation'), [storePath('hello-2.12.1.drv')]);
    assert.equal(byPath.get(glibc)!.type, 'library');
    assert.deepEqual(property(byPath.get(glibc)!, 'nix:attribute-path'), []);
    assert.deepEqual(property(bom.metadata, 'nixery:package'), ['hello', 'cacert', 'iana-etc']);
    assert.equal(bom.metadata.component.name, 'hello/cacert/iana-etc');
    const image = bom.dependencies.find((d) => d.ref === IMAGE_BOM_REF)!;
    assert.deepEqual(image.dependsOn, [hello, cacert, ianaEtc].sort());
  });

  it('carries the closure graph as dependencies', () => {
    const bom = parse(renderCycloneDx(input()));
    const deps = new Map(bom.dependencies.map((d) => [d.ref, d.dependsOn]));
    assert.deepEqual(deps.get(hello), [glibc]);
    assert.deepEqual(deps.get(glibc), [libidn]);
    assert.deepEqual(deps.get(libidn), []);
  });

  it('names the source with its revision, the system and every layer in order', () => {
    const bom = parse(renderCycloneDx(input()));
    assert.deepEqual(property(bom.metadata, 'nixery:source:type'), ['git']);
    assert.deepEqual(property(bom.metadata, 'nixery:source:location'), ['https://example.org/nixpkgs.git']);
    assert.deepEqual(property(bom.metadata, 'nixery:source:revision'), ['0123456789abcdef0123456789abcdef01234567']);
    assert.deepEqual(property(bom.metadata, 'nixery:system'), ['x86_64-linux']);
    assert.deepEqual(property(bom.metadata, 'nixery:layer'), [LAYER_A, LAYER_B, CUSTOMISATION]);
    const unknownRevision = { ...input(), source: { type: 'channel' as const, location: 'https://example.org/nixos-unstable.tar.gz' } };
    assert.deepEqual(property(parse(renderCycloneDx(unknownRevision)).metadata, 'nixery:source:revision'), []);
  });

  it('is the same bytes for the same closure, whatever order the paths come in, and has no time or serial number', async () => {
    const first = renderCycloneDx(input());
    const shuffled = input();
    shuffled.closure.reverse();
    for (const p of shuffled.closure) p.references = [...p.references].reverse();
    assert.ok(first.equals(renderCycloneDx(shuffled)));
    const bom = parse(first);
    assert.equal(bom.metadata.timestamp, undefined);
    assert.equal(bom.serialNumber, undefined);
    const otherSource = { ...input(), source: { type: 'path' as const, location: '/srv/nixpkgs', revision: 'f'.repeat(64) } };
    assert.ok(!first.equals(renderCycloneDx(otherSource)), 'another source is another document');
    await assertValid(renderCycloneDx(otherSource));
  });

  it('refuses an input that is no one image', () => {
    const inNoLayer = input();
    inNoLayer.layers[1]!.storePaths.pop();
    assert.throws(() => renderCycloneDx(inNoLayer), (e: unknown) => e instanceof SbomInputError && /busybox-static is in no layer/.test(e.message));
    const twice = input();
    twice.layers[0]!.storePaths.push(hello);
    assert.throws(() => renderCycloneDx(twice), /is in two layers/);
    const dangling = input();
    dangling.closure[2]!.references = [storePath('elsewhere-1')];
    assert.throws(() => renderCycloneDx(dangling), /not in the closure/);
    const outside = input();
    outside.packages[0]!.outputs.man = storePath('hello-2.12.1-man');
    assert.throws(() => renderCycloneDx(outside), /output .* is not in the closure/);
  });
});
