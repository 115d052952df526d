// The switches for clusters that must not build arbitrary packages, at the service: with on-demand
// builds off only pushed tags answer, and the package policy refuses before anything is built.
// The builder here records what reaches it; the e2e suite (e2e/registry/package-policy.test.ts)
// shows the same with real Nix.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { BuildOptions, ImageBuilder } from '../builder/builder.ts';
import { recordBuiltReferrers } from '../builder/built-referrers.ts';
import { BuildQueueFullError, ClientRateLimitedError } from '../builder/errors.ts';
import type { BuildResult } from '../builder/result.ts';
import type { GzipVariants } from '../builder/gzip-variant.ts';
import { builtIndexKey, type BuiltIndexDocument } from '../builder/image-index.ts';
import { imageFromName, InvalidNameError, InvalidTagError, type ImageSpec } from '../image/name.ts';
import { PLATFORMS, type Platform } from '../image/platform.ts';
import { renderManifest } from '../oci/image.ts';
import { compilePackagePolicy, type PackagePolicy } from '../image/package-policy.ts';
import { MANIFEST_MEDIA_TYPE, MediaType } from '../oci/media-types.ts';
import { CYCLONEDX_MEDIA_TYPE } from '../sbom/cyclonedx.ts';
import { PushedTags } from '../push/tag-store.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { sha256 } from '../storage/test-support.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { ImageBuildFailedError, ManifestInvalidError, ManifestUnknownError, PackagesRefusedError } from './errors.ts';
import { Manifests } from './manifests.ts';
import { TagIndex } from './tags.ts';

const tempDir = tempDirs('nixery-manifests-');

class BuilderReached extends Error {}

async function setup(options: { onDemand?: boolean; policy?: PackagePolicy } = {}) {
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  const built: string[][] = [];
  const builder = {
    build: async (image: ImageSpec) => {
      built.push(image.packages);
      throw new BuilderReached(`builder reached for ${image.packages.join(',')}`);
    },
  } as unknown as ImageBuilder;
  const pushedTags = new PushedTags(storage);
  const manifests = new Manifests({
    storage,
    builder,
    pushedTags,
    tags: new TagIndex(storage),
    ...(options.onDemand === undefined ? {} : { onDemand: options.onDemand }),
    ...(options.policy ? { packagePolicy: compilePackagePolicy(options.policy) } : {}),
  });
  const push = async (name: string, tag: string) => {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, name, tag }));
    await storage.putBlob(body, { contentType: MediaType.ociManifest, expectedDigest: sha256(body) });
    await pushedTags.set(name, tag, { digest: sha256(body), mediaType: MediaType.ociManifest, size: body.length });
    return sha256(body);
  };
  return { manifests, built, push, storage };
}

/** Whether the request got past the service's checks to the builder. */
const reachedBuilder = (error: unknown) => error instanceof ImageBuildFailedError && error.cause instanceof BuilderReached;

describe('manifests by tag with on-demand builds off', () => {
  it('serves a pushed tag, also one whose name is a package list', async () => {
    const { manifests, built, push } = await setup({ onDemand: false });
    for (const [name, tag] of [['toolbox', 'v1'], ['shell/hello', 'latest']] as const) {
      const digest = await push(name, tag);
      const manifest = await manifests.byTag(name, tag, 'oci');
      assert.equal(manifest.digest, digest);
    }
    assert.deepEqual(built, []);
  });

  it('answers any other name with ManifestUnknownError saying on-demand builds are off, building nothing', async () => {
    const { manifests, built, push } = await setup({ onDemand: false });
    await push('toolbox', 'v1');
    for (const [name, tag] of [['hello', 'latest'], ['shell/git', 'latest'], ['toolbox', 'v2'], ['Not..A/Name', 'x']] as const) {
      await assert.rejects(manifests.byTag(name, tag, 'oci'), (error: unknown) => {
        assert.ok(error instanceof ManifestUnknownError, `${name}:${tag}: ${String(error)}`);
        assert.match(error.message, /on-demand builds are off/);
        assert.ok(error.message.includes(`${name}:${tag}`), error.message);
        return true;
      });
    }
    assert.deepEqual(built, []);
  });

  it('builds on demand by default and with on-demand builds on', async () => {
    for (const onDemand of [undefined, true]) {
      const { manifests, built } = await setup(onDemand === undefined ? {} : { onDemand });
      await assert.rejects(manifests.byTag('hello', 'latest', 'oci'), reachedBuilder);
      assert.deepEqual(built, [['cacert', 'hello', 'iana-etc']]);
    }
  });
});

