// An image's software bill of materials as CycloneDX 1.5 JSON, from what Nix already told the
// builder: every store path of the closure (name and version as builtins.parseDrvName splits
// them, NAR hash and size, references), the package source and its revision, the packages as Nix
// resolved them, and the layer each path was packed into. Pure and byte-stable: the same closure,
// layers and source give the same bytes, so a rebuild stores no new document. There is no
// timestamp and no serial number: neither would be the same twice.
import { parseDrvName, storePathName } from '../nix/drv-name.ts';
import { nixSha256Hex } from '../nix/hash.ts';

export const CYCLONEDX_MEDIA_TYPE = 'application/vnd.cyclonedx+json';
export const CYCLONEDX_SPEC_VERSION = '1.5';

/** The image itself in the document's dependency graph; store paths are referenced by path. */
export const IMAGE_BOM_REF = 'nixery:image';

/** Where the packages came from, as the builder's source fingerprint names it. */
export interface SbomSource {
  type: 'channel' | 'git' | 'path';
  /** The channel tarball's or git repository's URL (without credentials), or the local path. */
  location: string;
  /**
   * Which state of it: a channel's version (the commit it names, else the tarball's ETag or
   * Last-Modified), the git commit, or the path's content hash. Absent when it cannot be known.
   */
  revision?: string;
}

export interface SbomStorePath {
  path: string;
  /** As Nix prints it: `sha256-<base64>` or `sha256:<nix32>`. */
  narHash: string;
  narSize: number;
  references: string[];
}

/** A requested package as Nix resolved it. */
export interface SbomPackage {
  attrPath: string[];
  drvPath: string;
  /** The outputs that went into the image, by output name. */
  outputs: Record<string, string>;
}

export interface SbomLayer {
  /** The compressed layer's digest, as the image manifest names it. */
  digest: string;
  /** Empty for the customisation layer (symlinks, /etc files; no store path). */
  storePaths: string[];
}

export interface SbomInput {
  system: string;
  source: SbomSource;
  /** In the image's order. */
  packages: SbomPackage[];
  closure: SbomStorePath[];
  /** In the image's order; every closure path is in exactly one of them. */
  layers: SbomLayer[];
}

/** The input does not describe one image: a path in no layer, a reference outside the closure. */
export class SbomInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SbomInputError';
  }
}

interface Property {
  name: string;
  value: string;
}

export function renderCycloneDx(input: SbomInput): Buffer {
  const closure = [...input.closure].sort((a, b) => compare(a.path, b.path));
  const inClosure = new Set(closure.map((p) => p.path));
  const layerOf = new Map<string, string>();
  for (const layer of input.layers) {
    for (const p of layer.storePaths) {
      if (layerOf.has(p)) throw new SbomInputError(`${p} is in two layers`);
      layerOf.set(p, layer.digest);
    }
  }
  const requested = new Map<string, { attrPath: string; output: string; drvPath: string }>();
  for (const pkg of input.packages) {
    for (const [output, p] of Object.entries(pkg.outputs)) {
      if (!inClosure.has(p)) throw new SbomInputError(`${pkg.attrPath.join('.')}'s output ${p} is not in the closure`);
      if (!requested.has(p)) requested.set(p, { attrPath: pkg.attrPath.join('.'), output, drvPath: pkg.drvPath });
    }
  }

  const components = closure.map((p) => {
    const layer = layerOf.get(p.path);
    if (layer === undefined) throw new SbomInputError(`${p.path} is in no layer`);
    const { name, version } = parseDrvName(storePathName(p.path));
    const asked = requested.get(p.path);
    const properties: Property[] = [
      { name: 'nix:store-path', value: p.path },
      { name: 'nix:nar-hash', value: p.narHash },
      { name: 'nix:nar-size', value: String(p.narSize) },
      ...(asked
        ? [
            { name: 'nix:attribute-path', value: asked.attrPath },
            { name: 'nix:output', value: asked.output },
            { name: 'nix:derivation', value: asked.drvPath },
          ]
        : []),
      { name: 'nixery:layer', value: layer },
    ];
    return {
      type: asked ? 'application' : 'library',
      'bom-ref': p.path,
      name,
      ...(version === '' ? {} : { version }),
      // The NAR is the path's canonical serialisation: its hash is the one Nix verifies.
      hashes: [{ alg: 'SHA-256', content: nixSha256Hex(p.narHash) }],
      properties,
    };
  });

  const dependencies = [
    { ref: IMAGE_BOM_REF, dependsOn: unique([...requested.keys()]) },
    ...closure.map((p) => {
      for (const r of p.references) if (!inClosure.has(r)) throw new SbomInputError(`${p.path} refers to ${r}, which is not in the closure`);
      return { ref: p.path, dependsOn: unique(p.references) };
    }),
  ];

  const metadataProperties: Property[] = [
    { name: 'nixery:system', value: input.system },
    { name: 'nixery:source:type', value: input.source.type },
    { name: 'nixery:source:location', value: input.source.location },
    ...(input.source.revision === undefined ? [] : [{ name: 'nixery:source:revision', value: input.source.revision }]),
    ...input.packages.map((p) => ({ name: 'nixery:package', value: p.attrPath.join('.') })),
    ...input.layers.map((l) => ({ name: 'nixery:layer', value: l.digest })),
  ];

  const document = {
    bomFormat: 'CycloneDX',
    specVersion: CYCLONEDX_SPEC_VERSION,
    version: 1,
    metadata: {
      lifecycles: [{ phase: 'build' }],
      tools: { components: [{ type: 'application', name: 'nixery' }] },
      component: {
        type: 'container',
        'bom-ref': IMAGE_BOM_REF,
        name: input.packages.map((p) => p.attrPath.join('.')).join('/') || 'empty',
      },
      properties: metadataProperties,
    },
    components,
    dependencies,
  };
  return Buffer.from(JSON.stringify(document));
}

/** Sorted by code unit (as store paths sort everywhere else), each once. */
function unique(items: string[]): string[] {
  return [...new Set(items)].sort(compare);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
