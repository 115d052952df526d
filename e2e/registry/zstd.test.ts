// zstd layers (NIXERY_LAYER_COMPRESSION=zstd), with real Nix on the offline set and real clients:
// skopeo copies the image as OCI and its layers are tar+zstd that `zstd -d` turns into the tars
// the config's diff IDs name; containerd's ctr pulls and unpacks it (its snapshot chain is the
// diff IDs'); a client that reads only Docker schema 2 gets the gzip variant, whose layers gunzip
// to the same tars; with two platforms the OCI index names zstd manifests and Docker's list the
// gzip variants; and `nixery build --layer-compression zstd --push` pushes the OCI manifest.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { runOk } from '@nixery/test-support';
import { startContainerd, stopContainerd, type Containerd } from '../support/containerd.ts';
import { nixeryBuild } from '../support/nixery-cli.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const ZSTD_LAYER = 'application/vnd.oci.image.layer.v1.tar+zstd';
const GZIP_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
/** What containerd asks for: Docker's types first. */
const CONTAINERD_ACCEPT = `${DOCKER_MANIFEST}, ${DOCKER_LIST}, ${OCI_MANIFEST}, ${OCI_INDEX}, */*`;
const IMAGE = 'shell/hello';
const TOKEN = 'e2e-zstd-push-token-0123456789';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
}
interface ImageManifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}
interface Index {
  mediaType: string;
  manifests: Descriptor[];
}

const sha256 = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const json = <T>(body: Buffer) => JSON.parse(body.toString()) as T;

async function get(registry: RegistryProcess, url: string, accept?: string): Promise<{ body: Buffer; mediaType: string; digest: string }> {
  const response = await fetch(`${registry.url}${url}`, { ...(accept === undefined ? {} : { headers: { Accept: accept } }), signal: AbortSignal.timeout(600_000) });
  const body = Buffer.from(await response.arrayBuffer());
  assert.equal(response.status, 200, `GET ${url}: ${response.status} ${body.toString().slice(0, 500)}\n${registry.logs().slice(-3000)}`);
  return { body, mediaType: response.headers.get('content-type')!, digest: response.headers.get('docker-content-digest')! };
}

/** The config's diff IDs, read through the registry. */
async function diffIds(registry: RegistryProcess, name: string, config: Descriptor): Promise<string[]> {
  return json<{ rootfs: { diff_ids: string[] } }>((await get(registry, `/v2/${name}/blobs/${config.digest}`)).body).rootfs.diff_ids;
}

/** containerd's snapshot key for a stack of layers: the OCI chain ID of their diff IDs. */
function chainId(ids: string[]): string {
  return ids.slice(1).reduce((chain, id) => sha256(`${chain} ${id}`), ids[0]!);
}