describe('manifests by tag under a package policy', () => {
  const policy: PackagePolicy = { allow: ['hello', 'git', 'bashInteractive', 'coreutils', 'moreutils', 'nano', 'haskellPackages.*'], deny: ['nano', 'myTool', 'haskellPackages.pandoc'] };

  it('refuses a denied package with PackagesRefusedError naming it, before the builder', async () => {
    const { manifests, built } = await setup({ policy });
    for (const [name, refused] of [
      ['hello/mytool', [{ name: 'mytool', reason: 'denied' }]],
      ['MYTOOL', [{ name: 'MYTOOL', reason: 'denied' }]],
      ['haskellpackages.pandoc', [{ name: 'haskellpackages.pandoc', reason: 'denied' }]],
      ['htop/hello', [{ name: 'htop', reason: 'not_allowed' }]],
      ['shell/hello', [{ name: 'nano', reason: 'denied' }]],
      ['arm64/shell/htop', [{ name: 'htop', reason: 'not_allowed' }, { name: 'nano', reason: 'denied' }]],
    ] as const) {
      await assert.rejects(manifests.byTag(name, 'latest', 'oci'), (error: unknown) => {
        assert.ok(error instanceof PackagesRefusedError, `${name}: ${String(error)}`);
        assert.deepEqual(error.refused, refused, name);
        for (const r of refused) assert.ok(error.message.includes(r.name), error.message);
        return true;
      });
    }
    assert.deepEqual(built, []);
  });

  it('builds allowed packages; cacert and iana-etc, in every image, need no allow entry', async () => {
    const { manifests, built } = await setup({ policy });
    await assert.rejects(manifests.byTag('git/hello', 'latest', 'oci'), reachedBuilder);
    await assert.rejects(manifests.byTag('haskellpackages.shellcheck', 'latest', 'oci'), reachedBuilder);
    assert.deepEqual(built, [
      ['cacert', 'git', 'hello', 'iana-etc'],
      ['cacert', 'haskellpackages.shellcheck', 'iana-etc'],
    ]);
  });

  it('serves a pushed tag whatever the policy says: NixImages are declared, not requested', async () => {
    const { manifests, built, push } = await setup({ policy: { allow: ['hello'], deny: ['*'] } });
    const digest = await push('shell/htop', 'v1');
    assert.equal((await manifests.byTag('shell/htop', 'v1', 'oci')).digest, digest);
    assert.deepEqual(built, []);
  });
});

// Names, tags and manifests from hostile clients: refused as the client's fault before they reach
// storage, never as a storage error (a 500). e2e/registry/hostile-requests.test.ts sends 10,000.
describe('names, tags and pushed manifests that cannot be', () => {
  const badTags = ['a'.repeat(129), 'a+b', '..', '.', '-x', '.x', '', 'a/b', 'a%zz', 'ä'];

  it('answers a tag no manifest can have with ManifestUnknownError, before any lookup or build', async () => {
    for (const onDemand of [true, false]) {
      const { manifests, built } = await setup({ onDemand });
      for (const tag of badTags) {
        await assert.rejects(manifests.byTag('hello', tag, 'oci'), (error: unknown) => {
          assert.ok(error instanceof ManifestUnknownError, `${JSON.stringify(tag)}: ${String(error)}`);
          assert.match(error.message, /invalid tag/);
          assert.ok(error.message.length < 400, 'an over-long tag is not echoed whole');
          return true;
        });
      }
      assert.deepEqual(built, []);
    }
  });

  it('refuses a name that is no repository name with InvalidNameError', async () => {
    const { manifests } = await setup();
    for (const name of ['..', 'a/../b', 'a+b', 'A'.repeat(256)]) await assert.rejects(manifests.byTag(name, 'latest', 'oci'), InvalidNameError);
  });

  it('answers a DELETE of a tag no manifest can have with ManifestUnknownError', async () => {
    const { manifests } = await setup();
    for (const tag of badTags) await assert.rejects(manifests.deleteTag('hello', tag), ManifestUnknownError, JSON.stringify(tag));
  });

  it('refuses a push to a tag that cannot be before storing anything', async () => {
    const { manifests, storage } = await setup();
    const config = Buffer.from('{}');
    await storage.putBlob(config, { contentType: MediaType.ociConfig, expectedDigest: sha256(config) });
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { digest: sha256(config) }, layers: [] }));
    await assert.rejects(manifests.put('hello', 'a+b', body, MediaType.ociManifest), InvalidTagError);
    assert.equal(await storage.statBlob(sha256(body)), null, 'the manifest was stored');
  });

  it('refuses a pushed manifest of the wrong shape with ManifestInvalidError', async () => {
    const { manifests } = await setup();
    const digest = sha256(Buffer.from('x'));
    const bodies = [
      'null',
      '[]',
      '5',
      JSON.stringify({ mediaType: MediaType.ociManifest, config: { digest }, layers: 5 }),
      JSON.stringify({ mediaType: MediaType.ociManifest, config: { digest }, layers: [null] }),
      JSON.stringify({ mediaType: MediaType.ociManifest, config: null, layers: [] }),
      JSON.stringify({ mediaType: MediaType.ociIndex, manifests: { digest } }),
      JSON.stringify({ mediaType: MediaType.ociIndex, manifests: [null, 5] }),
    ];
    for (const body of bodies) await assert.rejects(manifests.put('hello', 'v1', Buffer.from(body), MediaType.ociManifest), ManifestInvalidError, body);
  });
});

