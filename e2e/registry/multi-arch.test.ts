// One name, an image index for linux/amd64 and linux/arm64 (NIXERY_PLATFORMS): real Nix builds
// both images from the offline set (arm64 through qemu-user-static, as scripts/setup.sh sets up),
// skopeo reads the index and copies it whole (`--all`) or one platform (`--override-arch`),
// umoci unpacks the arm64 image and its programs run in a chroot under qemu, containerd's ctr
// pulls the arm64 image by `--platform`, and every platform's image has its own SBOM in the
// referrers API. A client of Docker's types only gets a manifest list, one that reads no index the
// first platform's image, and `arm64/` keeps Nixery's meaning: that one arm64 image.
// `nixery build --platforms … --push` pushes each platform's image by digest and then the index
// under the tag, here and into Debian's docker-registry (CNCF distribution).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { runOk } from '@nixery/test-support';
import { startContainerd, stopContainerd, type Containerd } from '../support/containerd.ts';
import { startDockerRegistry } from '../support/docker-registry.ts';
import { nixeryBuild } from '../support/nixery-cli.ts';
import { pullAndUnpack, runInRoot, skopeoInspectRaw } from '../support/oci-client.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const CYCLONEDX = 'application/vnd.cyclonedx+json';
const IMAGE = 'shell/hello';
const TOKEN = 'e2e-multi-arch-push-token-0123';
const BOTH = 'linux/amd64,linux/arm64';
/** ELF's e_machine for AArch64 and x86-64. */
const EM_AARCH64 = 183;
const EM_X86_64 = 62;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  platform?: { architecture: string; os: string };
}

interface Index {
  schemaVersion: number;
  mediaType: string;
  manifests: Descriptor[];
}

