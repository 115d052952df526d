import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '@nixery/registry/operator-api';
import type { NixeryInstance } from '../api/types.ts';
import { testInstance } from '../test-support/fixtures.ts';
import { ownershipProblem } from '../kube/applier.ts';
import { desiredInstance, desiredNodeConfig, desiredObjects, instanceEndpoint, nodeConfigCaName, nodeConfigName, STORAGE_MOUNT, type NodeConfigFacts } from './desired.ts';

const instance = (spec: Partial<NixeryInstance['spec']> = {}) => testInstance(spec);

/**
 * What loadConfig can load here: without the variables naming mounted files (it reads some of
 * them at once), and with the in-cluster API address a pod has (ServiceAccount tokens need it).
 */
const load = (env: Record<string, string>) => {
  const loadable = Object.fromEntries(Object.entries(env).filter(([name]) => !name.endsWith('_FILE')));
  return loadConfig({ ...loadable, KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, '/');
};

const envOf = (d: ReturnType<typeof desiredInstance>) =>
  Object.fromEntries((d.deployment.spec!.template.spec!.containers[0]!.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));

describe('desired objects of a NixeryInstance', () => {
  it('owns a ServiceAccount, a PVC, a Deployment, its PodDisruptionBudget and a Service, all labelled and owned by the instance', () => {
    const d = desiredInstance(instance());
    const objects = desiredObjects(d);
    assert.deepEqual(objects.map((o) => o.kind), ['ServiceAccount', 'PersistentVolumeClaim', 'Service', 'Deployment', 'PodDisruptionBudget']);
    for (const o of objects) {
      assert.equal(o.metadata!.namespace, 'team-a');
      assert.deepEqual(o.metadata!.ownerReferences, [
        { apiVersion: 'nixery.dev/v1alpha1', kind: 'NixeryInstance', name: 'nixery', uid: 'uid-1', controller: true, blockOwnerDeletion: true },
      ]);
      assert.equal(o.metadata!.labels!['app.kubernetes.io/managed-by'], 'nixery-operator');
      assert.equal(o.metadata!.labels!['app.kubernetes.io/instance'], 'nixery');
    }
  });

  it('names the Service after the instance so pods pull from <instance>.<namespace>.svc.cluster.local:<port>', () => {
    const d = desiredInstance(instance());
    assert.equal(d.service.metadata!.name, 'nixery');
    assert.deepEqual(d.service.spec!.ports, [{ name: 'http', port: 5000, targetPort: 'http', protocol: 'TCP' }]);
    assert.deepEqual(d.service.spec!.selector, d.deployment.spec!.selector.matchLabels);
    assert.equal(instanceEndpoint(instance()), 'nixery.team-a.svc.cluster.local:5000');
  });

  it('renders an environment the registry loads back into the same configuration', () => {
    const d = desiredInstance(instance({ packageSource: { git: { url: 'https://example.org/pkgs.git' } }, nixTimeout: 120 }));
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...env } = envOf(d);
    const config = load(env);
    assert.equal(config.port, 8080);
    assert.deepEqual(config.storage, { backend: 'filesystem', path: STORAGE_MOUNT });
    assert.deepEqual(config.source, { type: 'git', url: 'https://example.org/pkgs.git' });
    assert.equal(config.nixTimeoutSeconds, 120);
  });

  it("passes a git source's trusted refs to the registry, and nothing when the default applies", () => {
    const trusted = desiredInstance(instance({ packageSource: { git: { url: 'https://example.org/pkgs.git', trustedRefs: ['refs/heads/main', 'refs/tags/v*'] } } }));
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...env } = envOf(trusted);
    assert.deepEqual(load(env).source, { type: 'git', url: 'https://example.org/pkgs.git', trustedRefs: ['refs/heads/main', 'refs/tags/v*'] });
    const plain = desiredInstance(instance({ packageSource: { git: { url: 'https://example.org/pkgs.git' } } }));
    assert.equal(envOf(plain).NIXERY_PKGS_REPO_TRUSTED_REFS, undefined);
  });

  it('mounts the push token Secret and points the registry at it', () => {
    const d = desiredInstance(instance());
    assert.equal(envOf(d).NIXERY_PUSH_TOKEN_FILE, '/var/run/secrets/nixery/push/token');
    assert.deepEqual(d.deployment.spec!.template.spec!.containers[0]!.volumeMounts![0], {
      name: 'push-token',
      mountPath: '/var/run/secrets/nixery/push',
      readOnly: true,
    });
  });

  it('leaves the package source unset to use the set bundled in the registry image', () => {
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...env } = envOf(desiredInstance(instance()));
    assert.equal(load(env).sourceIsDefault, true);
  });

  it('uses Recreate with a persistent volume and mounts the claim', () => {
    const d = desiredInstance(instance());
    assert.equal(d.deployment.spec!.strategy!.type, 'Recreate');
    assert.deepEqual(d.deployment.spec!.template.spec!.volumes!.slice(0, 2), [
      { name: 'push-token', secret: { secretName: 'nixery-push-token' } },
      { name: 'storage', persistentVolumeClaim: { claimName: 'nixery-storage' } },
    ]);
    assert.deepEqual(d.persistentVolumeClaim!.spec!.resources!.requests, { storage: '10Gi' });
  });

  describe('pod security', () => {
    it("runs the registry as the image's non-root user under the restricted profile, with the volume made writable for it (fsGroup)", () => {
      const pod = desiredInstance(instance()).deployment.spec!.template.spec!;
      assert.deepEqual(pod.securityContext, {
        runAsNonRoot: true,
        runAsUser: 10000,
        runAsGroup: 10000,
        fsGroup: 10000,
        fsGroupChangePolicy: 'OnRootMismatch',
        seccompProfile: { type: 'RuntimeDefault' },
      });
      assert.deepEqual(pod.containers[0]!.securityContext, {
        allowPrivilegeEscalation: false,
        privileged: false,
        capabilities: { drop: ['ALL'] },
        // Nix writes its builds into the image's /nix/store.
        readOnlyRootFilesystem: false,
      });
    });

    it('keeps NET_BIND_SERVICE, and nothing else, for a registry port below 1024', () => {
      const container = desiredInstance(instance({ port: 443 })).deployment.spec!.template.spec!.containers[0]!;
      assert.deepEqual(container.securityContext!.capabilities, { drop: ['ALL'], add: ['NET_BIND_SERVICE'] });
    });

    it('bounds the registry container by default (memory, and ephemeral storage for the Nix store) and takes the spec\'s resources instead when set', () => {
      const container = desiredInstance(instance()).deployment.spec!.template.spec!.containers[0]!;
      assert.deepEqual(container.resources, {
        requests: { cpu: '250m', memory: '512Mi', 'ephemeral-storage': '2Gi' },
        limits: { memory: '4Gi', 'ephemeral-storage': '20Gi' },
      });
      const own = { requests: { cpu: '2' }, limits: { memory: '8Gi' } };
      assert.deepEqual(desiredInstance(instance({ resources: own })).deployment.spec!.template.spec!.containers[0]!.resources, own);
    });

    it('gives the node-local forwarder everything restricted asks but the host network, a read-only root and no API token', () => {
      const pod = desiredInstance(instance({ nodeLocal: { enabled: true, hostPort: 5555 } })).nodeLocal!.spec!.template.spec!;
      assert.equal(pod.automountServiceAccountToken, false);
      assert.equal(pod.containers[0]!.securityContext!.readOnlyRootFilesystem, true);
      assert.deepEqual(pod.containers[0]!.securityContext!.capabilities, { drop: ['ALL'] });
      assert.equal(pod.hostNetwork, true);
    });
  });

  it('spreads registry pods over nodes and zones, softly, and lets a drain take one at a time', () => {
    const d = desiredInstance(instance({ replicas: 3, storage: { gcs: { bucket: 'b', signedUrls: false } } }));
    const spread = d.deployment.spec!.template.spec!.topologySpreadConstraints!;
    assert.deepEqual(spread.map((c) => [c.topologyKey, c.whenUnsatisfiable, c.maxSkew]), [
      ['kubernetes.io/hostname', 'ScheduleAnyway', 1],
      ['topology.kubernetes.io/zone', 'ScheduleAnyway', 1],
    ]);
    for (const c of spread) assert.deepEqual(c.labelSelector!.matchLabels, d.deployment.spec!.selector.matchLabels);
    assert.equal(d.podDisruptionBudget.apiVersion, 'policy/v1');
    assert.equal(d.podDisruptionBudget.spec!.maxUnavailable, 1);
    assert.deepEqual(d.podDisruptionBudget.spec!.selector, d.deployment.spec!.selector);
  });

  it('wires GCS: no PVC, the bucket and the mounted key in the environment, rolling updates', () => {
    const d = desiredInstance(
      instance({ replicas: 3, storage: { gcs: { bucket: 'layers', credentialsSecret: { name: 'gcs-key', key: 'key.json' }, signedUrls: true } } }),
    );
    assert.equal(d.persistentVolumeClaim, undefined);
    assert.equal(d.deployment.spec!.replicas, 3);
    assert.equal(d.deployment.spec!.strategy!.type, 'RollingUpdate');
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...env } = envOf(d);
    const config = load(env);
    assert.deepEqual(config.storage, { backend: 'gcs', bucket: 'layers', credentialsFile: '/var/run/secrets/nixery/gcs/key.json' });
    assert.deepEqual(d.deployment.spec!.template.spec!.volumes![1], { name: 'gcs-credentials', secret: { secretName: 'gcs-key' } });
    const streamed = desiredInstance(instance({ storage: { gcs: { bucket: 'layers', signedUrls: false } } }));
    assert.equal(envOf(streamed).NIXERY_GCS_REDIRECT, 'stream');
  });

  it('wires S3: no PVC, the bucket settings in the environment, static keys from the Secret, rolling updates', () => {
    const d = desiredInstance(
      instance({
        replicas: 2,
        storage: {
          s3: {
            bucket: 'layers',
            region: 'eu-west-1',
            endpoint: 'https://rgw.storage.svc:7480',
            forcePathStyle: true,
            prefix: 'team/nixery',
            redirect: 'presigned',
            presignedUrlExpirySeconds: 600,
            serverSideEncryption: 'aws:kms',
            kmsKeyId: 'alias/nixery',
            credentialsSecret: { name: 's3-keys', accessKeyIdKey: 'id', secretAccessKeyKey: 'secret' },
          },
        },
      }),
    );
    assert.equal(d.persistentVolumeClaim, undefined);
    assert.equal(d.deployment.spec!.strategy!.type, 'RollingUpdate');
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...env } = envOf(d);
    assert.deepEqual(load(env).storage, {
      backend: 's3',
      bucket: 'layers',
      region: 'eu-west-1',
      endpoint: 'https://rgw.storage.svc:7480',
      forcePathStyle: true,
      prefix: 'team/nixery',
      presignedUrlExpirySeconds: 600,
      serverSideEncryption: 'aws:kms',
      kmsKeyId: 'alias/nixery',
    });
    const fromSecret = (d.deployment.spec!.template.spec!.containers[0]!.env ?? []).filter((e) => e.valueFrom?.secretKeyRef);
    assert.deepEqual(fromSecret, [
      { name: 'AWS_ACCESS_KEY_ID', valueFrom: { secretKeyRef: { name: 's3-keys', key: 'id' } } },
      { name: 'AWS_SECRET_ACCESS_KEY', valueFrom: { secretKeyRef: { name: 's3-keys', key: 'secret' } } },
    ]);
    assert.equal(d.serviceAccount.metadata!.annotations, undefined);
  });

  it('gives S3 workload identity through the ServiceAccount (IRSA role annotation) and no keys', () => {
    const roleArn = 'arn:aws:iam::123456789012:role/nixery';
    const d = desiredInstance(instance({ storage: { s3: { bucket: 'layers', forcePathStyle: false, redirect: 'stream', roleArn } } }));
    assert.deepEqual(d.serviceAccount.metadata!.annotations, { 'eks.amazonaws.com/role-arn': roleArn });
    assert.equal(d.deployment.spec!.template.spec!.serviceAccountName, d.serviceAccount.metadata!.name);
    const env = d.deployment.spec!.template.spec!.containers[0]!.env ?? [];
    assert.deepEqual(env.filter((e) => e.name.startsWith('AWS_')), []);
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...values } = envOf(d);
    assert.deepEqual(load(values).storage, { backend: 's3', bucket: 'layers', redirect: 'stream' });
  });

  it('turns off on-demand builds and passes the package lists to the registry, as it reads them', () => {
    const d = desiredInstance(
      instance({ onDemand: false, packages: { allow: ['hello', 'python3Packages.*'], deny: ['python3Packages.requests', '_7zip'] } }),
    );
    const env = envOf(d);
    assert.equal(env.NIXERY_ON_DEMAND, 'false');
    assert.equal(env.NIXERY_ALLOWED_PACKAGES, 'hello,python3Packages.*');
    assert.equal(env.NIXERY_DENIED_PACKAGES, 'python3Packages.requests,_7zip');
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...rest } = env;
    const config = load(rest);
    assert.equal(config.onDemand, false);
    assert.deepEqual(config.allowedPackages, ['hello', 'python3Packages.*']);
    assert.deepEqual(config.deniedPackages, ['python3Packages.requests', '_7zip']);
    assert.deepEqual(envOf(desiredInstance(instance({ packages: { deny: ['htop'] } }))).NIXERY_DENIED_PACKAGES, 'htop');
  });

  it('passes the bounds on on-demand builds and credential checks to the registry, as it reads them, and leaves unset ones to its defaults', () => {
    const env = envOf(desiredInstance(instance({ limits: { maxQueuedBuilds: 0, clientBuildsPerMinute: 120, clientAuthChecksPerMinute: 240, maxClosureSize: '2Gi' } })));
    assert.equal(env.NIXERY_MAX_QUEUED_BUILDS, '0');
    assert.equal(env.NIXERY_CLIENT_BUILDS_PER_MINUTE, '120');
    assert.equal(env.NIXERY_CLIENT_AUTH_CHECKS_PER_MINUTE, '240');
    assert.equal(env.NIXERY_MAX_CLOSURE_SIZE, '2Gi');
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...rest } = env;
    const config = load(rest);
    assert.equal(config.maxQueuedBuilds, 0);
    assert.equal(config.clientBuildsPerMinute, 120);
    assert.equal(config.clientAuthChecksPerMinute, 240);
    assert.equal(config.maxClosureBytes, 2 * 1024 ** 3);
    for (const spec of [{}, { limits: {} }]) {
      const unset = envOf(desiredInstance(instance(spec)));
      for (const name of ['NIXERY_MAX_QUEUED_BUILDS', 'NIXERY_CLIENT_BUILDS_PER_MINUTE', 'NIXERY_CLIENT_AUTH_CHECKS_PER_MINUTE', 'NIXERY_MAX_CLOSURE_SIZE']) assert.equal(unset[name], undefined, name);
    }
    assert.deepEqual(desiredInstance(instance({ limits: {} })), desiredInstance(instance()), 'instances that set no limit keep their pods');
  });

  it('gives an instance whose storage names neither a volume nor a bucket (only gc settings) the default 20Gi ReadWriteOnce volume', () => {
    const d = desiredInstance(instance({ storage: { gc: { graceSeconds: 7200 } } }));
    assert.deepEqual(d.persistentVolumeClaim?.spec, { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '20Gi' } } });
    assert.equal(envOf(d).NIXERY_GC_GRACE, '7200');
    assert.equal(desiredInstance(instance({ storage: { gcs: { bucket: 'b', signedUrls: true } } })).persistentVolumeClaim, undefined);
  });

  it('rolls a ReadWriteMany volume\'s replicas over one by one, and replaces the pod of a ReadWriteOnce one', () => {
    const shared = desiredInstance(instance({ replicas: 3, storage: { persistentVolume: { size: '10Gi', accessModes: ['ReadWriteMany'] } } }));
    assert.equal(shared.deployment.spec?.replicas, 3);
    assert.deepEqual(shared.deployment.spec?.strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
    assert.deepEqual(desiredInstance(instance()).deployment.spec?.strategy, { type: 'Recreate' });
  });

  it('turns the Nix store collection on only when asked, as the registry reads it', () => {
    const d = desiredInstance(instance({ nixStoreGc: { intervalSeconds: 3600, maxFreed: '5Gi' } }));
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...env } = envOf(d);
    assert.deepEqual(load(env).nixGc, { intervalSeconds: 3600, maxFreedBytes: 5 * 1024 ** 3 });
    for (const off of [instance(), instance({ nixStoreGc: {} }), instance({ nixStoreGc: { intervalSeconds: 0 } })]) {
      assert.equal(envOf(desiredInstance(off)).NIXERY_NIX_GC_INTERVAL, undefined);
    }
  });

  it('compresses layers with zstd when spec.layerCompression says so; gzip, the default, leaves the environment as it was', () => {
    const zstd = desiredInstance(instance({ layerCompression: 'zstd' }));
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...env } = envOf(zstd);
    assert.equal(env.NIXERY_LAYER_COMPRESSION, 'zstd');
    assert.equal(load(env).layerCompression, 'zstd', 'as the registry reads it');
    for (const gzip of [instance(), instance({ layerCompression: 'gzip' }), instance({ layerCompression: undefined })]) {
      assert.equal(envOf(desiredInstance(gzip)).NIXERY_LAYER_COMPRESSION, undefined);
      assert.deepEqual(desiredInstance(gzip).deployment, desiredInstance(instance()).deployment, 'the same pods as before the field existed');
    }
  });

  it('passes the storage quota to the registry as NIXERY_STORAGE_QUOTA, which it reads back in bytes', () => {
    const d = desiredInstance(instance({ storage: { persistentVolume: { size: '10Gi', accessModes: ['ReadWriteOnce'] }, quota: '8Gi' } }));
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...env } = envOf(d);
    assert.equal(env.NIXERY_STORAGE_QUOTA, '8Gi');
    assert.equal(load(env).storageQuotaBytes, 8 * 1024 ** 3);
    assert.equal(envOf(desiredInstance(instance())).NIXERY_STORAGE_QUOTA, undefined);
  });

  it('passes the garbage-collection settings to the registry, as it reads them, and leaves unset ones to its defaults', () => {
    const d = desiredInstance(instance({ nixTimeout: 60, storage: { persistentVolume: { size: '10Gi', accessModes: ['ReadWriteOnce'] }, gc: { intervalSeconds: 0, graceSeconds: 7200, retainPulledWithinSeconds: 604800, maxImagesPerName: 3 } } }));
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...env } = envOf(d);
    assert.deepEqual(load(env).gc, { intervalSeconds: 0, graceSeconds: 7200, retainPulledWithinSeconds: 604800, maxImagesPerName: 3 });
    const partial = envOf(desiredInstance(instance({ storage: { persistentVolume: { size: '10Gi', accessModes: ['ReadWriteOnce'] }, gc: { retainPulledWithinSeconds: 90 * 86400 } } })));
    assert.equal(partial.NIXERY_RETAIN_PULLED_WITHIN, String(90 * 86400));
    for (const name of ['NIXERY_GC_INTERVAL', 'NIXERY_GC_GRACE', 'NIXERY_GC_MAX_IMAGES_PER_NAME']) assert.equal(partial[name], undefined, name);
    assert.deepEqual(desiredInstance(instance({ storage: { persistentVolume: { size: '10Gi', accessModes: ['ReadWriteOnce'] }, gc: {} } })), desiredInstance(instance()), 'an empty gc keeps the pods');
  });

  it('passes the build slots and the tag records to the registry, as it reads them', () => {
    const d = desiredInstance(instance({ limits: { maxConcurrentBuilds: 4, tagFlushIntervalSeconds: 5, maxRecordedTags: 50_000 } }));
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...env } = envOf(d);
    const config = load(env);
    assert.equal(config.maxConcurrentBuilds, 4);
    assert.equal(config.tagFlushIntervalSeconds, 5);
    assert.equal(config.maxRecordedTags, 50_000);
    const unset = envOf(desiredInstance(instance({ limits: { maxQueuedBuilds: 3 } })));
    for (const name of ['NIXERY_MAX_CONCURRENT_BUILDS', 'NIXERY_TAG_FLUSH_INTERVAL', 'NIXERY_MAX_RECORDED_TAGS']) assert.equal(unset[name], undefined, name);
  });

  it('passes the connection limits and the free-space reserve to the registry, as it reads them, and leaves unset ones to its defaults', () => {
    const limits = { headersTimeoutSeconds: 10, receiveTimeoutSeconds: 120, sendStallTimeoutSeconds: 20, keepAliveTimeoutSeconds: 15, maxConnections: 300, minFreeSpace: '5%' };
    const env = envOf(desiredInstance(instance({ limits })));
    assert.equal(env.NIXERY_HEADERS_TIMEOUT, '10');
    assert.equal(env.NIXERY_RECEIVE_TIMEOUT, '120');
    assert.equal(env.NIXERY_SEND_STALL_TIMEOUT, '20');
    assert.equal(env.NIXERY_KEEPALIVE_TIMEOUT, '15');
    assert.equal(env.NIXERY_MAX_CONNECTIONS, '300');
    assert.equal(env.NIXERY_MIN_FREE_SPACE, '5%');
    const { NIXERY_PUSH_TOKEN_FILE: _file, ...rest } = env;
    const config = load(rest);
    assert.deepEqual(config.connections, { headersTimeoutSeconds: 10, receiveTimeoutSeconds: 120, sendStallTimeoutSeconds: 20, keepAliveTimeoutSeconds: 15, maxConnections: 300 });
    assert.deepEqual(config.minFreeSpace, { percent: 5 });
    const one = envOf(desiredInstance(instance({ limits: { sendStallTimeoutSeconds: 45, minFreeSpace: '2Gi' } })));
    assert.equal(one.NIXERY_SEND_STALL_TIMEOUT, '45');
    assert.equal(one.NIXERY_MIN_FREE_SPACE, '2Gi');
    const unset = envOf(desiredInstance(instance({ limits: { maxQueuedBuilds: 3 } })));
    for (const name of ['NIXERY_HEADERS_TIMEOUT', 'NIXERY_RECEIVE_TIMEOUT', 'NIXERY_SEND_STALL_TIMEOUT', 'NIXERY_KEEPALIVE_TIMEOUT', 'NIXERY_MAX_CONNECTIONS', 'NIXERY_MIN_FREE_SPACE']) {
      assert.equal(unset[name], undefined, name);
      assert.equal(one[name === 'NIXERY_SEND_STALL_TIMEOUT' || name === 'NIXERY_MIN_FREE_SPACE' ? 'none' : name], undefined, name);
    }
  });

  it('leaves the registry defaults (on demand, every package) out of the environment, so existing pods stay', () => {
    for (const spec of [{}, { onDemand: true }, { packages: {} }, { packages: { allow: [], deny: [] } }]) {
      const env = envOf(desiredInstance(instance(spec)));
      for (const name of ['NIXERY_ON_DEMAND', 'NIXERY_ALLOWED_PACKAGES', 'NIXERY_DENIED_PACKAGES']) assert.equal(env[name], undefined, `${name} for ${JSON.stringify(spec)}`);
      const { NIXERY_PUSH_TOKEN_FILE: _file, ...rest } = env;
      const config = load(rest);
      assert.equal(config.onDemand, true);
      assert.equal(config.allowedPackages, undefined);
      assert.deepEqual(config.deniedPackages, []);
    }
    assert.deepEqual(desiredInstance(instance({ onDemand: true })), desiredInstance(instance()));
  });

  it('probes the registry on /healthz (its /v2/ may rightly answer 401)', () => {
    const container = desiredInstance(instance()).deployment.spec!.template.spec!.containers[0]!;
    assert.equal(container.readinessProbe!.httpGet!.path, '/healthz');
    assert.equal(container.livenessProbe!.httpGet!.path, '/healthz');
    assert.deepEqual(container.args, ['serve', '--host', '$(POD_IP)']);
    assert.deepEqual(container.env![0], { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } });
  });

  it('adds a host-network forwarder per node when nodeLocal is enabled', () => {
    const d = desiredInstance(instance({ nodeLocal: { enabled: true, hostPort: 5555 } }));
    const pod = d.nodeLocal!.spec!.template.spec!;
    assert.equal(pod.hostNetwork, true);
    assert.deepEqual(pod.containers[0]!.args, ['forward', '--listen', '127.0.0.1:5555', '--target', 'nixery.team-a.svc.cluster.local:5000']);
    assert.equal(desiredInstance(instance()).nodeLocal, undefined);
  });

  it('authenticates in every instance: the pull user, the policy, the token key and the ServiceAccount-token audience', () => {
    const d = desiredInstance(instance());
    const env = envOf(d);
    assert.equal(env.NIXERY_ANONYMOUS_PULL, 'true');
    assert.equal(env.NIXERY_HTPASSWD_FILE, '/var/run/secrets/nixery/pull-user/htpasswd');
    assert.equal(env.NIXERY_AUTH_POLICY_FILE, '/etc/nixery/policy/policy.json');
    assert.equal(env.NIXERY_TOKEN_KEY_FILE, '/var/run/secrets/nixery/token-key/key.pem');
    assert.equal(env.NIXERY_K8S_TOKEN_AUDIENCE, 'nixery.dev/team-a/nixery');
    const config = load(env);
    assert.equal(config.auth.anonymousPull, true);
    assert.equal(config.auth.kubernetesTokens?.audience, 'nixery.dev/team-a/nixery');
    const pod = d.deployment.spec!.template.spec!;
    assert.deepEqual(pod.volumes!.slice(-3), [
      { name: 'pull-user', secret: { secretName: 'nixery-pull-user', items: [{ key: 'htpasswd', path: 'htpasswd' }] } },
      { name: 'auth-policy', configMap: { name: 'nixery-auth-policy' } },
      { name: 'token-key', secret: { secretName: 'nixery-token-key' } },
    ]);
    const mounts = Object.fromEntries(pod.containers[0]!.volumeMounts!.map((m) => [m.name, m.mountPath]));
    assert.equal(mounts['pull-user'], '/var/run/secrets/nixery/pull-user');
    assert.equal(mounts['auth-policy'], '/etc/nixery/policy');
    assert.equal(mounts['token-key'], '/var/run/secrets/nixery/token-key');
    assert.equal(pod.serviceAccountName, 'nixery', 'the ServiceAccount bound to system:auth-delegator');
    const env2 = Object.fromEntries(pod.containers[0]!.env!.map((e) => [e.name, e]));
    assert.deepEqual(Object.keys(env2), [...Object.keys(env2)].sort((a, b) => (a === 'POD_IP' ? -1 : b === 'POD_IP' ? 1 : a < b ? -1 : 1)), 'one stable order');
  });

  it("adds the user's htpasswd file after the pull user's, and turns anonymous pulls off", () => {
    const d = desiredInstance(instance({ auth: { anonymousPull: false, htpasswdSecretRef: { name: 'users', key: 'team.htpasswd' } } }));
    const env = envOf(d);
    assert.equal(env.NIXERY_ANONYMOUS_PULL, 'false');
    assert.equal(env.NIXERY_HTPASSWD_FILE, '/var/run/secrets/nixery/pull-user/htpasswd,/var/run/secrets/nixery/htpasswd/htpasswd');
    assert.equal(load(env).auth.anonymousPull, false);
    const pod = d.deployment.spec!.template.spec!;
    assert.deepEqual(pod.volumes!.find((v) => v.name === 'htpasswd'), { name: 'htpasswd', secret: { secretName: 'users', items: [{ key: 'team.htpasswd', path: 'htpasswd' }] } });
    assert.ok(pod.containers[0]!.volumeMounts!.some((m) => m.name === 'htpasswd' && m.mountPath === '/var/run/secrets/nixery/htpasswd'));
  });

  describe('with TLS', () => {
    const modes: [string, NixeryInstance['spec']['tls'], string][] = [
      ['secretName', { secretName: 'my-cert' }, 'my-cert'],
      ['issuerRef', { issuerRef: { name: 'ca-issuer', kind: 'ClusterIssuer', group: 'cert-manager.io' } }, 'nixery-tls'],
      ['selfSigned', { selfSigned: {} }, 'nixery-tls'],
    ];
    for (const [mode, tls, secretName] of modes) {
      it(`serves HTTPS from the ${mode} mode's Secret ${secretName}, probed over HTTPS on a port named https`, () => {
        const d = desiredInstance(instance({ tls: tls! }));
        const pod = d.deployment.spec!.template.spec!;
        const container = pod.containers[0]!;
        assert.deepEqual(pod.volumes!.find((v) => v.name === 'tls'), {
          name: 'tls',
          secret: { secretName, items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }] },
        });
        assert.ok(container.volumeMounts!.some((m) => m.name === 'tls' && m.mountPath === '/var/run/secrets/nixery/tls' && m.readOnly));
        const env = envOf(d);
        assert.equal(env.NIXERY_TLS_CERT_FILE, '/var/run/secrets/nixery/tls/tls.crt');
        assert.equal(env.NIXERY_TLS_KEY_FILE, '/var/run/secrets/nixery/tls/tls.key');
        assert.deepEqual(container.ports, [{ name: 'https', containerPort: 8080, protocol: 'TCP' }]);
        assert.deepEqual(container.readinessProbe!.httpGet, { path: '/healthz', port: 'https', scheme: 'HTTPS' });
        assert.deepEqual(container.livenessProbe!.httpGet, { path: '/healthz', port: 'https', scheme: 'HTTPS' });
        assert.deepEqual(d.service.spec!.ports, [{ name: 'https', port: 5000, targetPort: 'https', protocol: 'TCP' }]);
      });
    }

    it('leaves an instance without TLS on plain HTTP', () => {
      const d = desiredInstance(instance());
      const container = d.deployment.spec!.template.spec!.containers[0]!;
      assert.equal(envOf(d).NIXERY_TLS_CERT_FILE, undefined);
      assert.deepEqual(container.readinessProbe!.httpGet, { path: '/healthz', port: 'http', scheme: 'HTTP' });
      assert.ok(!d.deployment.spec!.template.spec!.volumes!.some((v) => v.name === 'tls'));
    });

    it('keeps the node-local forwarder a plain TCP relay: TLS passes through it to the Service', () => {
      const d = desiredInstance(instance({ tls: { selfSigned: {} }, nodeLocal: { enabled: true, hostPort: 5555 } }));
      assert.deepEqual(d.nodeLocal!.spec!.template.spec!.containers[0]!.args, ['forward', '--listen', '127.0.0.1:5555', '--target', 'nixery.team-a.svc.cluster.local:5000']);
    });
  });

  it('is a pure function: the same instance gives the same objects', () => {
    assert.deepEqual(desiredInstance(instance()), desiredInstance(instance()));
  });
});