describe('manifests by tag: who asks, and builds the builder will not start now', () => {
  async function withBuilder(build: (image: ImageSpec, options: BuildOptions) => Promise<never>, maxClosureBytes?: number) {
    const storage = new FilesystemStorage(await tempDir());
    await storage.init();
    return new Manifests({
      storage,
      builder: { build } as unknown as ImageBuilder,
      pushedTags: new PushedTags(storage),
      tags: new TagIndex(storage),
      ...(maxClosureBytes !== undefined ? { maxClosureBytes } : {}),
    });
  }

  it('hands the builder the requester and the closure limit', async () => {
    const seen: BuildOptions[] = [];
    const manifests = await withBuilder(async (_image, options) => {
      seen.push(options);
      throw new BuilderReached('x');
    }, 1234);
    const signal = new AbortController().signal;
    await assert.rejects(manifests.byTag('hello', 'latest', 'oci', { signal, client: '10.0.0.1' }), ImageBuildFailedError);
    assert.deepEqual(seen, [{ signal, client: '10.0.0.1', maxClosureBytes: 1234 }]);
  });

  it('passes the builder\'s refusals on as they are: they are no failed builds', async () => {
    for (const refusal of [new BuildQueueFullError(16, 10), new ClientRateLimitedError('10.0.0.1', 30, 2)]) {
      const manifests = await withBuilder(async () => {
        throw refusal;
      });
      await assert.rejects(manifests.byTag('hello', 'latest', 'oci', { client: '10.0.0.1' }), (error: unknown) => error === refusal);
    }
  });

  it('rejects with the signal\'s reason once the requester left', async () => {
    const controller = new AbortController();
    const reason = new Error('client gone');
    const manifests = await withBuilder(async () => {
      controller.abort(reason);
      throw reason;
    });
    await assert.rejects(manifests.byTag('hello', 'latest', 'oci', { signal: controller.signal }), (error: unknown) => error === reason);
  });
});

