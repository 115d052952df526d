import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CoreV1Event, V1Job, V1Pod, V1Secret, V1Service, V1ServiceAccount } from '@kubernetes/client-node';
import { createLogger, tagUrl, type BuildSummary } from '@nixery/registry/operator-api';
import { getCondition } from '../api/conditions.ts';
import type { NixeryInstance, NixImage, NixImageStatus } from '../api/types.ts';
import { apiError, cacheOf } from '../test-support/fakes.ts';
import { testImage, testInstance } from '../test-support/fixtures.ts';
import { desiredBuildJob, desiredBuildServiceAccount } from './desired-job.ts';
import { ImageReconciler, TAG_FINALIZER } from './reconciler.ts';
import type { DigestCheckRequest, DigestVerifier } from './registry-check.ts';

const NOW = new Date('2026-01-01T12:15:00Z');
const instance: NixeryInstance = {
  ...testInstance(),
  status: { conditions: [{ type: 'Ready', status: 'True', reason: 'RegistryAnswering' }] },
};
const service: V1Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'nixery', namespace: 'team-a' }, spec: { clusterIP: '10.0.0.7' } };
/** A NixImage that already carries the operator's finalizer, as after its first reconcile. */
const image = (spec: Partial<NixImage['spec']> = {}, metadata: Partial<NixImage['metadata']> = {}) =>
  testImage(spec, { finalizers: [TAG_FINALIZER], resourceVersion: '5', ...metadata });
/** A build Job as the API server holds it: the operator's, with the UID the server gave it. */
const buildJob = (of: NixImage, status: V1Job['status'], ttlSecondsAfterFinished = 600): V1Job => {
  const desired = desiredBuildJob(of, instance);
  return { ...desired, metadata: { ...desired.metadata, uid: `job-uid-${desired.metadata!.name}` }, spec: { ...desired.spec!, ttlSecondsAfterFinished }, status };
};
const complete = { conditions: [{ type: 'Complete', status: 'True' }], completionTime: new Date('2026-01-01T12:10:00Z') };
const failed = { conditions: [{ type: 'Failed', status: 'True' }] };
/** A controller reference to the Job with this UID, as the Job controller sets on its pods. */
const controlledByJob = (job: V1Job, uid = job.metadata!.uid!) => ({ apiVersion: 'batch/v1', kind: 'Job', name: job.metadata!.name!, uid, controller: true, blockOwnerDeletion: true });
/**
 * The finished pod of a build Job, its termination message holding what the builder wrote; by
 * default the Job's own (the Job controls it).
 */
const buildPod = (job: V1Job, message: string, ownerReferences = [controlledByJob(job)], suffix = 'x7k2p'): V1Pod => ({
  metadata: { name: `${job.metadata!.name}-${suffix}`, namespace: 'team-a', labels: { 'job-name': job.metadata!.name! }, ownerReferences },
  status: {
    containerStatuses: [
      { name: 'build', image: '', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, message, finishedAt: new Date('2026-01-01T12:10:00Z') } } },
    ],
  },
});
const summary = (value: BuildSummary) => JSON.stringify(value);

interface World {
  images?: NixImage[];
  instances?: NixeryInstance[];
  jobs?: V1Job[];
  pods?: V1Pod[];
  /** What creating the build Job answers; by default the Job as sent. */
  createJob?: (body: V1Job) => Promise<V1Job>;
  /** A Job the API server has but the cache has not seen yet. */
  serverJob?: V1Job;
  deleteTag?: () => Promise<void>;
  /** What the registry says of a build's digest; by default it serves it under the tag. */
  verify?: DigestVerifier;
  serviceAccounts?: V1ServiceAccount[];
  createServiceAccount?: () => Promise<void>;
  /** What creating an Event answers; by default it is stored. */
  createEvent?: () => Promise<void>;
}

/**
 * A reconciler against fakes. `requests` lists what it changed, in the cluster and in the registry,
 * one line each; `statuses` the status bodies it wrote; `events` the Events it recorded.
 */
