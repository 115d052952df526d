import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getCondition } from '../api/conditions.ts';
import type { NixeryInstance } from '../api/types.ts';
import { testImage as image, testInstance } from '../test-support/fixtures.ts';
import { conflictingClaim } from './conflict.ts';
import { buildHash, buildJobName, desiredBuildJob, desiredBuildServiceAccount } from './desired-job.ts';
import { computeImageStatus } from './status.ts';

const instance: NixeryInstance = testInstance({}, { uid: 'i-uid' });

describe('the build Job of a NixImage', () => {
  it('runs nixery build with the instance image, pushing <name>:<tag> to the instance endpoint', () => {
    const job = desiredBuildJob(image({ config: { entrypoint: ['/bin/hello'] } }), instance);
    const container = job.spec!.template.spec!.containers[0]!;
    assert.equal(container.image, instance.spec.image);
    assert.deepEqual(container.args, [
      'build', '--packages', 'git,htop,hello', '--tag', 'latest',
      '--push', 'nixery.team-a.svc.cluster.local:5000/toolbox:v1',
      '--push-identity-token-file', '/var/run/secrets/nixery/identity/token',
      '--result-file', '/dev/termination-log',
      '--config-json', '{"entrypoint":["/bin/hello"]}',
    ]);
    assert.equal(container.terminationMessagePath, '/dev/termination-log');
    assert.equal(job.spec!.template.spec!.restartPolicy, 'Never');
    assert.equal(job.metadata!.ownerReferences![0]!.kind, 'NixImage');
    assert.equal(job.metadata!.labels!['nixery.dev/image'], 'toolbox');
    const env = Object.fromEntries(container.env!.map((e) => [e.name, e.value]));
    assert.equal(env.NIXERY_STORAGE_BACKEND, 'filesystem');
  });

  it('runs under the restricted Pod Security profile as the image\'s non-root user (root writable: Nix adds the build to /nix/store)', () => {
    const pod = desiredBuildJob(image(), instance).spec!.template.spec!;
    assert.equal(pod.securityContext!.runAsUser, 10000);
    assert.equal(pod.containers[0]!.securityContext!.readOnlyRootFilesystem, false);
    assert.deepEqual(pod.containers[0]!.securityContext!.capabilities, { drop: ['ALL'] });
  });

  it('bounds the build: a deadline, and requests and limits (ephemeral storage included) from spec.build, else the registry\'s, else defaults', () => {
    const job = desiredBuildJob(image(), instance);
    assert.equal(job.spec!.activeDeadlineSeconds, 3600);
    assert.equal(job.spec!.ttlSecondsAfterFinished, 600);
    assert.deepEqual(job.spec!.template.spec!.containers[0]!.resources, {
      requests: { cpu: '250m', memory: '512Mi', 'ephemeral-storage': '2Gi' },
      limits: { memory: '4Gi', 'ephemeral-storage': '20Gi' },
    });
    const registryOwn = { limits: { memory: '6Gi' } };
    assert.deepEqual(desiredBuildJob(image(), testInstance({ resources: registryOwn })).spec!.template.spec!.containers[0]!.resources, registryOwn);
    const buildOwn = { requests: { cpu: '4' }, limits: { 'ephemeral-storage': '50Gi' } };
    const tuned = desiredBuildJob(image(), testInstance({ resources: registryOwn, build: { activeDeadlineSeconds: 120, resources: buildOwn } }));
    assert.deepEqual(tuned.spec!.template.spec!.containers[0]!.resources, buildOwn);
    assert.equal(tuned.spec!.activeDeadlineSeconds, 120);
  });

  it('pushes as its own ServiceAccount with a short-lived projected token for the instance’s audience, and no static secret', () => {
    const job = desiredBuildJob(image(), instance);
    const pod = job.spec!.template.spec!;
    const container = pod.containers[0]!;
    assert.equal(pod.serviceAccountName, 'nixery-build-toolbox');
    assert.equal(pod.automountServiceAccountToken, false, 'the build never talks to the API server');
    assert.deepEqual(pod.volumes, [
      { name: 'build-storage', emptyDir: {} },
      { name: 'identity', projected: { sources: [{ serviceAccountToken: { audience: 'nixery.dev/team-a/nixery', expirationSeconds: 600, path: 'token' } }] } },
    ]);
    assert.ok(container.volumeMounts!.some((m) => m.name === 'identity' && m.mountPath === '/var/run/secrets/nixery/identity'));
    assert.ok(!container.env!.some((e) => e.name === 'NIXERY_PUSH_TOKEN_FILE' || e.name === 'NIXERY_PUSH_TOKEN'));
    assert.ok(!JSON.stringify(pod).includes('push-token'));
  });

  it('pushes over HTTPS trusting the CA bundle ConfigMap when the instance has TLS', () => {
    const tls = testInstance({ tls: { selfSigned: {} } }, { uid: 'i-uid' });
    const job = desiredBuildJob(image(), tls);
    const pod = job.spec!.template.spec!;
    const args = pod.containers[0]!.args!;
    const option = (name: string) => args[args.indexOf(name) + 1];
    assert.equal(option('--push-scheme'), 'https');
    assert.equal(option('--push-ca-file'), '/var/run/secrets/nixery/ca/ca.crt');
    assert.equal(option('--push-identity-token-file'), '/var/run/secrets/nixery/identity/token');
    assert.ok(!desiredBuildJob(image(), instance).spec!.template.spec!.containers[0]!.args!.includes('--push-scheme'), 'plain HTTP without TLS');
    assert.deepEqual(pod.volumes!.at(-1), { name: 'registry-ca', configMap: { name: 'nixery-ca-bundle' } });
    assert.ok(pod.containers[0]!.volumeMounts!.some((m) => m.name === 'registry-ca' && m.mountPath === '/var/run/secrets/nixery/ca' && m.readOnly));
    assert.notEqual(job.metadata!.name, desiredBuildJob(image(), instance).metadata!.name, 'turning TLS on is a new build');
  });

  it('runs as a ServiceAccount of its own, owned by the NixImage', () => {
    const account = desiredBuildServiceAccount(image(), instance);
    assert.equal(account.metadata!.name, 'nixery-build-toolbox');
    assert.equal(account.metadata!.namespace, 'team-a');
    assert.deepEqual(account.metadata!.ownerReferences, [
      { apiVersion: 'nixery.dev/v1alpha1', kind: 'NixImage', name: 'toolbox', uid: 'img-uid', controller: true, blockOwnerDeletion: true },
    ]);
    assert.equal(account.automountServiceAccountToken, false);
  });

  it('builds from the image source, else the instance source, with the git ref as the build tag', () => {
    const withInstanceGit = { ...instance, spec: { ...instance.spec, packageSource: { git: { url: 'https://e.org/p.git', ref: 'main' } } } };
    const fromInstance = desiredBuildJob(image(), withInstanceGit).spec!.template.spec!.containers[0]!;
    assert.equal(fromInstance.args![4], 'main');
    assert.ok(fromInstance.env!.some((e) => e.name === 'NIXERY_PKGS_REPO' && e.value === 'https://e.org/p.git'));
    const pinned = desiredBuildJob(image({ packageSource: { git: { url: 'https://e.org/p.git', ref: 'a'.repeat(40) } } }), instance);
    assert.equal(pinned.spec!.template.spec!.containers[0]!.args![4], 'a'.repeat(40));
  });

  it('builds a NixImage whatever the instance says about on-demand builds and packages: NixImages are declared', () => {
    const locked = testInstance({ onDemand: false, packages: { allow: ['hello'], deny: ['git', 'htop'] } }, { uid: 'i-uid' });
    const job = desiredBuildJob(image(), locked);
    const env = job.spec!.template.spec!.containers[0]!.env!.map((e) => e.name);
    for (const name of ['NIXERY_ON_DEMAND', 'NIXERY_ALLOWED_PACKAGES', 'NIXERY_DENIED_PACKAGES']) assert.ok(!env.includes(name), name);
    assert.deepEqual(job, desiredBuildJob(image(), instance), 'the same Job, under the same name');
  });

  it('builds for spec.platforms with --platforms, a new build; unset, for the node\'s architecture as before', () => {
    const job = desiredBuildJob(image({ platforms: ['linux/amd64', 'linux/arm64'] }), instance);
    const args = job.spec!.template.spec!.containers[0]!.args!;
    assert.deepEqual(args.slice(args.indexOf('--platforms'), args.indexOf('--platforms') + 2), ['--platforms', 'linux/amd64,linux/arm64']);
    assert.ok(!desiredBuildJob(image(), instance).spec!.template.spec!.containers[0]!.args!.includes('--platforms'));
    assert.notEqual(job.metadata!.name, desiredBuildJob(image(), instance).metadata!.name);
    assert.notEqual(job.metadata!.name, desiredBuildJob(image({ platforms: ['linux/arm64'] }), instance).metadata!.name);
  });

  it('builds zstd layers when the image or, failing that, its instance asks for them; a new Job, gzip Jobs keep their names', () => {
    const compression = (job: ReturnType<typeof desiredBuildJob>) => job.spec!.template.spec!.containers[0]!.env!.find((e) => e.name === 'NIXERY_LAYER_COMPRESSION')?.value;
    const zstdInstance = testInstance({ layerCompression: 'zstd' }, { uid: 'i-uid' });
    assert.equal(compression(desiredBuildJob(image(), zstdInstance)), 'zstd', "the instance's choice");
    assert.equal(compression(desiredBuildJob(image({ layerCompression: 'zstd' }), instance)), 'zstd', "the image's own");
    assert.equal(compression(desiredBuildJob(image({ layerCompression: 'gzip' }), zstdInstance)), undefined, "the image's gzip wins over the instance's zstd: the registry's default");
    assert.equal(compression(desiredBuildJob(image(), instance)), undefined);

    const gzipJob = desiredBuildJob(image(), instance);
    assert.deepEqual(desiredBuildJob(image({ layerCompression: 'gzip' }), instance), gzipJob, 'gzip said out loud is the same Job');
    assert.deepEqual(desiredBuildJob(image({ layerCompression: 'gzip' }), zstdInstance).metadata!.name, gzipJob.metadata!.name);
    assert.notEqual(desiredBuildJob(image(), zstdInstance).metadata!.name, gzipJob.metadata!.name, 'other layers, another build');
    assert.equal(desiredBuildJob(image(), zstdInstance).metadata!.name, desiredBuildJob(image({ layerCompression: 'zstd' }), instance).metadata!.name);
  });

  it('is named after the image and a hash of what it builds: stable, and new when the spec changes', () => {
    const a = desiredBuildJob(image(), instance).metadata!.name!;
    assert.equal(a, desiredBuildJob(image(), instance).metadata!.name);
    assert.match(a, /^toolbox-build-[0-9a-f]{10}$/);
    assert.notEqual(desiredBuildJob(image({ packages: ['hello'] }), instance).metadata!.name, a);
    assert.notEqual(desiredBuildJob(image({ tag: 'v2' }), instance).metadata!.name, a);
    assert.notEqual(buildHash(image(), { ...instance, spec: { ...instance.spec, image: 'other:1' } }), buildHash(image(), instance));
    assert.notEqual(buildHash(image(), instance, { rebuildEpoch: 7 }), buildHash(image(), instance));
    assert.ok(buildJobName(image({}, { name: 'x'.repeat(80) }), 'abcdef0123').length <= 63);
  });
});