describe('pushed manifests: DELETE by tag and by digest, referrers', () => {
  async function pushSetup() {
    const storage = new FilesystemStorage(await tempDir());
    await storage.init();
    const tags = new TagIndex(storage, { flushIntervalMs: 3_600_000 });
    const manifests = new Manifests({ storage, builder: {} as ImageBuilder, pushedTags: new PushedTags(storage), tags });
    const blob = async (content: string, contentType: string = MediaType.ociConfig) => {
      const bytes = Buffer.from(content);
      await storage.putBlob(bytes, { contentType, expectedDigest: sha256(bytes) });
      return sha256(bytes);
    };
    const config = await blob('{"architecture":"amd64","os":"linux"}');
    /** An image manifest's bytes; `extra` adds fields such as subject, artifactType, annotations. */
    const image = (extra: Record<string, unknown> = {}, configType: string = MediaType.ociConfig) =>
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: configType, digest: config, size: 2 }, layers: [], ...extra }));
    return { storage, tags, manifests, blob, image };
  }

  it('DELETE of a tag takes it off the tags list; the manifest stays, by digest', async () => {
    const { manifests, tags, image } = await pushSetup();
    const { digest } = await manifests.put('toolbox', 'v1', image(), MediaType.ociManifest);
    await manifests.put('toolbox', 'v2', image(), MediaType.ociManifest);
    await manifests.deleteTag('toolbox', 'v1');
    assert.deepEqual(await tags.list('toolbox'), ['v2']);
    assert.equal((await manifests.byDigest(digest)).digest, digest);
    await assert.rejects(manifests.deleteTag('toolbox', 'v1'), ManifestUnknownError, 'gone once');
  });

  it('DELETE by digest removes every tag of the repository naming it, then the bytes: GET by digest is unknown', async () => {
    const { manifests, tags, storage, image } = await pushSetup();
    const { digest } = await manifests.put('toolbox', 'v1', image(), MediaType.ociManifest);
    await manifests.put('toolbox', 'latest', image(), MediaType.ociManifest);
    const other = await manifests.put('toolbox', 'other', image({ annotations: { a: 'b' } }), MediaType.ociManifest);
    await manifests.deleteByDigest('toolbox', digest);
    assert.deepEqual(await tags.list('toolbox'), ['other']);
    await assert.rejects(manifests.byDigest(digest), ManifestUnknownError);
    assert.equal(await storage.statBlob(digest), null, 'the bytes are deleted');
    assert.equal((await manifests.byDigest(other.digest)).digest, other.digest, 'other manifests stay');
    await assert.rejects(manifests.deleteByDigest('toolbox', digest), ManifestUnknownError, 'deleted once');
  });

  it('keeps the bytes while another repository holds the same manifest', async () => {
    const { manifests, image } = await pushSetup();
    const { digest } = await manifests.put('a', 'v1', image(), MediaType.ociManifest);
    await manifests.put('b', digest, image(), MediaType.ociManifest);
    await manifests.deleteByDigest('a', digest);
    assert.equal((await manifests.byDigest(digest)).digest, digest, 'b still holds it');
    await assert.rejects(manifests.deleteByDigest('a', digest), ManifestUnknownError, 'a holds it no more');
    await manifests.deleteByDigest('b', digest);
    await assert.rejects(manifests.byDigest(digest), ManifestUnknownError);
  });

  it('never deletes a manifest the repository did not push, such as a built image', async () => {
    const { manifests, blob } = await pushSetup();
    const built = await blob('{"schemaVersion":2,"built":true}', MediaType.ociManifest);
    await assert.rejects(manifests.deleteByDigest('shell/hello', built), (error: unknown) => error instanceof ManifestUnknownError && error.digest === built);
    assert.equal((await manifests.byDigest(built)).digest, built);
  });

  it('deletes by digest a manifest pushed by an earlier version: its tags are its only record', async () => {
    const { manifests, storage, tags } = await pushSetup();
    const body = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","old":true}');
    await storage.putBlob(body, { contentType: MediaType.ociManifest, expectedDigest: sha256(body) });
    await new PushedTags(storage).set('toolbox', 'old', { digest: sha256(body), mediaType: MediaType.ociManifest, size: body.length });
    await tags.recordPushed('toolbox', 'old');
    await manifests.deleteByDigest('toolbox', sha256(body));
    assert.deepEqual(await tags.list('toolbox'), []);
    await assert.rejects(manifests.byDigest(sha256(body)), ManifestUnknownError);
  });

  it('lists referrers of a subject (which need not exist) with their artifact types and annotations, filters by type, and drops deleted ones', async () => {
    const { manifests, image, blob } = await pushSetup();
    const subject = sha256('a subject that was never pushed');
    const sbom = image({ artifactType: 'application/spdx+json', subject: { mediaType: MediaType.ociManifest, digest: subject, size: 1 }, annotations: { k: 'sbom' } });
    const signature = image({ subject: { mediaType: MediaType.ociManifest, digest: subject, size: 1 }, annotations: { k: 'sig', n: 5 } }, 'application/vnd.example.signature');
    const child = await blob(image().toString(), MediaType.ociManifest);
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, digest: child, size: 1 }], subject: { digest: subject } }));
    const pushed = [
      await manifests.put('toolbox', sha256(sbom), sbom, MediaType.ociManifest),
      await manifests.put('toolbox', 'sig', signature, MediaType.ociManifest),
      await manifests.put('toolbox', sha256(index), index, MediaType.ociIndex),
    ];
    assert.deepEqual(pushed.map((p) => p.subject), [subject, subject, subject], 'each push reports the subject it was listed under');
    assert.equal((await manifests.put('toolbox', 'plain', image(), MediaType.ociManifest)).subject, undefined);
    assert.deepEqual(await manifests.referrers('toolbox', subject), [
      { mediaType: MediaType.ociManifest, digest: sha256(sbom), size: sbom.length, artifactType: 'application/spdx+json', annotations: { k: 'sbom' } },
      { mediaType: MediaType.ociManifest, digest: sha256(signature), size: signature.length, artifactType: 'application/vnd.example.signature', annotations: { k: 'sig' } },
      { mediaType: MediaType.ociIndex, digest: sha256(index), size: index.length },
    ]);
    assert.deepEqual((await manifests.referrers('toolbox', subject, 'application/spdx+json')).map((m) => m.digest), [sha256(sbom)]);
    assert.deepEqual(await manifests.referrers('toolbox', subject, 'application/none'), []);
    assert.deepEqual(await manifests.referrers('elsewhere', subject), [], 'referrers are per repository');
    assert.deepEqual(await manifests.referrers('toolbox', sha256('no referrers')), []);

    await manifests.deleteByDigest('toolbox', sha256(signature));
    assert.deepEqual((await manifests.referrers('toolbox', subject)).map((m) => m.digest), [sha256(sbom), sha256(index)]);
  });

  it('lists a built image\'s SBOM under any name, before what was pushed there, once, and filters it by type', async () => {
    const { manifests, image, storage } = await pushSetup();
    const builtImage = sha256('a built image manifest');
    const sbomManifest = image({ artifactType: CYCLONEDX_MEDIA_TYPE, subject: { mediaType: MediaType.dockerManifest, digest: builtImage, size: 1 } });
    const sbom = { mediaType: MediaType.ociManifest, digest: sha256(sbomManifest), size: sbomManifest.length, artifactType: CYCLONEDX_MEDIA_TYPE };
    await recordBuiltReferrers(storage, builtImage, [sbom]);
    assert.deepEqual(await manifests.referrers('hello', builtImage), [sbom]);
    assert.deepEqual(await manifests.referrers('shell/Hello', builtImage), [sbom]);
    const signature = image({ subject: { mediaType: MediaType.dockerManifest, digest: builtImage, size: 1 } }, 'application/vnd.example.signature');
    await manifests.put('hello', sha256(signature), signature, MediaType.ociManifest);
    // What `nixery build --push` does when it pushes here: the same SBOM manifest, pushed.
    await manifests.put('hello', sha256(sbomManifest), sbomManifest, MediaType.ociManifest);
    assert.deepEqual((await manifests.referrers('hello', builtImage)).map((m) => m.digest), [sbom.digest, sha256(signature)]);
    assert.deepEqual(await manifests.referrers('hello', builtImage, CYCLONEDX_MEDIA_TYPE), [sbom]);
    assert.deepEqual(await manifests.referrers('hello', builtImage, 'application/vnd.example.signature').then((r) => r.map((m) => m.digest)), [sha256(signature)]);
  });

  it('refuses a subject that is no descriptor with a digest', async () => {
    const { manifests, image } = await pushSetup();
    for (const subject of [5, null, {}, { digest: 'sha256:abc' }, { digest: 'md5:00' }]) {
      await assert.rejects(manifests.put('toolbox', 'v1', image({ subject }), MediaType.ociManifest), ManifestInvalidError, JSON.stringify(subject));
    }
  });
});