function reconcilerFor(subject: NixImage, world: World = {}) {
  const requests: string[] = [];
  const statuses: NixImageStatus[] = [];
  const events: string[] = [];
  const eventBodies: CoreV1Event[] = [];
  const warnings: string[] = [];
  const checks: DigestCheckRequest[] = [];
  const reconciler = new ImageReconciler({
    clients: {
      batch: {
        createNamespacedJob: async ({ body }) => {
          requests.push(`create Job ${body.metadata!.name}`);
          return world.createJob ? world.createJob(body) : body;
        },
        readNamespacedJob: async ({ name }) => {
          if (world.serverJob?.metadata?.name !== name) throw apiError(404);
          return world.serverJob;
        },
        patchNamespacedJob: async ({ name, body }) => {
          requests.push(`patch Job ${name} ${JSON.stringify(body)}`);
          return {};
        },
        deleteNamespacedJob: async ({ name }) => {
          requests.push(`delete Job ${name}`);
          return {};
        },
      },
      core: {
        listNamespacedPod: async ({ labelSelector }) => ({
          items: (world.pods ?? []).filter((pod) => `job-name=${pod.metadata!.labels!['job-name']}` === labelSelector),
        }),
        createNamespacedServiceAccount: async ({ body }) => {
          requests.push(`create ServiceAccount ${body.metadata!.name}`);
          if (world.createServiceAccount) await world.createServiceAccount();
          return body;
        },
        readNamespacedSecret: async ({ name }): Promise<V1Secret> => {
          const b64 = (text: string) => Buffer.from(text).toString('base64');
          if (name === 'nixery-pull-user') return { data: { username: b64('nixery-operator-pull'), password: b64('the-pull-password') } };
          if (name !== 'nixery-push-token') throw apiError(404);
          return { data: { token: b64('the-push-token') } };
        },
        createNamespacedEvent: async ({ body }) => {
          await world.createEvent?.();
          events.push(`${body.type} ${body.reason}: ${body.message}`);
          eventBodies.push(body);
          return body;
        },
      },
      customObjects: {
        patchNamespacedCustomObject: async ({ plural, name, body }) => {
          requests.push(`patch ${plural}/${name} finalizers=[${(body as NixImage).metadata.finalizers!.join(' ')}]`);
          return {};
        },
        patchNamespacedCustomObjectStatus: async ({ plural, name, body }) => {
          requests.push(`patch ${plural}/${name}/status`);
          statuses.push((body as { status: NixImageStatus }).status);
          return {};
        },
      },
    },
    caches: {
      images: cacheOf(...(world.images ?? [subject])),
      instances: cacheOf(...(world.instances ?? [instance])),
      jobs: cacheOf(...(world.jobs ?? [])),
      services: cacheOf(service),
      serviceAccounts: cacheOf(...(world.serviceAccounts ?? [])),
    },
    log: createLogger({ level: 'warn', write: (line) => warnings.push(line) }),
    onWrite: () => {},
    deleteTag: async (tag, token, tls) => {
      requests.push(`DELETE ${tagUrl(tag, tls ? 'https' : 'http')} (${token})${tls ? ` trusting ${tls.ca}` : ''}`);
      await world.deleteTag?.();
    },
    verifyDigest: async (request) => {
      checks.push(request);
      return world.verify ? world.verify(request) : { confirmed: true };
    },
    now: () => NOW,
  });
  const status = () => statuses.at(-1)!;
  const condition = (type: string) => {
    const c = getCondition(status().conditions, type);
    return c && `${c.status} ${c.reason}`;
  };
  return { reconcile: () => reconciler.reconcile(`team-a/${subject.metadata.name}`), requests, statuses, events, eventBodies, warnings, checks, status, condition };
}