describe('registry: zstd layers (NIXERY_LAYER_COMPRESSION=zstd)', () => {
  let registry: RegistryProcess;
  let work: string;
  let containerd: Containerd | undefined;
  before(async () => {
    registry = await startRegistry({ env: { NIXERY_LAYER_COMPRESSION: 'zstd', NIX_TIMEOUT: '300', NIXERY_PUSH_TOKEN: TOKEN } });
    work = await tempDir('nixery-e2e-zstd-');
  });
  after(async () => {
    await stopContainerd(containerd);
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
    if (registry) await fs.rm(registry.storagePath, { recursive: true, force: true });
  });

  it('is copied by skopeo as an OCI image whose tar+zstd layers `zstd -d` turns into the tars of its diff IDs', async () => {
    const layout = path.join(work, 'layout');
    await runOk('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/${IMAGE}:latest`, `oci:${layout}:img`], { timeoutMs: 600_000 });
    const blob = (digest: string) => path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
    const index = json<Index>(await fs.readFile(path.join(layout, 'index.json')));
    const manifest = json<ImageManifest>(await fs.readFile(blob(index.manifests[0]!.digest)));
    assert.equal(manifest.mediaType, OCI_MANIFEST);
    assert.ok(manifest.layers.length > 1, 'store paths and the customisation layer');
    assert.deepEqual(manifest.layers.map((l) => l.mediaType), manifest.layers.map(() => ZSTD_LAYER));
    const config = json<{ rootfs: { diff_ids: string[] } }>(await fs.readFile(blob(manifest.config.digest)));
    const tars: string[] = [];
    for (const [i, layer] of manifest.layers.entries()) {
      const tar = path.join(work, `layer-${i}.tar`);
      await runOk('zstd', ['-q', '-d', '-o', tar, blob(layer.digest)]);
      tars.push(sha256(await fs.readFile(tar)));
    }
    assert.deepEqual(tars, config.rootfs.diff_ids);
  });

  it("is pulled and unpacked by containerd's ctr, which asks for Docker's types first and gets the OCI manifest", async () => {
    const served = await get(registry, `/v2/${IMAGE}/manifests/latest`, CONTAINERD_ACCEPT);
    assert.equal(served.mediaType, OCI_MANIFEST);
    const manifest = json<ImageManifest>(served.body);
    containerd = await startContainerd();
    const ctr = (...args: string[]) => runOk('ctr', ['--address', containerd!.socket, ...args], { timeoutMs: 600_000 });
    const reference = `${registry.host}/${IMAGE}:latest`;
    await ctr('images', 'pull', '--plain-http', reference);
    // REF TYPE DIGEST STATUS SIZE UNPACKED: every blob fetched, and unpacked.
    const check = (await ctr('images', 'check')).stdout;
    const line = check.split('\n').find((l) => l.startsWith(`${reference} `)) ?? '';
    const columns = line.split(/\s+/).filter(Boolean);
    assert.deepEqual([columns[1], columns[2], columns[3], columns.at(-1)], [OCI_MANIFEST, served.digest, 'complete', 'true'], check);
    // Unpacked: the committed snapshot of the whole stack is keyed by the chain of the config's diff IDs.
    const snapshots = (await ctr('snapshots', 'ls')).stdout;
    assert.ok(snapshots.includes(chainId(await diffIds(registry, IMAGE, manifest.config))), snapshots);
  });

  it('gives a client that reads only Docker schema 2 the gzip variant: gzip layers that gunzip to the same tars', async () => {
    const oci = json<ImageManifest>((await get(registry, `/v2/${IMAGE}/manifests/latest`, OCI_MANIFEST)).body);
    const ids = await diffIds(registry, IMAGE, oci.config);
    for (const accept of [DOCKER_MANIFEST, undefined]) {
      const served = await get(registry, `/v2/${IMAGE}/manifests/latest`, accept);
      assert.equal(served.mediaType, DOCKER_MANIFEST, String(accept));
      assert.equal(served.digest, sha256(served.body));
      const docker = json<ImageManifest>(served.body);
      assert.equal(docker.config.digest, oci.config.digest, 'the same config');
      assert.deepEqual(docker.layers.map((l) => l.mediaType), docker.layers.map(() => GZIP_LAYER));
      const tars: string[] = [];
      for (const layer of docker.layers) {
        const bytes = (await get(registry, `/v2/${IMAGE}/blobs/${layer.digest}`)).body;
        assert.equal(sha256(bytes), layer.digest);
        tars.push(sha256(gunzipSync(bytes)));
      }
      assert.deepEqual(tars, ids);
      // Stored, so a pull by digest finds it too.
      assert.equal((await get(registry, `/v2/${IMAGE}/manifests/${served.digest}`, DOCKER_MANIFEST)).digest, served.digest);
    }
  });

  it('is pushed by `nixery build --layer-compression zstd --push` as its OCI manifest under the tag', async () => {
    const storage = await tempDir('nixery-e2e-zstd-build-');
    try {
      const { code, json: built, stderr } = await nixeryBuild(['--packages', 'shell,hello', '--layer-compression', 'zstd', '--push', `${registry.host}/team/hello:v1`], { STORAGE_PATH: storage, NIXERY_PUSH_TOKEN: TOKEN, NIX_TIMEOUT: '300' });
      assert.equal(code, 0, stderr);
      assert.equal(built.mediaType, OCI_MANIFEST);
      assert.equal(built.compression, 'zstd');
      assert.equal((built.pushed as { digest: string }).digest, built.digest);
      const pushed = await get(registry, '/v2/team/hello/manifests/v1', OCI_MANIFEST);
      assert.equal(pushed.digest, built.digest);
      const manifest = json<ImageManifest>(pushed.body);
      assert.deepEqual(manifest.layers.map((l) => l.mediaType), manifest.layers.map(() => ZSTD_LAYER));
      for (const layer of manifest.layers) assert.equal(sha256((await get(registry, `/v2/team/hello/blobs/${layer.digest}`)).body), layer.digest);
    } finally {
      await fs.rm(storage, { recursive: true, force: true });
    }
  });

  it('refuses a compression it does not know: the registry does not start, nixery build exits 64 (usage)', async () => {
    await assert.rejects(startRegistry({ env: { NIXERY_LAYER_COMPRESSION: 'xz' }, storagePath: work }), /NIXERY_LAYER_COMPRESSION.*gzip or zstd/s);
    for (const [args, env] of [[['--layer-compression', 'xz'], {}], [[], { NIXERY_LAYER_COMPRESSION: 'xz' }]] as const) {
      const refused = await nixeryBuild(['--packages', 'hello', ...args], { STORAGE_PATH: work, ...env });
      assert.equal(refused.code, 64, refused.stderr);
      const error = refused.json.error as { outcome: string; message: string };
      assert.equal(error.outcome, 'usage');
      assert.match(error.message, args.length ? /^--layer-compression: expected gzip or zstd/ : /^NIXERY_LAYER_COMPRESSION: /);
    }
  });
});

describe('registry: zstd layers for two platforms (NIXERY_PLATFORMS)', () => {
  let registry: RegistryProcess;
  before(async () => {
    registry = await startRegistry({ env: { NIXERY_LAYER_COMPRESSION: 'zstd', NIXERY_PLATFORMS: 'linux/amd64,linux/arm64', NIX_TIMEOUT: '300' } });
  });
  after(async () => {
    await registry?.stop();
    if (registry) await fs.rm(registry.storagePath, { recursive: true, force: true });
  });

  it("names zstd OCI manifests in the OCI index, and the gzip variants' Docker manifests in Docker's list", async () => {
    const oci = await get(registry, `/v2/${IMAGE}/manifests/latest`, `${OCI_INDEX}, ${OCI_MANIFEST}`);
    assert.equal(oci.mediaType, OCI_INDEX);
    const ociEntries = json<Index>(oci.body).manifests;
    assert.deepEqual(ociEntries.map((m) => [m.platform?.architecture, m.mediaType]), [['amd64', OCI_MANIFEST], ['arm64', OCI_MANIFEST]]);
    const docker = await get(registry, `/v2/${IMAGE}/manifests/latest`, `${DOCKER_LIST}, ${DOCKER_MANIFEST}`);
    assert.equal(docker.mediaType, DOCKER_LIST);
    const dockerEntries = json<Index>(docker.body).manifests;
    assert.deepEqual(dockerEntries.map((m) => [m.platform?.architecture, m.mediaType]), [['amd64', DOCKER_MANIFEST], ['arm64', DOCKER_MANIFEST]]);
    for (const [i, entry] of ociEntries.entries()) {
      const zstd = json<ImageManifest>((await get(registry, `/v2/${IMAGE}/manifests/${entry.digest}`, OCI_MANIFEST)).body);
      const gzip = json<ImageManifest>((await get(registry, `/v2/${IMAGE}/manifests/${dockerEntries[i]!.digest}`, DOCKER_MANIFEST)).body);
      assert.deepEqual(zstd.layers.map((l) => l.mediaType), zstd.layers.map(() => ZSTD_LAYER));
      assert.deepEqual(gzip.layers.map((l) => l.mediaType), gzip.layers.map(() => GZIP_LAYER));
      assert.equal(gzip.config.digest, zstd.config.digest, `${entry.platform?.architecture}: one config, one set of diff IDs`);
    }
    // Both lists are stored: pulled by digest as any client does next.
    assert.equal((await get(registry, `/v2/${IMAGE}/manifests/${docker.digest}`, DOCKER_LIST)).digest, docker.digest);
    assert.equal((await get(registry, `/v2/${IMAGE}/manifests/${oci.digest}`, OCI_INDEX)).digest, oci.digest);
  });
});