describe('the node-config DaemonSet (spec.nodeConfig)', () => {
  const configured = (spec: Partial<NixeryInstance['spec']> = {}) => instance({ nodeConfig: { enabled: true }, ...spec });
  const SYSTEM = 'nixery-system';
  const facts = (more: Partial<NodeConfigFacts> = {}): NodeConfigFacts => ({ clusterIP: '10.96.0.12', namespace: SYSTEM, ...more });
  /** The DaemonSet for `subject` with the ClusterIP 10.96.0.12 (or `more`'s) in nixery-system. */
  const daemonSetOf = (subject: NixeryInstance, more: Partial<NodeConfigFacts> = {}) => desiredNodeConfig(subject, facts(more))!.daemonSet;

  it('is made only when asked for and once the Service has a ClusterIP, and never among the instance-namespace objects', () => {
    assert.equal(desiredNodeConfig(instance(), facts()), undefined);
    assert.equal(desiredNodeConfig(configured(), { namespace: SYSTEM }), undefined);
    assert.equal(desiredNodeConfig(configured(), facts({ clusterIP: 'None' })), undefined);
    const d = desiredInstance(configured());
    assert.ok(desiredObjects(d).every((o) => o.kind !== 'DaemonSet'));
    assert.ok(desiredNodeConfig(configured(), facts()));
  });

  it("lives in the node-config namespace under a name unique across namespaces, with the instance's identity labels and no owner reference", () => {
    const ds = daemonSetOf(configured());
    assert.equal(ds.metadata!.namespace, SYSTEM);
    assert.match(ds.metadata!.name!, /^nixery-node-config-team-a-nixery-[0-9a-f]{8}$/);
    assert.equal(ds.metadata!.name, nodeConfigName('team-a', 'nixery'));
    assert.equal(ds.metadata!.ownerReferences, undefined, 'an owner reference cannot cross namespaces');
    assert.deepEqual(ds.metadata!.labels, {
      'app.kubernetes.io/name': 'nixery-node-config',
      'app.kubernetes.io/instance': 'nixery',
      'app.kubernetes.io/component': 'node-config',
      'app.kubernetes.io/part-of': 'nixery',
      'app.kubernetes.io/managed-by': 'nixery-operator',
      'nixery.dev/instance-namespace': 'team-a',
    });
    assert.deepEqual(ds.spec!.template.metadata!.labels, ds.metadata!.labels);
    // The same instance name in another namespace: another DaemonSet, whose pods this one's selector does not take.
    const other = daemonSetOf(testInstance({ nodeConfig: { enabled: true } }, { namespace: 'team-b' }));
    assert.notEqual(other.metadata!.name, ds.metadata!.name);
    assert.deepEqual(ds.spec!.selector.matchLabels, { 'app.kubernetes.io/name': 'nixery-node-config', 'app.kubernetes.io/instance': 'nixery', 'nixery.dev/instance-namespace': 'team-a' });
    assert.notEqual(other.spec!.selector.matchLabels!['nixery.dev/instance-namespace'], 'team-a');
    // The applier's test: ours by the identity labels, not someone else's same-named DaemonSet.
    assert.equal(ownershipProblem(ds, ds), undefined);
    assert.equal(ownershipProblem(ds, other), 'it lacks the labels nixery.dev/instance-namespace=team-a');
    assert.match(ownershipProblem(ds, { metadata: { name: ds.metadata!.name } })!, /^it lacks the labels .*app\.kubernetes\.io\/managed-by=nixery-operator/);
  });

  it('names stay within 63 characters (a pod name) and distinct where the readable part is not', () => {
    assert.equal(nodeConfigName('team-a', 'nixery'), nodeConfigName('team-a', 'nixery'), 'stable');
    assert.notEqual(nodeConfigName('team', 'a-web'), nodeConfigName('team-a', 'web'), 'the same readable part');
    const longNamespace = 'n'.repeat(63);
    const longName = `registry-${'x'.repeat(200)}`;
    const long = nodeConfigName(longNamespace, longName);
    assert.equal(long.length, 63);
    assert.match(long, /^nixery-node-config-n+-[0-9a-f]{8}$/);
    assert.notEqual(nodeConfigName(longNamespace, `${longName}y`), long, 'cut short alike, hashed apart');
    // Cut at a dash or a dot: never a name ending in one before the hash.
    for (const cut of ['a-'.repeat(40), 'a.'.repeat(40), `${'b'.repeat(34)}-c`]) {
      const name = nodeConfigName('ns', cut);
      assert.ok(name.length <= 63, name);
      assert.match(name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, name);
      assert.doesNotMatch(name, /[-.]{2}|\.-/, name);
    }
    assert.equal(nodeConfigCaName('team-a', 'nixery'), `${nodeConfigName('team-a', 'nixery')}-ca`);
  });

  it('runs `nixery node-config` for the Service names against the ClusterIP over plain HTTP', () => {
    const container = daemonSetOf(configured()).spec!.template.spec!.containers[0]!;
    assert.equal(container.image, configured().spec.image);
    assert.deepEqual(container.args, [
      'node-config',
      '--instance', 'team-a/nixery',
      '--host', 'nixery.team-a.svc.cluster.local:5000',
      '--host', 'nixery.team-a.svc:5000',
      '--server', 'http://10.96.0.12:5000',
      '--containerd-dir', '/host/etc/containerd/certs.d',
      '--containerd-host-dir', '/etc/containerd/certs.d',
      '--containerd-config', '/host/etc/containerd/config.toml',
      '--crio-dir', '/host/etc/containers/registries.conf.d',
      '--ready-listen', '$(POD_IP):8090',
    ]);
    assert.deepEqual(container.readinessProbe!.httpGet, { path: '/readyz', port: 'ready', scheme: 'HTTP' });
    assert.deepEqual(container.env, [{ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }]);
  });

  it('mounts exactly the runtime directories (and the config read-only), nothing else of the node', () => {
    const pod = daemonSetOf(configured()).spec!.template.spec!;
    assert.deepEqual(pod.volumes, [
      { name: 'containerd-certs', hostPath: { path: '/etc/containerd/certs.d', type: 'DirectoryOrCreate' } },
      { name: 'crio-registries', hostPath: { path: '/etc/containers/registries.conf.d', type: 'DirectoryOrCreate' } },
      { name: 'containerd-config', hostPath: { path: '/etc/containerd/config.toml', type: 'File' } },
    ]);
    assert.deepEqual(pod.containers[0]!.volumeMounts, [
      { name: 'containerd-certs', mountPath: '/host/etc/containerd/certs.d' },
      { name: 'crio-registries', mountPath: '/host/etc/containers/registries.conf.d' },
      { name: 'containerd-config', mountPath: '/host/etc/containerd/config.toml', readOnly: true },
    ]);
    // containerdConfigPath "" (CRI-O clusters): no config mount, no check.
    const crio = daemonSetOf(configured({ nodeConfig: { enabled: true, containerdConfigPath: '' } })).spec!.template.spec!;
    assert.deepEqual(crio.volumes!.map((v) => v.hostPath!.path), ['/etc/containerd/certs.d', '/etc/containers/registries.conf.d']);
    assert.ok(!crio.containers[0]!.args!.includes('--containerd-config'));
  });

  it('with TLS: https to the ClusterIP, the copy of the CA bundle beside it (optional until it exists), and CRI-O certs.d', () => {
    const pod = daemonSetOf(configured({ tls: { selfSigned: {} } }), { clusterIP: 'fd00::12' }).spec!.template.spec!;
    const args = pod.containers[0]!.args!;
    assert.equal(args[args.indexOf('--server') + 1], 'https://[fd00::12]:5000');
    assert.equal(args[args.indexOf('--ca-file') + 1], '/var/run/secrets/nixery/ca/ca.crt');
    assert.equal(args[args.indexOf('--crio-certs-dir') + 1], '/host/etc/containers/certs.d');
    assert.deepEqual(pod.volumes!.slice(3), [
      { name: 'containers-certs', hostPath: { path: '/etc/containers/certs.d', type: 'DirectoryOrCreate' } },
      { name: 'ca', configMap: { name: nodeConfigCaName('team-a', 'nixery'), optional: true } },
    ]);
  });

  it('with TLS and the CA bundle: its copy in the node-config namespace, labelled as the DaemonSet is, unowned', () => {
    const secure = configured({ tls: { selfSigned: {} } });
    assert.equal(desiredNodeConfig(secure, facts())!.caConfigMap, undefined, 'no bundle yet: nothing to copy');
    assert.equal(desiredNodeConfig(configured(), facts({ caBundle: 'PEM' }))!.caConfigMap, undefined, 'no TLS: no copy');
    const { daemonSet, caConfigMap } = desiredNodeConfig(secure, facts({ caBundle: '-----BEGIN CERTIFICATE-----\n' }))!;
    assert.deepEqual(caConfigMap, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: nodeConfigCaName('team-a', 'nixery'), namespace: SYSTEM, labels: { ...daemonSet.metadata!.labels, 'app.kubernetes.io/name': 'nixery' } },
      data: { 'ca.crt': '-----BEGIN CERTIFICATE-----\n' },
    });
    assert.equal(daemonSet.spec!.template.spec!.volumes!.find((v) => v.name === 'ca')!.configMap!.name, caConfigMap!.metadata!.name);
  });

  it('runs as root without any capability, no host network, no API token, a read-only root, on every node', () => {
    const ds = daemonSetOf(configured({ nodeConfig: { enabled: true, priorityClassName: 'system-node-critical' } }));
    const pod = ds.spec!.template.spec!;
    assert.equal(pod.hostNetwork, undefined);
    assert.equal(pod.hostPID, undefined);
    assert.equal(pod.automountServiceAccountToken, false);
    assert.deepEqual(pod.securityContext, { runAsNonRoot: false, runAsUser: 0, runAsGroup: 0, seccompProfile: { type: 'RuntimeDefault' } });
    assert.deepEqual(pod.containers[0]!.securityContext, { allowPrivilegeEscalation: false, privileged: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true });
    assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
    assert.equal(pod.priorityClassName, 'system-node-critical');
    assert.equal(daemonSetOf(configured()).spec!.template.spec!.priorityClassName, undefined);
    assert.deepEqual(ds.spec!.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
    assert.equal(ds.spec!.template.metadata!.labels!['app.kubernetes.io/name'], 'nixery-node-config');
  });
});