describe('reconciling a NixImage', () => {
  it('adds its finalizer first, so that a deletion waits for the tag to go', async () => {
    const { reconcile, requests } = reconcilerFor(testImage({}, { resourceVersion: '5' }));
    await reconcile();
    assert.equal(requests[0], `patch niximages/toolbox finalizers=[${TAG_FINALIZER}]`);
  });

  it('starts the build Job when there is none and the instance is Ready', async () => {
    const subject = image();
    const { reconcile, requests, condition, status, events } = reconcilerFor(subject);
    assert.deepEqual(await reconcile(), {});
    const jobName = desiredBuildJob(subject, instance).metadata!.name!;
    assert.deepEqual(requests, ['create ServiceAccount nixery-build-toolbox', `create Job ${jobName}`, 'patch niximages/toolbox/status']);
    assert.equal(status().jobName, jobName);
    assert.equal(condition('Building'), 'True JobRunning');
    assert.equal(condition('Ready'), 'False Building');
    assert.deepEqual(events, [`Normal BuildStarted: build Job ${jobName} started`]);
  });

  it('makes the build ServiceAccount once, before the first Job: one already there or made meanwhile does', async () => {
    const subject = image();
    const account = desiredBuildServiceAccount(subject, instance);
    const existing = reconcilerFor(subject, { serviceAccounts: [account] });
    await existing.reconcile();
    assert.ok(!existing.requests.some((r) => r.startsWith('create ServiceAccount')));
    assert.ok(existing.requests.some((r) => r.startsWith('create Job')));
    const raced = reconcilerFor(subject, { createServiceAccount: () => Promise.reject(apiError(409)) });
    await raced.reconcile();
    assert.ok(raced.requests.some((r) => r.startsWith('create Job')));
  });

  it('starts no Job while the instance is not Ready, and looks again soon', async () => {
    const starting = { ...instance, status: { conditions: [{ type: 'Ready', status: 'False' as const, reason: 'WaitingForPods' }] } };
    const { reconcile, requests, condition } = reconcilerFor(image(), { instances: [starting] });
    assert.deepEqual(await reconcile(), { requeueAfterMs: 3000 });
    assert.deepEqual(requests, ['patch niximages/toolbox/status']);
    assert.equal(condition('Building'), 'True JobPending');
  });

  it('starts no Job while the instance is Ready only for an earlier generation of its spec', async () => {
    const changed = { ...instance, metadata: { ...instance.metadata, generation: 3 }, status: { conditions: [{ type: 'Ready', status: 'True' as const, reason: 'RegistryAnswering', observedGeneration: 2 }] } };
    const { reconcile, requests } = reconcilerFor(image(), { instances: [changed] });
    assert.deepEqual(await reconcile(), { requeueAfterMs: 3000 });
    assert.ok(!requests.some((r) => r.includes(' Job ')), requests.join('\n'));
    const judged = { ...changed, status: { conditions: [{ ...changed.status.conditions[0]!, observedGeneration: 3 }] } };
    const current = reconcilerFor(image(), { instances: [judged] });
    await current.reconcile();
    assert.ok(current.requests.some((r) => r.startsWith('create Job')));
  });

  it('adopts the Job an earlier run created instead of starting another', async () => {
    const subject = image();
    const running = buildJob(subject, { active: 1 });
    const { reconcile, requests, condition } = reconcilerFor(subject, { createJob: () => Promise.reject(apiError(409)), serverJob: running });
    await reconcile();
    assert.deepEqual(requests.filter((r) => r.includes(' Job ')), [`create Job ${running.metadata!.name}`]);
    assert.equal(condition('Building'), 'True JobRunning');
  });

  it("turns a finished Job's summary into the status image and digest, and Ready", async () => {
    const subject = image();
    const job = buildJob(subject, complete);
    const digest = `sha256:${'d'.repeat(64)}`;
    const built = reconcilerFor(subject, { jobs: [job], pods: [buildPod(job, summary({ digest, layers: 5, size: 4096 }))] });
    await built.reconcile();
    assert.deepEqual(built.requests, ['patch niximages/toolbox/status'], 'no new Job, and a succeeded one keeps its TTL');
    const { image: pull, layers, size, jobName, lastBuildTime } = built.status();
    assert.deepEqual(
      { pull, digest: built.status().digest, layers, size, jobName, lastBuildTime },
      { pull: `nixery.team-a.svc.cluster.local:5000/toolbox@${digest}`, digest, layers: 5, size: 4096, jobName: job.metadata!.name, lastBuildTime: '2026-01-01T12:10:00.000Z' },
    );
    assert.equal(built.condition('Ready'), 'True Built');
    assert.deepEqual(built.events, [`Normal Pushed: built and pushed ${digest}: pull ${pull}`]);

    const later = reconcilerFor({ ...subject, status: built.status() }, { jobs: [] });
    await later.reconcile();
    assert.deepEqual(later.requests, [], 'the Job went after its TTL: the result stands and nothing is built again');
  });

  describe('asks the registry before it says Ready', () => {
    const subject = image();
    const job = buildJob(subject, complete);
    const digest = `sha256:${'d'.repeat(64)}`;
    const pods = [buildPod(job, summary({ digest }))];

    it('asks the instance’s registry through the Service whether the digest is there under the repository and tag, then is Ready with it', async () => {
      const { reconcile, checks, status, condition } = reconcilerFor(subject, { jobs: [job], pods });
      assert.deepEqual(await reconcile(), {});
      assert.deepEqual(checks.map(({ baseUrl, repository, tag, digest: asked, ca, servername }) => ({ baseUrl, repository, tag, digest: asked, ca, servername })), [
        { baseUrl: 'http://10.0.0.7:5000', repository: 'toolbox', tag: 'v1', digest, ca: undefined, servername: undefined },
      ]);
      assert.equal(await checks[0]!.credentials!().then((c) => c?.username), 'nixery-operator-pull', 'the operator’s pull user, for a registry that wants a login');
      assert.equal(status().digest, digest);
      assert.equal(condition('Ready'), 'True Built');
    });

    it('asks over HTTPS by the ClusterIP, trusting the instance’s CA and checking the Service’s name, when TLS is on', async () => {
      const tls: NixeryInstance = {
        ...testInstance({ tls: { selfSigned: {} } }),
        status: { conditions: [{ type: 'Ready', status: 'True', reason: 'RegistryAnswering' }], tls: { caBundle: 'CA-PEM', secretName: 'nixery-tls' } },
      };
      const desired = desiredBuildJob(subject, tls);
      const tlsJob: V1Job = { ...desired, metadata: { ...desired.metadata, uid: 'job-uid-tls' }, status: complete };
      const { reconcile, checks } = reconcilerFor(subject, { instances: [tls], jobs: [tlsJob], pods: [buildPod(tlsJob, summary({ digest }))] });
      await reconcile();
      assert.deepEqual([checks[0]!.baseUrl, checks[0]!.ca, checks[0]!.servername], ['https://10.0.0.7:5000', 'CA-PEM', 'nixery.team-a.svc.cluster.local']);
    });

    it('is not Ready, with no digest, while the registry answers another digest or none, and asks again later each time', async () => {
      for (const message of [
        `HEAD http://10.0.0.7:5000/v2/toolbox/manifests/v1 answered 200 with Docker-Content-Digest sha256:${'a'.repeat(64)}, not ${digest}`,
        `HEAD http://10.0.0.7:5000/v2/toolbox/manifests/${digest} answered 404`,
        'the registry at http://10.0.0.7:5000 could not be asked: connect ECONNREFUSED 10.0.0.7:5000',
      ]) {
        const { reconcile, status, condition } = reconcilerFor(subject, { jobs: [job], pods, verify: async () => ({ confirmed: false, message }) });
        assert.deepEqual(await reconcile(), { requeueAfterMs: 2000 });
        assert.deepEqual(await reconcile(), { requeueAfterMs: 4000 }, 'backing off');
        assert.equal(status().digest, undefined);
        assert.equal(status().image, undefined);
        assert.equal(condition('Ready'), 'False DigestUnverified');
        assert.equal(condition('Failed'), 'False DigestUnverified', 'not a build failure');
        assert.equal(getCondition(status().conditions, 'Ready')!.message, `the registry has not confirmed ${digest} for toolbox:v1: ${message}`);
      }
    });

    it('becomes Ready once the registry confirms, and does not ask again about a digest it confirmed', async () => {
      let answer: Awaited<ReturnType<DigestVerifier>> = { confirmed: false, message: 'HEAD answered 503' };
      const world = { jobs: [job], pods, verify: async () => answer };
      const first = reconcilerFor(subject, world);
      await first.reconcile();
      answer = { confirmed: true };
      const second = reconcilerFor({ ...subject, status: first.status() }, world);
      assert.deepEqual(await second.reconcile(), {});
      assert.equal(second.condition('Ready'), 'True Built');
      assert.equal(second.status().digest, digest);
      const third = reconcilerFor({ ...subject, status: second.status() }, world);
      await third.reconcile();
      assert.deepEqual([third.checks, third.requests], [[], []]);
    });
  });

  describe('believes only the pods of the Job it made', () => {
    const subject = image();
    const job = buildJob(subject, complete);
    const real = `sha256:${'d'.repeat(64)}`;
    const forged = `sha256:${'f'.repeat(64)}`;
    /** Finished after the real pod, so that only ownership, not age, can rule it out. */
    const later = (pod: V1Pod): V1Pod => {
      const terminated = pod.status!.containerStatuses![0]!.state!.terminated!;
      return { ...pod, status: { containerStatuses: [{ ...pod.status!.containerStatuses![0]!, state: { terminated: { ...terminated, finishedAt: new Date('2026-01-01T12:14:00Z') } } }] } };
    };

    it('ignores a pod that only carries the label job-name=<job>, and names it in a warning', async () => {
      const impostor = later(buildPod(job, summary({ digest: forged }), [], 'forged'));
      const alone = reconcilerFor(subject, { jobs: [job], pods: [impostor] });
      await alone.reconcile();
      assert.equal(alone.status().digest, undefined);
      assert.notEqual(alone.condition('Ready'), 'True Built');
      assert.ok(alone.warnings.some((line) => line.includes(`${job.metadata!.name}-forged`)), alone.warnings.join('\n'));

      const beside = reconcilerFor(subject, { jobs: [job], pods: [buildPod(job, summary({ digest: real })), impostor] });
      await beside.reconcile();
      assert.equal(beside.status().digest, real);
      assert.equal(beside.condition('Ready'), 'True Built');
    });

    it('ignores a pod controlled by another Job of the same name (another UID)', async () => {
      const impostor = later(buildPod(job, summary({ digest: forged }), [controlledByJob(job, 'job-uid-of-another')], 'other'));
      const { reconcile, status } = reconcilerFor(subject, { jobs: [job], pods: [buildPod(job, summary({ digest: real })), impostor] });
      await reconcile();
      assert.equal(status().digest, real);
    });

    it('ignores a pod that names the Job as an owner but not as its controller', async () => {
      const impostor = later(buildPod(job, summary({ digest: forged }), [{ ...controlledByJob(job), controller: false }], 'owned'));
      const { reconcile, status } = reconcilerFor(subject, { jobs: [job], pods: [impostor] });
      await reconcile();
      assert.equal(status().digest, undefined);
    });

    it('believes nothing of a Job by the build Job’s name that this NixImage does not control', async () => {
      const foreign: V1Job = { ...job, metadata: { ...job.metadata, ownerReferences: [{ apiVersion: 'nixery.dev/v1alpha1', kind: 'NixImage', name: 'toolbox', uid: 'another-uid', controller: true }] } };
      const { reconcile, status, condition, requests } = reconcilerFor(subject, { jobs: [foreign], pods: [buildPod(foreign, summary({ digest: forged }))] });
      assert.deepEqual(await reconcile(), { requeueAfterMs: 30_000 });
      assert.equal(status().digest, undefined);
      assert.equal(condition('Ready'), 'False JobNotOwned');
      assert.equal(condition('Failed'), 'True JobNotOwned');
      assert.ok(!requests.some((r) => r.includes(' Job ')), 'neither patched nor deleted: it is not the operator’s');
    });

    it('does not take the result back when such a Job appears after the build was done', async () => {
      const built = reconcilerFor(subject, { jobs: [job], pods: [buildPod(job, summary({ digest: real }))] });
      await built.reconcile();
      const foreign: V1Job = { ...job, metadata: { ...job.metadata, ownerReferences: [] } };
      const later = reconcilerFor({ ...subject, status: built.status() }, { jobs: [foreign], pods: [buildPod(foreign, summary({ digest: forged }))] });
      await later.reconcile();
      assert.deepEqual(later.requests, [], 'the status stands');
    });
  });

  it("fails with the builder's reason when the Job failed, and keeps that Job for its logs", async () => {
    const subject = image({ packages: ['hello', 'nosuchpackage'] });
    const job = buildJob(subject, failed);
    const error: BuildSummary['error'] = { outcome: 'not_found', message: 'package not found: nosuchpackage', packages: ['nosuchpackage'] };
    const { reconcile, requests, condition, status, events } = reconcilerFor(subject, { jobs: [job], pods: [buildPod(job, summary({ error }))] });
    await reconcile();
    assert.deepEqual(requests, [`patch Job ${job.metadata!.name} {"spec":{"ttlSecondsAfterFinished":null}}`, 'patch niximages/toolbox/status']);
    assert.equal(condition('Failed'), 'True PackagesNotFound');
    assert.equal(getCondition(status().conditions, 'Failed')!.message, 'package not found: nosuchpackage');
    assert.deepEqual(events, ['Warning PackagesNotFound: package not found: nosuchpackage']);
  });

  it('fails with the log tail when the builder died before writing its summary', async () => {
    const subject = image();
    const job = buildJob(subject, failed);
    const { reconcile, condition, status } = reconcilerFor(subject, { jobs: [job], pods: [buildPod(job, 'fatal: out of memory')] });
    await reconcile();
    assert.equal(condition('Failed'), 'True BuildFailed');
    assert.equal(getCondition(status().conditions, 'Failed')!.message, 'fatal: out of memory');
  });

  it('removes the earlier build Jobs of the image once the current one exists, unless they still run', async () => {
    const subject = image();
    const earlier = (name: string, jobStatus: V1Job['status']) => {
      const job = buildJob(subject, jobStatus);
      return { ...job, metadata: { ...job.metadata, name } };
    };
    const jobs = [buildJob(subject, { active: 1 }), earlier('toolbox-build-old', failed), earlier('toolbox-build-older', { active: 1 })];
    const { reconcile, requests } = reconcilerFor(subject, { jobs });
    await reconcile();
    assert.deepEqual(requests.filter((r) => r.startsWith('delete')), ['delete Job toolbox-build-old']);
  });

  it('gives the later of two claims on one tag Conflict and builds nothing for it', async () => {
    const first = image({}, { name: 'toolbox' });
    const copy = image({ name: 'toolbox', packages: ['git'] }, { name: 'toolbox-copy', creationTimestamp: new Date('2026-01-02T00:00:00Z') });
    const { reconcile, requests, condition } = reconcilerFor(copy, { images: [first, copy] });
    await reconcile();
    assert.deepEqual(requests, ['patch niximages/toolbox-copy/status']);
    assert.equal(condition('Conflict'), 'True TagClaimed');
    assert.equal(condition('Ready'), 'False Conflict');
  });

  it('says InstanceNotFound and builds nothing without its instance', async () => {
    const { reconcile, requests, condition } = reconcilerFor(image(), { instances: [] });
    await reconcile();
    assert.deepEqual(requests, ['patch niximages/toolbox/status']);
    assert.equal(condition('Ready'), 'False InstanceNotFound');
  });

  it('with a rebuildInterval, builds once per interval and looks again when the next one begins', async () => {
    const subject = image({ rebuildInterval: '1h' });
    const { reconcile, requests } = reconcilerFor(subject);
    // 12:15 now: the next interval begins at 13:00, and a second later the operator looks.
    assert.deepEqual(await reconcile(), { requeueAfterMs: 45 * 60_000 + 1000 });
    const epoch = Math.floor(NOW.getTime() / 3_600_000);
    assert.equal(requests[1], `create Job ${desiredBuildJob(subject, instance, { rebuildEpoch: epoch }).metadata!.name}`);
  });
});