describe('NixImage status', () => {
  const jobName = 'toolbox-build-abc';
  const done = { status: { conditions: [{ type: 'Complete', status: 'True' }], completionTime: new Date('2026-01-02T00:00:00Z') } };
  const failed = { status: { conditions: [{ type: 'Failed', status: 'True' }] } };
  /** The registry serves the summary's digest under the repository and the tag. */
  const confirmed = { confirmed: true } as const;

  it('is Ready with the pullable digest reference and the SBOM\'s digest once the Job succeeded', () => {
    const status = computeImageStatus(image(), { instance, jobName, job: done, summary: { digest: 'sha256:d', size: 42, layers: 5, sbomDigest: 'sha256:5b' }, verification: confirmed }, 't');
    assert.equal(status.image, 'nixery.team-a.svc.cluster.local:5000/toolbox@sha256:d');
    assert.equal(status.digest, 'sha256:d');
    assert.equal(status.sbomDigest, 'sha256:5b');
    const rebuiltByAnOlderRegistry = computeImageStatus({ ...image(), status }, { instance, jobName: 'toolbox-build-def', job: done, summary: { digest: 'sha256:e' }, verification: confirmed }, 't2');
    assert.equal(rebuiltByAnOlderRegistry.sbomDigest, undefined, 'no SBOM named for a digest it does not refer to');
    assert.equal(status.size, 42);
    assert.equal(status.layers, 5);
    assert.equal(status.jobName, jobName);
    assert.equal(status.lastBuildTime, '2026-01-02T00:00:00.000Z');
    assert.equal(getCondition(status.conditions, 'Ready')!.status, 'True');
    assert.equal(getCondition(status.conditions, 'Building')!.status, 'False');
  });

  it('lists each platform\'s image of an index build, and drops the list when a later build is one image', () => {
    const platforms = [
      { platform: 'linux/amd64', digest: 'sha256:a', sbomDigest: 'sha256:as' },
      { platform: 'linux/arm64', digest: 'sha256:b', sbomDigest: 'sha256:bs' },
    ];
    const summary = { digest: 'sha256:index', mediaType: 'application/vnd.oci.image.index.v1+json', size: 90, layers: 6, platforms };
    const status = computeImageStatus(image({ platforms: ['linux/amd64', 'linux/arm64'] }), { instance, jobName, job: done, summary, verification: confirmed }, 't');
    assert.equal(status.image, 'nixery.team-a.svc.cluster.local:5000/toolbox@sha256:index');
    assert.deepEqual(status.platforms, platforms);
    assert.equal(status.sbomDigest, undefined, 'an index has no SBOM of its own; its images have');
    const single = computeImageStatus({ ...image(), status }, { instance, jobName: 'toolbox-build-def', job: done, summary: { digest: 'sha256:e', sbomDigest: 'sha256:es' }, verification: confirmed }, 't2');
    assert.equal(single.platforms, undefined);
  });

  it('is not Ready, and takes no digest, until the registry confirms the one the build pod wrote', () => {
    const message = 'HEAD http://10.0.0.7:5000/v2/toolbox/manifests/sha256:d answered 404';
    const unconfirmed = computeImageStatus(image(), { instance, jobName, job: done, summary: { digest: 'sha256:d' }, verification: { confirmed: false, message } }, 't');
    assert.equal(unconfirmed.digest, undefined);
    assert.equal(unconfirmed.image, undefined);
    const ready = getCondition(unconfirmed.conditions, 'Ready')!;
    assert.deepEqual([ready.status, ready.reason], ['False', 'DigestUnverified']);
    assert.equal(ready.message, `the registry has not confirmed sha256:d for toolbox:v1: ${message}`);
    assert.equal(getCondition(unconfirmed.conditions, 'Failed')!.status, 'False', 'an unanswered question is no failed build');
    const unasked = computeImageStatus(image(), { instance, jobName, job: done, summary: { digest: 'sha256:d' } }, 't');
    assert.equal(getCondition(unasked.conditions, 'Ready')!.reason, 'DigestUnverified');
  });

  it('is Building while the Job runs, and Failed with the builder reason when it fails', () => {
    const running = computeImageStatus(image(), { instance, jobName, job: { status: { active: 1 } } }, 't');
    assert.equal(getCondition(running.conditions, 'Building')!.status, 'True');
    assert.equal(getCondition(running.conditions, 'Ready')!.status, 'False');
    const missing = computeImageStatus(
      image(),
      { instance, jobName, job: failed, summary: { error: { outcome: 'not_found', message: 'package not found: nope', packages: ['nope'] } } },
      't',
    );
    assert.deepEqual(
      [getCondition(missing.conditions, 'Failed')!.status, getCondition(missing.conditions, 'Failed')!.reason, getCondition(missing.conditions, 'Failed')!.message],
      ['True', 'PackagesNotFound', 'package not found: nope'],
    );
    const push = computeImageStatus(image(), { instance, jobName, job: failed, summary: { error: { outcome: 'push_failure', message: 'HTTP 401' } } }, 't');
    assert.equal(getCondition(push.conditions, 'Failed')!.reason, 'PushFailed');
  });

  it('keeps a built result after its Job was cleaned up', () => {
    const built = computeImageStatus(image(), { instance, jobName, job: done, summary: { digest: 'sha256:d' }, verification: confirmed }, 't');
    const later = computeImageStatus({ ...image(), status: built }, { instance, jobName }, 't2');
    assert.deepEqual(later, built);
  });

  it('says so when the instance is missing or another image claimed the tag', () => {
    const orphan = computeImageStatus(image(), { jobName }, 't');
    assert.equal(getCondition(orphan.conditions, 'Ready')!.reason, 'InstanceNotFound');
    const conflict = computeImageStatus(image(), { instance, jobName, conflictWith: 'older' }, 't');
    assert.equal(getCondition(conflict.conditions, 'Conflict')!.status, 'True');
    assert.match(getCondition(conflict.conditions, 'Conflict')!.message!, /older already declares toolbox:v1/);
  });
});

describe('claims on <name>:<tag>', () => {
  it('go to the earliest NixImage, then by name', () => {
    const first = image({}, { name: 'a', creationTimestamp: new Date('2026-01-01T00:00:00Z') });
    const second = image({ name: 'a' }, { name: 'b', creationTimestamp: new Date('2026-01-02T00:00:00Z') });
    assert.equal(conflictingClaim(second, [first, second]), 'a');
    assert.equal(conflictingClaim(first, [first, second]), undefined);
    const otherTag = image({ name: 'a', tag: 'v2' }, { name: 'c' });
    assert.equal(conflictingClaim(otherTag, [first, second, otherTag]), undefined);
  });
});