describe('registry: one name, an image index for linux/amd64 and linux/arm64', () => {
  let registry: RegistryProcess;
  let work: string;
  let containerd: Containerd | undefined;
  before(async () => {
    registry = await startRegistry({ env: { NIXERY_PLATFORMS: BOTH, NIX_TIMEOUT: '300', NIXERY_PUSH_TOKEN: TOKEN } });
    work = await tempDir('nixery-e2e-multi-arch-');
  });
  after(async () => {
    await stopContainerd(containerd);
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
    if (registry) await fs.rm(registry.storagePath, { recursive: true, force: true });
  });

  async function get(url: string, accept?: string): Promise<{ body: Buffer; mediaType: string; digest: string }> {
    const response = await fetch(`${registry.url}${url}`, accept === undefined ? {} : { headers: { Accept: accept } });
    const body = Buffer.from(await response.arrayBuffer());
    assert.equal(response.status, 200, `GET ${url}: ${response.status} ${body.toString().slice(0, 500)}\n${registry.logs().slice(-3000)}`);
    return { body, mediaType: response.headers.get('content-type')!, digest: response.headers.get('docker-content-digest')! };
  }
  const json = <T>(body: Buffer) => JSON.parse(body.toString()) as T;

  /** The index as skopeo reads it, with each platform's entry. */
  async function index(): Promise<{ index: Index; amd64: Descriptor; arm64: Descriptor }> {
    const raw = (await skopeoInspectRaw(registry.host, `${IMAGE}:latest`, 'manifest')) as unknown as Index;
    const entry = (architecture: string) => raw.manifests.find((m) => m.platform?.architecture === architecture)!;
    return { index: raw, amd64: entry('amd64'), arm64: entry('arm64') };
  }

  /** The ELF machine of the busybox an unpacked image's store holds. */
  async function busyboxMachine(rootfs: string): Promise<number> {
    const store = await fs.readdir(path.join(rootfs, 'nix/store'));
    const busybox = store.find((entry) => entry.endsWith('-busybox-1.35'));
    assert.ok(busybox, `no busybox in ${store.join(' ')}`);
    const header = await fs.readFile(path.join(rootfs, 'nix/store', busybox, 'bin/busybox'));
    return header.readUInt16LE(18);
  }

  it('serves skopeo, which reads OCI indexes, an index of an amd64 and an arm64 image of the same packages', async () => {
    const { index: raw, amd64, arm64 } = await index();
    assert.equal(raw.schemaVersion, 2);
    assert.equal(raw.mediaType, OCI_INDEX);
    assert.deepEqual(raw.manifests.map((m) => [m.mediaType, m.platform]), [
      [OCI_MANIFEST, { architecture: 'amd64', os: 'linux' }],
      [OCI_MANIFEST, { architecture: 'arm64', os: 'linux' }],
    ]);
    for (const [entry, architecture] of [[amd64, 'amd64'], [arm64, 'arm64']] as const) {
      const manifest = await get(`/v2/${IMAGE}/manifests/${entry.digest}`, OCI_MANIFEST);
      assert.equal(manifest.mediaType, OCI_MANIFEST);
      assert.equal(manifest.body.length, entry.size);
      const config = json<{ architecture: string; os: string }>((await get(`/v2/${IMAGE}/blobs/${json<{ config: Descriptor }>(manifest.body).config.digest}`)).body);
      assert.deepEqual([config.os, config.architecture], ['linux', architecture]);
    }
    // The index itself is stored: fetched by digest, it is the same bytes.
    const served = await get(`/v2/${IMAGE}/manifests/latest`, `${OCI_INDEX}, ${OCI_MANIFEST}`);
    const byDigest = await get(`/v2/${IMAGE}/manifests/${served.digest}`, OCI_INDEX);
    assert.deepEqual(byDigest.body, served.body);
    assert.equal(byDigest.mediaType, OCI_INDEX);
  });

  it('is copied whole by skopeo copy --all: the index and both images', async () => {
    const layout = path.join(work, 'all');
    await runOk('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${registry.host}/${IMAGE}:latest`, `oci:${layout}:all`], { timeoutMs: 300_000 });
    const top = json<Index>(await fs.readFile(path.join(layout, 'index.json')));
    assert.equal(top.manifests.length, 1);
    assert.equal(top.manifests[0]!.mediaType, OCI_INDEX);
    const blob = (digest: string) => fs.readFile(path.join(layout, 'blobs', ...digest.split(':')));
    const copied = json<Index>(await blob(top.manifests[0]!.digest));
    const { index: served } = await index();
    assert.deepEqual(copied, served);
    for (const entry of copied.manifests) {
      const manifest = json<{ config: Descriptor; layers: Descriptor[] }>(await blob(entry.digest));
      for (const d of [manifest.config, ...manifest.layers]) assert.equal((await blob(d.digest)).length, d.size, `${entry.platform?.architecture}: ${d.digest}`);
    }
  });

  it('gives skopeo --override-arch arm64 the arm64 image, whose programs run under qemu in a chroot', async () => {
    const rootfs = await pullAndUnpack(registry.host, `${IMAGE}:latest`, path.join(work, 'arm64'), { arch: 'arm64' });
    assert.equal(await busyboxMachine(rootfs), EM_AARCH64);
    assert.equal(await runInRoot(rootfs, ['/bin/hello']), 'Hello, world!\n');
    assert.equal(await runInRoot(rootfs, ['/bin/uname', '-m']), 'aarch64\n');
    assert.equal(await runInRoot(rootfs, ['/bin/bash', '-c', 'echo $((6 * 7))']), '42\n');

    const amd64 = await pullAndUnpack(registry.host, `${IMAGE}:latest`, path.join(work, 'amd64'), { arch: 'amd64' });
    assert.equal(await busyboxMachine(amd64), EM_X86_64);
    assert.equal(await runInRoot(amd64, ['/bin/uname', '-m']), 'x86_64\n');
  });

  it("is pulled for linux/arm64 by containerd's ctr --platform: the arm64 image's content, not the amd64 one's", async () => {
    containerd = await startContainerd();
    const ctr = (...args: string[]) => runOk('ctr', ['--address', containerd!.socket, ...args], { timeoutMs: 300_000 });
    const reference = `${registry.host}/${IMAGE}:latest`;
    await ctr('images', 'pull', '--plain-http', '--platform', 'linux/arm64', reference);
    const { amd64, arm64 } = await index();
    const content = new Set((await ctr('content', 'ls', '--quiet')).stdout.split('\n').filter(Boolean));
    assert.ok(content.has(arm64.digest), `the arm64 manifest ${arm64.digest} in ${[...content].join(' ')}`);
    const manifest = json<{ config: Descriptor; layers: Descriptor[] }>((await get(`/v2/${IMAGE}/manifests/${arm64.digest}`, OCI_MANIFEST)).body);
    for (const d of [manifest.config, ...manifest.layers]) assert.ok(content.has(d.digest), `arm64 blob ${d.digest}`);
    assert.ok(!content.has(amd64.digest), 'the amd64 manifest was not fetched');
    const images = (await ctr('images', 'list')).stdout;
    assert.match(images, new RegExp(`${reference.replace(/[.]/g, '\\.')}\\s+${OCI_INDEX.replace(/[.+]/g, '\\$&')}`), images);
  });

  it("lists each platform image's own SBOM in the referrers API, naming its Nix system", async () => {
    const { amd64, arm64 } = await index();
    const documents = new Set<string>();
    for (const [entry, system] of [[amd64, 'x86_64-linux'], [arm64, 'aarch64-linux']] as const) {
      const referrers = json<Index>((await get(`/v2/${IMAGE}/referrers/${entry.digest}`)).body).manifests;
      assert.deepEqual(referrers.map((r) => r.artifactType), [CYCLONEDX], `${system}: ${JSON.stringify(referrers)}`);
      const sbomManifest = json<{ subject: Descriptor; layers: Descriptor[] }>((await get(`/v2/${IMAGE}/manifests/${referrers[0]!.digest}`, OCI_MANIFEST)).body);
      assert.equal(sbomManifest.subject.digest, entry.digest);
      const bom = json<{ metadata: { properties: { name: string; value: string }[] }; components: { name: string }[] }>(
        (await get(`/v2/${IMAGE}/blobs/${sbomManifest.layers[0]!.digest}`)).body,
      );
      assert.deepEqual(bom.metadata.properties.filter((p) => p.name === 'nixery:system').map((p) => p.value), [system]);
      assert.ok(bom.components.some((c) => c.name === 'hello'));
      documents.add(sbomManifest.layers[0]!.digest);
    }
    assert.equal(documents.size, 2, 'two images, two bills of materials');
  });

  it("serves a client of Docker's types only a manifest list of Docker manifests, and one that reads no index the amd64 image", async () => {
    const list = await get(`/v2/${IMAGE}/manifests/latest`, `${DOCKER_MANIFEST}, ${DOCKER_LIST}`);
    assert.equal(list.mediaType, DOCKER_LIST);
    const parsed = json<Index>(list.body);
    assert.equal(parsed.mediaType, DOCKER_LIST);
    assert.deepEqual(parsed.manifests.map((m) => [m.mediaType, m.platform?.architecture]), [[DOCKER_MANIFEST, 'amd64'], [DOCKER_MANIFEST, 'arm64']]);
    for (const entry of parsed.manifests) assert.equal((await get(`/v2/${IMAGE}/manifests/${entry.digest}`, DOCKER_MANIFEST)).mediaType, DOCKER_MANIFEST);

    const plain = await get(`/v2/${IMAGE}/manifests/latest`);
    assert.equal(plain.mediaType, DOCKER_MANIFEST);
    assert.equal(plain.digest, parsed.manifests[0]!.digest, 'the first platform\'s image');
  });

  it('keeps Nixery\'s arm64 meta-package: arm64/shell/hello is one arm64 image, the index\'s arm64 entry', async () => {
    const single = await get(`/v2/arm64/${IMAGE}/manifests/latest`, `${OCI_INDEX}, ${OCI_MANIFEST}`);
    assert.equal(single.mediaType, OCI_MANIFEST);
    const { arm64 } = await index();
    assert.equal(single.digest, arm64.digest, 'the same packages for the same system: the same build');
  });
  describe('nixery build --platforms', () => {
    interface Built {
      digest: string;
      mediaType: string;
      platforms: { platform: string; digest: string; mediaType: string; sbomDigest: string; system: string }[];
      pushed?: { reference: string; digest: string; platforms: { platform: string; digest: string; sbomDigest: string }[] };
    }

    /** `nixery build` with storage of its own; its JSON result and its summary file. */
    async function build(args: string[]) {
      const storage = await tempDir('nixery-e2e-multi-arch-build-');
      const resultFile = path.join(storage, 'summary.json');
      try {
        const ran = await nixeryBuild([...args, '--result-file', resultFile], { STORAGE_PATH: storage, NIXERY_PUSH_TOKEN: TOKEN, NIX_TIMEOUT: '300' });
        const summary = await fs.readFile(resultFile, 'utf8').then((text) => JSON.parse(text) as Record<string, unknown>, () => undefined);
        return { ...ran, built: ran.json as unknown as Built, summary };
      } finally {
        await fs.rm(storage, { recursive: true, force: true });
      }
    }

    it('pushes each platform\'s image by digest, then the index under the tag, and reports every platform\'s digest', async () => {
      const { code, stderr, built, summary } = await build(['--packages', 'shell,hello', '--platforms', BOTH, '--push', `${registry.host}/team/hello:v1`]);
      assert.equal(code, 0, stderr);
      assert.equal(built.mediaType, OCI_INDEX);
      assert.deepEqual(built.platforms.map((p) => [p.platform, p.system, p.mediaType]), [
        ['linux/amd64', 'x86_64-linux', OCI_MANIFEST],
        ['linux/arm64', 'aarch64-linux', OCI_MANIFEST],
      ]);
      const platforms = built.platforms.map((p) => ({ platform: p.platform, digest: p.digest, sbomDigest: p.sbomDigest }));
      assert.deepEqual(built.pushed, { reference: `${registry.host}/team/hello:v1`, digest: built.digest, platforms });
      assert.equal(summary?.digest, built.digest);
      assert.equal(summary?.mediaType, OCI_INDEX);
      assert.deepEqual(summary?.platforms, platforms);
      assert.equal(summary?.pushed, `${registry.host}/team/hello:v1`);

      // The tag names the index; it names the images the build reported, each with its SBOM.
      const pushed = await get('/v2/team/hello/manifests/v1', `${OCI_INDEX}, ${OCI_MANIFEST}`);
      assert.equal(pushed.digest, built.digest);
      assert.deepEqual(json<Index>(pushed.body).manifests.map((m) => [m.platform?.architecture, m.digest]), [['amd64', platforms[0]!.digest], ['arm64', platforms[1]!.digest]]);
      for (const p of platforms) {
        const referrers = json<Index>((await get(`/v2/team/hello/referrers/${p.digest}`)).body).manifests;
        assert.ok(referrers.some((r) => r.digest === p.sbomDigest && r.artifactType === CYCLONEDX), `${p.platform}: ${JSON.stringify(referrers)}`);
      }
      // What the registry builds for the same packages on demand: the same images, the same index.
      const { index: onDemand } = await index();
      assert.deepEqual(onDemand.manifests.map((m) => m.digest), platforms.map((p) => p.digest));
      assert.equal(built.digest, (await get(`/v2/${IMAGE}/manifests/latest`, OCI_INDEX)).digest);

      const rootfs = await pullAndUnpack(registry.host, 'team/hello:v1', path.join(work, 'pushed-arm64'), { arch: 'arm64' });
      assert.equal(await runInRoot(rootfs, ['/bin/hello']), 'Hello, world!\n');
    });

    it('builds one platform\'s single image with one platform, and refuses what is no platform list', async () => {
      const arm64 = await build(['--packages', 'hello', '--platforms', 'linux/arm64']);
      assert.equal(arm64.code, 0, arm64.stderr);
      assert.equal((arm64.json as { system: string }).system, 'aarch64-linux');
      assert.equal(arm64.summary?.platforms, undefined);
      for (const args of [['--platforms', 'linux/386'], ['--platforms', 'linux/amd64,linux/amd64']]) {
        const refused = await build(['--packages', 'hello', ...args]);
        assert.equal(refused.code, 64, `${args.join(' ')}: ${refused.stderr}`);
      }
      const both = await build(['--packages', 'arm64,hello', '--platforms', BOTH]);
      assert.equal(both.code, 64);
      assert.match((both.json.error as { message: string }).message, /arm64 meta-package and --platforms/);
    });

    it('pushes the index into docker-registry (CNCF distribution), where skopeo picks the arm64 image', async () => {
      const distribution = await startDockerRegistry();
      try {
        const { code, stderr, built } = await build(['--packages', 'shell,hello', '--platforms', BOTH, '--push', `${distribution.host}/team/hello:v1`]);
        assert.equal(code, 0, `${stderr}\ndocker-registry:\n${distribution.logs().slice(-4000)}`);
        const raw = (await skopeoInspectRaw(distribution.host, 'team/hello:v1', 'manifest')) as unknown as Index;
        assert.equal(raw.mediaType, OCI_INDEX);
        assert.deepEqual(raw.manifests.map((m) => m.digest), built.platforms.map((p) => p.digest));
        // skopeo inspect names the tag's digest (the index's) and describes the image it picked.
        const { stdout } = await runOk('skopeo', ['--override-arch', 'arm64', 'inspect', '--tls-verify=false', `docker://${distribution.host}/team/hello:v1`], { timeoutMs: 300_000 });
        const inspected = JSON.parse(stdout) as { Digest: string; Architecture: string };
        assert.deepEqual([inspected.Digest, inspected.Architecture], [built.digest, 'arm64']);
        const rootfs = await pullAndUnpack(distribution.host, 'team/hello:v1', path.join(work, 'distribution-arm64'), { arch: 'arm64' });
        assert.equal(await runInRoot(rootfs, ['/bin/uname', '-m']), 'aarch64\n');
      } finally {
        await distribution.stop();
      }
    });
  });
});