describe('the Events of a NixImage', () => {
  /**
   * Reconciles `subject` through `steps` as the operator does over time: each step sees the status
   * the previous one wrote (the informer's copy) and the Jobs and pods of that moment.
   */
  async function throughSteps(subject: NixImage, steps: World[]) {
    let current = subject;
    const events: string[] = [];
    for (const world of steps) {
      const images = world.images?.map((i) => (i.metadata.name === current.metadata.name ? current : i));
      const step = reconcilerFor(current, { ...world, ...(images ? { images } : {}) });
      await step.reconcile();
      events.push(...step.events);
      if (step.statuses.length) current = { ...current, status: step.status() };
    }
    return events;
  }
  const digest = `sha256:${'d'.repeat(64)}`;

  it('a successful build says BuildStarted once and Pushed once, however many reconciles and resyncs it takes', async () => {
    const subject = image();
    const running = buildJob(subject, { active: 1 });
    const done = buildJob(subject, complete);
    const pods = [buildPod(done, summary({ digest }))];
    const jobName = running.metadata!.name!;
    const events = await throughSteps(subject, [{}, { jobs: [running] }, { jobs: [running] }, { jobs: [done], pods }, { jobs: [done], pods }, { jobs: [] }]);
    assert.deepEqual(events, [`Normal BuildStarted: build Job ${jobName} started`, `Normal Pushed: built and pushed ${digest}: pull nixery.team-a.svc.cluster.local:5000/toolbox@${digest}`]);
  });

  it('a digest the registry has not confirmed yet says DigestUnverified once, then Pushed once it is', async () => {
    const subject = image();
    const done = buildJob(subject, complete);
    const pods = [buildPod(done, summary({ digest }))];
    const unconfirmed = (message: string): World => ({ jobs: [done], pods, verify: async () => ({ confirmed: false, message }) });
    const events = await throughSteps(subject, [{ jobs: [buildJob(subject, { active: 1 })] }, unconfirmed('HEAD answered 503'), unconfirmed('HEAD answered 404'), { jobs: [done], pods }]);
    assert.deepEqual(events.map((e) => e.split(':')[0]), ['Normal BuildStarted', 'Warning DigestUnverified', 'Normal Pushed']);
  });

  it('a failed build says one Warning with its reason and message', async () => {
    const subject = image({ packages: ['hello', 'nosuchpackage'] });
    const running = buildJob(subject, { active: 1 });
    const job = buildJob(subject, failed);
    const pods = [buildPod(job, summary({ error: { outcome: 'not_found', message: 'package not found: nosuchpackage', packages: ['nosuchpackage'] } }))];
    const events = await throughSteps(subject, [{ jobs: [running] }, { jobs: [job], pods }, { jobs: [job], pods }, { jobs: [job], pods }]);
    assert.deepEqual(events, [`Normal BuildStarted: build Job ${job.metadata!.name} started`, 'Warning PackagesNotFound: package not found: nosuchpackage']);
  });

  it('a later claim on a taken tag says Conflict once', async () => {
    const first = image({}, { name: 'toolbox' });
    const copy = image({ name: 'toolbox', packages: ['git'] }, { name: 'toolbox-copy', creationTimestamp: new Date('2026-01-02T00:00:00Z') });
    const events = await throughSteps(copy, [{ images: [first, copy] }, { images: [first, copy] }]);
    assert.deepEqual(events, ['Warning Conflict: NixImage toolbox already declares toolbox:v1 on this instance']);
  });

  it('a resync with nothing changed says nothing', async () => {
    const subject = image();
    const done = buildJob(subject, complete);
    const pods = [buildPod(done, summary({ digest }))];
    const built = reconcilerFor(subject, { jobs: [done], pods });
    await built.reconcile();
    const resync = reconcilerFor({ ...subject, status: built.status() }, { jobs: [done], pods });
    await resync.reconcile();
    assert.deepEqual([resync.requests, resync.events], [[], []]);
  });

  it('is about the NixImage, from nixery-operator, as kubectl describe finds it', async () => {
    const { reconcile, eventBodies } = reconcilerFor(image());
    await reconcile();
    const [event] = eventBodies;
    assert.deepEqual(event!.involvedObject, { apiVersion: 'nixery.dev/v1alpha1', kind: 'NixImage', name: 'toolbox', namespace: 'team-a', uid: 'img-uid', resourceVersion: '5' });
    assert.equal(event!.metadata.namespace, 'team-a');
    assert.deepEqual([event!.source?.component, event!.reportingComponent, event!.count], ['nixery-operator', 'nixery-operator', 1]);
  });

  it('one the API server refuses is logged and the reconcile goes on', async () => {
    const { reconcile, requests, warnings, events } = reconcilerFor(image(), { createEvent: () => Promise.reject(apiError(403)) });
    assert.deepEqual(await reconcile(), {});
    assert.ok(requests.includes('patch niximages/toolbox/status'));
    assert.deepEqual(events, []);
    assert.ok(warnings.some((w) => w.includes('event not recorded') && w.includes('BuildStarted')), warnings.join('\n'));
  });
});