describe('manifests by tag with several platforms (NIXERY_PLATFORMS)', () => {
  /** A builder whose images stand for what Nix would make: one config and layer per system. */
  async function platformSetup(platforms: Platform[], fail?: (image: ImageSpec) => Error | undefined, pulls?: { recordPulled(name: string, digest: string): void }) {
    const storage = new FilesystemStorage(await tempDir());
    await storage.init();
    const builds: { system: string; packages: string[]; signal?: AbortSignal }[] = [];
    const build = async (image: ImageSpec, options: BuildOptions): Promise<BuildResult> => {
      builds.push({ system: image.arch.system, packages: image.packages, ...(options.signal ? { signal: options.signal } : {}) });
      const failure = fail?.(image);
      if (failure) throw failure;
      const config = { mediaType: MediaType.dockerConfig, digest: sha256(`config ${image.arch.system}`), size: 10 };
      const layers = [{ digest: sha256(`layer ${image.arch.system}`), diffId: sha256(`tar ${image.arch.system}`), size: 20, storePaths: [], kind: 'customisation' as const, cached: false }];
      const rendered = (format: 'docker' | 'oci') => {
        const bytes = renderManifest(format, config, layers);
        return { mediaType: MANIFEST_MEDIA_TYPE[format], digest: sha256(bytes), size: bytes.length };
      };
      const manifests = { docker: rendered('docker'), oci: rendered('oci') };
      const sbom = { referrers: { docker: { ...manifests.docker, digest: sha256(`sbom ${manifests.docker.digest}`) }, oci: { ...manifests.oci, digest: sha256(`sbom ${manifests.oci.digest}`) } } };
      return { name: image.name, tag: image.tag, packages: image.packages, system: image.arch.system, ...manifests.docker, manifests, config, layers, sbom } as unknown as BuildResult;
    };
    const manifests = new Manifests({ storage, builder: { build } as unknown as ImageBuilder, pushedTags: new PushedTags(storage), tags: new TagIndex(storage), platforms, ...(pulls ? { pulls } : {}) });
    return { manifests, builds, storage, build };
  }
  const both: Platform[] = ['linux/amd64', 'linux/arm64'];

  it('notes each pull of an on-demand image for retention: the manifest served by tag (an index and its platforms\' images), and any manifest by digest with its name', async () => {
    const noted: [string, string][] = [];
    const pulls = { recordPulled: (name: string, digest: string) => void noted.push([name, digest]) };
    const { manifests, build } = await platformSetup(both, undefined, pulls);
    const index = await manifests.byTag('shell/hello', 'latest', { image: 'oci', index: 'oci' });
    const amd64 = await build(imageFromName('hello', 'latest'), {});
    const arm64 = await build(imageFromName('arm64/hello', 'latest'), {});
    assert.deepEqual(noted, [['shell/hello', amd64.manifests.oci.digest], ['shell/hello', arm64.manifests.oci.digest], ['shell/hello', index.digest]]);
    noted.length = 0;
    const single = await manifests.byTag('arm64/hello', 'v1', 'docker');
    assert.deepEqual(noted, [['arm64/hello', single.digest]]);
    noted.length = 0;
    await manifests.byDigest(index.digest, 'shell/hello');
    await manifests.byDigest(index.digest);
    assert.deepEqual(noted, [['shell/hello', index.digest]], 'by digest with the repository name; without one, nothing');
    await assert.rejects(manifests.byDigest(sha256('no such manifest'), 'shell/hello'), ManifestUnknownError);
    assert.equal(noted.length, 1, 'a manifest not served is not noted');
  });

  it('serves a client that reads OCI indexes an image index: each platform\'s OCI manifest, built through the builder, and stores it for pulls by digest', async () => {
    const { manifests, builds, storage, build } = await platformSetup(both);
    const served = await manifests.byTag('shell/hello', 'latest', { image: 'oci', index: 'oci' });
    assert.equal(served.mediaType, MediaType.ociIndex);
    assert.equal(served.digest, sha256(served.body));
    assert.deepEqual(builds.map((b) => b.system), ['x86_64-linux', 'aarch64-linux']);
    assert.deepEqual(new Set(builds.map((b) => b.packages.join(','))).size, 1, 'the same packages for every platform');
    const index = JSON.parse(served.body.toString());
    const amd64 = await build(imageFromName('hello', 'latest'), {});
    const arm64 = await build(imageFromName('arm64/hello', 'latest'), {});
    assert.deepEqual(index, {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        { ...amd64.manifests.oci, platform: { architecture: 'amd64', os: 'linux' } },
        { ...arm64.manifests.oci, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    });
    const byDigest = await manifests.byDigest(served.digest);
    assert.deepEqual(byDigest, { body: served.body, mediaType: MediaType.ociIndex, digest: served.digest });
    // The Docker rendering is stored too, so a client of either kind can fetch the other's digest.
    const list = await manifests.byTag('shell/hello', 'latest', { image: 'docker', index: 'docker' });
    assert.equal((await storage.statBlob(list.digest))?.contentType, MediaType.dockerManifestList);
  });

  it('serves a client that reads only Docker\'s types a manifest list of Docker manifests', async () => {
    const { manifests } = await platformSetup(both);
    const served = await manifests.byTag('hello', 'latest', { image: 'docker', index: 'docker' });
    assert.equal(served.mediaType, MediaType.dockerManifestList);
    const list = JSON.parse(served.body.toString());
    assert.equal(list.mediaType, MediaType.dockerManifestList);
    assert.deepEqual(list.manifests.map((m: { mediaType: string; platform: unknown }) => [m.mediaType, m.platform]), [
      [MediaType.dockerManifest, { architecture: 'amd64', os: 'linux' }],
      [MediaType.dockerManifest, { architecture: 'arm64', os: 'linux' }],
    ]);
  });

  it('serves a client that reads no index the first platform\'s image, building nothing else', async () => {
    const { manifests, builds } = await platformSetup(['linux/arm64', 'linux/amd64']);
    const served = await manifests.byTag('hello', 'latest', 'docker');
    assert.equal(served.mediaType, MediaType.dockerManifest);
    assert.deepEqual(builds.map((b) => b.system), ['aarch64-linux']);
  });

  it('keeps Nixery\'s arm64 meta-package: one arm64 image, also for a client that reads indexes', async () => {
    const { manifests, builds } = await platformSetup(both);
    const served = await manifests.byTag('arm64/hello', 'latest', { image: 'oci', index: 'oci' });
    assert.equal(served.mediaType, MediaType.ociManifest);
    assert.deepEqual(builds.map((b) => b.system), ['aarch64-linux']);
  });

  it('with one platform serves that platform\'s image, as without the setting', async () => {
    for (const [platforms, system] of [[['linux/amd64'], 'x86_64-linux'], [['linux/arm64'], 'aarch64-linux']] as const) {
      const { manifests, builds } = await platformSetup([...platforms]);
      assert.equal((await manifests.byTag('hello', 'latest', { image: 'oci', index: 'oci' })).mediaType, MediaType.ociManifest);
      assert.deepEqual(builds.map((b) => b.system), [system]);
    }
  });

  it('fails as the first failing platform does, and stops waiting for the others', async () => {
    const { manifests, builds } = await platformSetup(both, (image) => (image.arch.system === 'aarch64-linux' ? new BuilderReached('no arm64') : undefined));
    await assert.rejects(manifests.byTag('hello', 'latest', { image: 'oci', index: 'oci' }), reachedBuilder);
    assert.equal(builds.length, 2);
    assert.ok(builds.every((b) => b.signal?.aborted), 'every platform\'s build is told that nobody waits for it any more');
    const refusal = new BuildQueueFullError(16, 10);
    const refused = await platformSetup(both, (image) => (image.arch.system === 'aarch64-linux' ? refusal : undefined));
    await assert.rejects(refused.manifests.byTag('hello', 'latest', { image: 'oci', index: 'oci' }), (error: unknown) => error === refusal);
  });
});

describe('manifests by tag with zstd layers (NIXERY_LAYER_COMPRESSION=zstd)', () => {
  /**
   * A builder of zstd images (one config and layer per system) and gzip variants that record who
   * asked; the transcoding itself is the builder's (builder.test.ts, e2e/registry/zstd.test.ts).
   */
  async function zstdSetup(platforms: Platform[] = ['linux/amd64']) {
    const storage = new FilesystemStorage(await tempDir());
    await storage.init();
    const build = async (image: ImageSpec): Promise<BuildResult> => {
      const config = { mediaType: MediaType.dockerConfig, digest: sha256(`config ${image.arch.system}`), size: 10 };
      const layers = [{ digest: sha256(`zstd layer ${image.arch.system}`), diffId: sha256(`tar ${image.arch.system}`), size: 20, storePaths: [], kind: 'customisation' as const, cached: false }];
      const bytes = renderManifest('oci', config, layers, 'zstd');
      const oci = { mediaType: MediaType.ociManifest, digest: sha256(bytes), size: bytes.length };
      const sbom = { document: { mediaType: CYCLONEDX_MEDIA_TYPE, digest: sha256('sbom'), size: 4 }, referrers: { oci: { ...oci, digest: sha256(`sbom ${oci.digest}`) } } };
      return { name: image.name, tag: image.tag, packages: image.packages, system: image.arch.system, ...oci, compression: 'zstd', manifests: { oci }, config, layers, sbom, sbomDigest: sbom.referrers.oci.digest } as unknown as BuildResult;
    };
    const variantsMade: string[] = [];
    const variantOf = (image: BuildResult) => {
      const layers = image.layers.map((l) => ({ digest: sha256(`gzip ${l.digest}`), diffId: l.diffId, size: 30 }));
      const bytes = renderManifest('docker', image.config, layers);
      const docker = { mediaType: MediaType.dockerManifest, digest: sha256(bytes), size: bytes.length };
      return { of: image.manifests.oci.digest, docker, layers, sbomReferrer: { mediaType: MediaType.ociManifest, digest: sha256(`sbom ${docker.digest}`), size: 9 } };
    };
    const gzipVariants = {
      of: async (image: BuildResult) => (variantsMade.push(image.manifests.oci.digest), variantOf(image)),
      withDockerManifest: async (image: BuildResult) => {
        variantsMade.push(image.manifests.oci.digest);
        const variant = variantOf(image);
        return { ...image, manifests: { ...image.manifests, docker: variant.docker }, sbom: { ...image.sbom, referrers: { ...image.sbom.referrers, docker: variant.sbomReferrer } } };
      },
    } as unknown as GzipVariants;
    const manifests = new Manifests({ storage, builder: { build } as unknown as ImageBuilder, pushedTags: new PushedTags(storage), tags: new TagIndex(storage), platforms, layerCompression: 'zstd', gzipVariants });
    return { manifests, storage, build, variantOf, variantsMade };
  }

  it('serves the OCI manifest of tar+zstd layers to a client that reads OCI, making no gzip variant', async () => {
    const { manifests, build, variantsMade } = await zstdSetup();
    assert.equal(manifests.layerCompression, 'zstd');
    const image = await build(imageFromName('hello', 'latest'));
    const manifest = await manifests.byTag('hello', 'latest', 'oci');
    assert.deepEqual(manifest, { body: renderManifest('oci', image.config, image.layers, 'zstd'), mediaType: MediaType.ociManifest, digest: image.digest });
    assert.deepEqual(JSON.parse(manifest.body.toString()).layers.map((l: { mediaType: string }) => l.mediaType), [MediaType.ociLayerZstd]);
    assert.deepEqual(variantsMade, []);
  });

  it('serves a client that reads only Docker schema 2 the gzip variant\'s Docker manifest', async () => {
    const { manifests, build, variantOf, variantsMade } = await zstdSetup();
    const image = await build(imageFromName('hello', 'latest'));
    const variant = variantOf(image);
    const manifest = await manifests.byTag('hello', 'latest', 'docker');
    assert.deepEqual(manifest, { body: renderManifest('docker', image.config, variant.layers), mediaType: MediaType.dockerManifest, digest: variant.docker.digest });
    assert.deepEqual(variantsMade, [image.digest]);
  });

  it('names the zstd OCI manifests in the OCI index, the gzip variants\' Docker manifests in Docker\'s list (recorded beside it)', async () => {
    const { manifests, storage, build, variantOf, variantsMade } = await zstdSetup(['linux/amd64', 'linux/arm64']);
    const images = await Promise.all(['linux/amd64', 'linux/arm64'].map((p) => build({ ...imageFromName('hello', 'latest'), arch: PLATFORMS[p as Platform] })));
    const oci = await manifests.byTag('hello', 'latest', { image: 'oci', index: 'oci' });
    assert.equal(oci.mediaType, MediaType.ociIndex);
    assert.deepEqual(JSON.parse(oci.body.toString()).manifests.map((m: { digest: string; mediaType: string }) => [m.digest, m.mediaType]), images.map((i) => [i.manifests.oci.digest, MediaType.ociManifest]));
    assert.deepEqual(variantsMade, [], 'an OCI client costs no transcoding');
    const recorded = await storage.getDocument<BuiltIndexDocument>(builtIndexKey(oci.digest));
    assert.equal(recorded?.manifests.docker, undefined, 'no Docker list yet');

    const docker = await manifests.byTag('hello', 'latest', { image: 'docker', index: 'docker' });
    assert.equal(docker.mediaType, MediaType.dockerManifestList);
    assert.deepEqual(JSON.parse(docker.body.toString()).manifests.map((m: { digest: string }) => m.digest), images.map((i) => variantOf(i).docker.digest));
    assert.deepEqual((await storage.readBlob(docker.digest)).equals(docker.body), true, 'stored, to be pulled by digest');
    assert.deepEqual((await storage.getDocument<BuiltIndexDocument>(builtIndexKey(oci.digest)))?.manifests, { oci: { mediaType: MediaType.ociIndex, digest: oci.digest, size: oci.body.length }, docker: { mediaType: MediaType.dockerManifestList, digest: docker.digest, size: docker.body.length } });
  });
});
