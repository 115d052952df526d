// Every image the registry builds has an SBOM (CycloneDX 1.5 JSON) as an OCI 1.1 referrer of the
// manifest a client was served, Docker schema 2 or OCI: listed by `GET /v2/<name>/referrers/<digest>`
// (plain HTTP here, as curl would), readable by skopeo by digest, accepted by the CycloneDX
// project's own schema validator, and naming every store path the image's layers hold, as
// `nix path-info` sees them. `nixery build --push` pushes the same SBOM after the image.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import { runOk } from '@nixery/test-support';
import { nixeryBuild } from '../support/nixery-cli.ts';
import { skopeoInspectRaw } from '../support/oci-client.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const CYCLONEDX = 'application/vnd.cyclonedx+json';
const TOKEN = 'e2e-sbom-push-token-0123';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
}

interface Component {
  'bom-ref': string;
  name: string;
  version?: string;
  hashes: { alg: string; content: string }[];
  properties: { name: string; value: string }[];
}

interface Bom {
  bomFormat: string;
  specVersion: string;
  metadata: { properties: { name: string; value: string }[] };
  components: Component[];
}

const property = (c: { properties: { name: string; value: string }[] }, name: string) => c.properties.filter((p) => p.name === name).map((p) => p.value);

describe('registry: an SBOM referrer for every built image', () => {
  let registry: RegistryProcess;
  let work: string;
  before(async () => {
    registry = await startRegistry({ env: { NIXERY_PUSH_TOKEN: TOKEN } });
    work = await tempDir('nixery-e2e-sbom-');
  });
  after(async () => {
    await registry?.stop();
    await fs.rm(work, { recursive: true, force: true });
    await fs.rm(registry.storagePath, { recursive: true, force: true });
  });

  async function getJson<T>(url: string, accept?: string): Promise<{ body: T; response: Response }> {
    const response = await fetch(`${registry.url}${url}`, accept ? { headers: { Accept: accept } } : {});
    assert.equal(response.status, 200, `GET ${url}: ${response.status}`);
    return { body: (await response.json()) as T, response };
  }

  /** The image as a client with this Accept sees it, and what the referrers API lists for it under `name`. */
  async function pulled(name: string, accept: string, tag = 'latest') {
    const { body: manifest, response } = await getJson<{ mediaType: string; layers: Descriptor[] }>(`/v2/${name}/manifests/${tag}`, accept);
    const digest = response.headers.get('docker-content-digest')!;
    const listing = await fetch(`${registry.url}/v2/${name}/referrers/${digest}`);
    assert.equal(listing.status, 200);
    assert.equal(listing.headers.get('content-type'), OCI_INDEX);
    const index = (await listing.json()) as { mediaType: string; manifests: Descriptor[] };
    assert.equal(index.mediaType, OCI_INDEX);
    return { manifest, digest, size: Number(response.headers.get('content-length')), referrers: index.manifests };
  }

  it('lists one CycloneDX SBOM for the Docker and for the OCI manifest a pull was served, with the image as its subject', async () => {
    const documents = new Set<string>();
    for (const accept of [DOCKER_MANIFEST, OCI_MANIFEST]) {
      const image = await pulled('shell/hello', accept);
      assert.equal(image.manifest.mediaType, accept);
      assert.equal(image.referrers.length, 1, `${accept}: ${JSON.stringify(image.referrers)}`);
      const referrer = image.referrers[0]!;
      assert.equal(referrer.mediaType, OCI_MANIFEST);
      assert.equal(referrer.artifactType, CYCLONEDX);
      const filtered = await fetch(`${registry.url}/v2/shell/hello/referrers/${image.digest}?artifactType=${encodeURIComponent(CYCLONEDX)}`);
      assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
      assert.deepEqual(((await filtered.json()) as { manifests: Descriptor[] }).manifests, [referrer]);

      const { body: sbomManifest, response } = await getJson<{ artifactType: string; config: Descriptor; layers: Descriptor[]; subject: Descriptor }>(
        `/v2/shell/hello/manifests/${referrer.digest}`,
        OCI_MANIFEST,
      );
      assert.equal(Number(response.headers.get('content-length')), referrer.size);
      assert.equal(sbomManifest.artifactType, CYCLONEDX);
      assert.deepEqual(sbomManifest.subject, { mediaType: accept, digest: image.digest, size: image.size });
      assert.equal(sbomManifest.config.mediaType, 'application/vnd.oci.empty.v1+json');
      assert.equal(await (await fetch(`${registry.url}/v2/shell/hello/blobs/${sbomManifest.config.digest}`)).text(), '{}');
      assert.equal(sbomManifest.layers.length, 1);
      assert.equal(sbomManifest.layers[0]!.mediaType, CYCLONEDX);
      documents.add(sbomManifest.layers[0]!.digest);

      // An independent client finds it by digest.
      const raw = await skopeoInspectRaw(registry.host, `shell/hello@${referrer.digest}`, 'manifest');
      assert.equal((raw.subject as Descriptor).digest, image.digest);
    }
    assert.equal(documents.size, 1, 'both renderings refer to the same document');
  });

  it('is a document the CycloneDX schema accepts, naming every store path of the image with its layer, version, NAR hash and size', async () => {
    const image = await pulled('shell/hello', OCI_MANIFEST);
    const sbomManifest = (await getJson<{ layers: Descriptor[] }>(`/v2/shell/hello/manifests/${image.referrers[0]!.digest}`, OCI_MANIFEST)).body;
    const documentResponse = await fetch(`${registry.url}/v2/shell/hello/blobs/${sbomManifest.layers[0]!.digest}`);
    const text = await documentResponse.text();
    const errors = await new Validation.JsonStrictValidator(Spec.Version.v1dot5).validate(text);
    assert.equal(errors, null, JSON.stringify(errors));
    const bom = JSON.parse(text) as Bom;
    assert.equal(bom.specVersion, '1.5');

    // What the layers hold: each store-path layer's top-level /nix/store entries.
    const inLayers = new Map<string, string>();
    for (const layer of image.manifest.layers) {
      const file = path.join(work, layer.digest.slice('sha256:'.length));
      await fs.writeFile(file, Buffer.from(await (await fetch(`${registry.url}/v2/shell/hello/blobs/${layer.digest}`)).arrayBuffer()));
      const { stdout } = await runOk('tar', ['-tzf', file]);
      for (const entry of stdout.split('\n')) {
        const match = /^(?:\.\/)?nix\/store\/([^/]+)\/?$/.exec(entry);
        if (match) inLayers.set(`/nix/store/${match[1]}`, layer.digest);
      }
    }
    assert.ok(inLayers.size > 5, `store paths in the layers: ${[...inLayers.keys()].join(' ')}`);
    const components = new Map(bom.components.map((c) => [c['bom-ref'], c]));
    assert.deepEqual([...components.keys()].sort(), [...inLayers.keys()].sort(), 'the SBOM names exactly the store paths the image holds');
    for (const [storePath, layer] of inLayers) assert.deepEqual(property(components.get(storePath)!, 'nixery:layer'), [layer], storePath);

    // ...and exactly the closure Nix gives for the requested packages, with Nix's NAR hashes and sizes.
    const requested = bom.components.filter((c) => property(c, 'nix:attribute-path').length > 0);
    assert.deepEqual(requested.map((c) => property(c, 'nix:attribute-path')[0]).sort(), ['bashInteractive', 'cacert', 'coreutils', 'hello', 'iana-etc', 'moreutils', 'nano'].sort());
    const { stdout } = await runOk('nix', ['--extra-experimental-features', 'nix-command', 'path-info', '--json', '--recursive', ...requested.map((c) => c['bom-ref'])]);
    const info = JSON.parse(stdout) as { path: string; narHash: string; narSize: number }[];
    assert.deepEqual(info.map((p) => p.path).sort(), [...components.keys()].sort());
    for (const p of info) {
      const c = components.get(p.path)!;
      assert.deepEqual(property(c, 'nix:nar-hash'), [p.narHash]);
      assert.deepEqual(property(c, 'nix:nar-size'), [String(p.narSize)]);
      assert.equal(c.hashes[0]!.content, Buffer.from(p.narHash.slice('sha256-'.length), 'base64').toString('hex'));
    }
    const hello = [...components.values()].find((c) => c.name === 'hello')!;
    assert.match(hello.version ?? '', /^\d+\.\d+/, 'the version split from the store path name');
    assert.deepEqual(property(bom.metadata, 'nixery:source:type'), ['path'], 'the bundled package set is a path source');
    assert.match(property(bom.metadata, 'nixery:source:revision')[0] ?? '', /^[a-f0-9]{64}$/, 'its content hash');
  });

  it('is pushed by nixery build --push after the image, named in its result and summary; the same closure and source give the same SBOM', async () => {
    const storage = await tempDir('nixery-e2e-sbom-build-');
    try {
      const resultFile = path.join(storage, 'termination-log');
      const { code, json, stderr } = await nixeryBuild(['--packages', 'shell,hello', '--push', `${registry.host}/toolbox:v1`, '--result-file', resultFile], {
        STORAGE_PATH: storage,
        NIXERY_PUSH_TOKEN: TOKEN,
      });
      assert.equal(code, 0, stderr);
      assert.doesNotMatch(stderr, /no OCI-Subject/, 'the registry confirmed the SBOM as a referrer of the pushed image');
      const sbomDigest = json.sbomDigest as string;
      assert.match(sbomDigest, /^sha256:[a-f0-9]{64}$/);
      assert.equal((json.pushed as { sbomDigest: string }).sbomDigest, sbomDigest);
      assert.equal(JSON.parse(await fs.readFile(resultFile, 'utf8')).sbomDigest, sbomDigest, 'the summary the operator reads names it');

      // Built in another process into other storage, the same image has the very SBOM the registry
      // made for shell/hello: one referrer, listed once although it was both built and pushed.
      const served = await pulled('shell/hello', DOCKER_MANIFEST);
      assert.equal(served.digest, json.digest);
      const pushed = await pulled('toolbox', DOCKER_MANIFEST, 'v1');
      assert.equal(pushed.digest, json.digest);
      assert.deepEqual(pushed.referrers.map((r) => r.digest), [sbomDigest]);
      assert.deepEqual(served.referrers.map((r) => r.digest), [sbomDigest]);
    } finally {
      await fs.rm(storage, { recursive: true, force: true });
    }
  });
});