describe('deleting a NixImage', () => {
  const built = (metadata: Partial<NixImage['metadata']> = {}) =>
    image({ name: 'greeter', tag: '1.0' }, { name: 'greeter', deletionTimestamp: NOW, finalizers: ['example.com/keep', TAG_FINALIZER], ...metadata });
  const withDigest = (subject: NixImage): NixImage => ({ ...subject, status: { digest: `sha256:${'e'.repeat(64)}` } });

  it('removes its tag from the registry, then its finalizer', async () => {
    const { reconcile, requests } = reconcilerFor(withDigest(built()));
    assert.deepEqual(await reconcile(), {});
    assert.deepEqual(requests, ['DELETE http://10.0.0.7:5000/v2/greeter/manifests/1.0 (the-push-token)', 'patch niximages/greeter finalizers=[example.com/keep]']);
  });

  it('deletes over HTTPS by the name the certificate carries, trusting the CA in the instance status, when TLS is on', async () => {
    const tls: NixeryInstance = {
      ...testInstance({ tls: { selfSigned: {} } }),
      status: { conditions: [{ type: 'Ready', status: 'True', reason: 'RegistryAnswering' }], tls: { caBundle: 'CA-PEM', secretName: 'nixery-tls' } },
    };
    const { reconcile, requests } = reconcilerFor(withDigest(built()), { instances: [tls] });
    await reconcile();
    assert.equal(requests[0], 'DELETE https://nixery.team-a.svc.cluster.local:5000/v2/greeter/manifests/1.0 (the-push-token) trusting CA-PEM');
  });

  it('keeps the finalizer while the registry does not take the tag away', async () => {
    const { reconcile, requests } = reconcilerFor(withDigest(built()), { deleteTag: () => Promise.reject(new Error('DELETE answered 503')) });
    await assert.rejects(reconcile(), /503/);
    assert.ok(!requests.some((r) => r.includes('finalizers')));
  });

  it('goes without touching the registry when it pushed nothing, or the tag is another image’s', async () => {
    const unbuilt = reconcilerFor(built());
    await unbuilt.reconcile();
    assert.deepEqual(unbuilt.requests, ['patch niximages/greeter finalizers=[example.com/keep]']);

    const owner = image({ name: 'greeter', tag: '1.0' }, { name: 'greeter-first', creationTimestamp: new Date('2025-12-01T00:00:00Z') });
    const loser = withDigest(built());
    const claimed = reconcilerFor(loser, { images: [owner, loser] });
    await claimed.reconcile();
    assert.deepEqual(claimed.requests, ['patch niximages/greeter finalizers=[example.com/keep]']);
  });

  it('is left alone once the finalizer is gone', async () => {
    const { reconcile, requests } = reconcilerFor(withDigest(built({ finalizers: ['example.com/keep'] })));
    await reconcile();
    assert.deepEqual(requests, []);
  });
});
