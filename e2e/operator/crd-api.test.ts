// The nixery.dev API as users meet it in a cluster (the test cluster, or a real one with
// NIXERY_E2E_CLUSTER=existing): `kubectl explain` shows the CRDs' description of every field, and
// the API server enforces their x-kubernetes-validations rules, refusing a violating object with
// 422 Invalid and the rule's message while accepting the valid one next to it. The CRDs' own
// shape (a description on every property, a message on every rule) is
// operator/src/api/crd-schema.test.ts; the older rules are exercised by e2e/chart/template.test.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { REPO_ROOT } from '@nixery/test-support';
import { parse } from 'yaml';
import { acquireCluster, type ClusterUnderTest } from '../support/cluster-under-test.ts';
import { kubectlOk } from '../support/kube.ts';

const NS = 'crd-api';
const CRDS = path.join(REPO_ROOT, 'crds');
const GROUP = 'nixery.dev';
const VERSION = 'v1alpha1';

interface Schema {
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
}

function schemaOf(file: string): Schema {
  const crd = parse(fs.readFileSync(path.join(CRDS, file), 'utf8')) as { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } };
  return crd.spec.versions[0]!.schema.openAPIV3Schema;
}

/** Every field under spec and status with its description, as `kubectl explain` paths (arrays are looked through). */
function fields(schema: Schema, at: string): { path: string; description: string }[] {
  const out: { path: string; description: string }[] = [];
  const props = schema.properties ?? schema.items?.properties ?? {};
  for (const [name, child] of Object.entries(props)) {
    const here = `${at}.${name}`;
    out.push({ path: here, description: child.description ?? '' });
    out.push(...fields(child, here));
  }
  return out;
}

/** kubectl wraps descriptions at its terminal width: compare words, not lines. */
const words = (text: string) => text.replace(/\s+/g, ' ').trim();

interface ApiError {
  code: number;
  reason: string;
  message: string;
  causes: { field?: string; message?: string; reason?: string }[];
}

async function refusal(request: Promise<unknown>): Promise<ApiError> {
  try {
    await request;
  } catch (error) {
    const { code, body } = error as { code?: number; body?: unknown };
    const status = (typeof body === 'string' ? JSON.parse(body) : body) as { reason?: string; message?: string; details?: { causes?: ApiError['causes'] } };
    return { code: code ?? -1, reason: status.reason ?? '', message: status.message ?? '', causes: status.details?.causes ?? [] };
  }
  assert.fail('the API server accepted it');
}

describe('the nixery.dev CRDs in a cluster', () => {
  let cluster: ClusterUnderTest;
  let kubeconfig: string;
  let api: CustomObjectsApi;

  before(async () => {
    cluster = await acquireCluster({ namespaces: [NS] });
    kubeconfig = cluster.kubeconfigPath;
    await kubectlOk(kubeconfig, ['apply', '-f', CRDS]);
    await kubectlOk(kubeconfig, ['wait', '--for=condition=Established', '--timeout=60s', 'crd/nixeryinstances.nixery.dev', 'crd/niximages.nixery.dev']);
    await kubectlOk(kubeconfig, ['create', 'namespace', NS]);
    const config = new KubeConfig();
    config.loadFromFile(kubeconfig);
    api = config.makeApiClient(CustomObjectsApi);
  });
  after(async () => {
    await cluster?.release();
  });

  const explain = (what: string, ...flags: string[]) => kubectlOk(kubeconfig, ['explain', what, ...flags]);

  describe('kubectl explain', () => {
    it('shows the description of niximage.spec.packages', async () => {
      const out = await explain('niximage.spec.packages');
      assert.match(out, /FIELD: *packages <\[\]string>/);
      assert.ok(words(out).includes(words(fields(schemaOf('nixery.dev_niximages.yaml'), 'niximage').find((f) => f.path === 'niximage.spec.packages')!.description)), out);
      assert.match(words(out), /Nix attribute names or paths/);
    });

    it('lists every field of nixeryinstance.spec --recursive under its description', async () => {
      const out = await explain('nixeryinstance.spec', '--recursive');
      const spec = schemaOf('nixery.dev_nixeryinstances.yaml').properties!.spec!;
      assert.ok(words(out).includes(words(spec.description!)), out);
      for (const field of fields(spec, 'spec')) {
        const name = field.path.split('.').pop()!;
        assert.match(out, new RegExp(`^ +${name}\\t<`, 'm'), `${field.path} missing from:\n${out}`);
      }
    });

    for (const [kind, file] of [
      ['nixeryinstance', 'nixery.dev_nixeryinstances.yaml'],
      ['niximage', 'nixery.dev_niximages.yaml'],
    ] as const) {
      it(`shows the CRD's description for every field of ${kind} spec and status`, async () => {
        const all = [...fields(schemaOf(file).properties!.spec!, `${kind}.spec`), ...fields(schemaOf(file).properties!.status!, `${kind}.status`)];
        assert.ok(all.length > 20);
        const failures: string[] = [];
        // A few kubectl processes at a time: one per field.
        for (let i = 0; i < all.length; i += 8) {
          await Promise.all(
            all.slice(i, i + 8).map(async (field) => {
              const out = await explain(field.path);
              if (field.description === '' || !words(out).includes(words(field.description))) failures.push(`${field.path}:\n${out}`);
            }),
          );
        }
        assert.deepEqual(failures, []);
      });
    }
  });

  describe('CEL validation rules', () => {
    const instance = (name: string, spec: object) => ({ apiVersion: `${GROUP}/${VERSION}`, kind: 'NixeryInstance', metadata: { name, namespace: NS }, spec });
    const image = (name: string, spec: object) => ({ apiVersion: `${GROUP}/${VERSION}`, kind: 'NixImage', metadata: { name, namespace: NS }, spec });
    const create = (plural: string, body: object) => api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural, body });
    const patch = (plural: string, name: string, body: object) =>
      api.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural, name, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    const dryRunCreate = (plural: string, body: object) => api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural, body, dryRun: 'All' });

    /** 422 Invalid, with a cause on `field` carrying `message`. */
    function assertInvalid(error: ApiError, field: string, message: RegExp): void {
      assert.equal(error.code, 422, JSON.stringify(error));
      assert.equal(error.reason, 'Invalid', JSON.stringify(error));
      assert.match(error.message, message);
      assert.ok(error.causes.some((c) => c.field === field && message.test(c.message ?? '')), `no cause on ${field}: ${JSON.stringify(error.causes)}`);
    }

    it('a policy rule must name a subject', async () => {
      const rule = (subjects: object) => instance('policy', { auth: { policy: { rules: [{ repositories: ['**'], actions: ['pull'], ...subjects }] } } });
      for (const subjects of [{}, { users: [] }, { serviceAccounts: [], namespaces: [] }, { authenticated: false }]) {
        const error = await refusal(dryRunCreate('nixeryinstances', rule(subjects)));
        assertInvalid(error, 'spec.auth.policy.rules[0]', /a policy rule names at least one subject/);
      }
      for (const subjects of [{ users: ['alice'] }, { serviceAccounts: ['team-a/builder'] }, { namespaces: ['team-a'] }, { authenticated: true }]) {
        await dryRunCreate('nixeryinstances', rule(subjects));
      }
    });

    it('storage is at most one of persistentVolume, gcs and s3; s3 takes keys or a role, and a KMS key only with aws:kms', async () => {
      const storage = (name: string, storage: object, replicas = 1) => instance(name, { replicas, storage });
      for (const spec of [{ persistentVolume: {}, s3: { bucket: 'abc' } }, { gcs: { bucket: 'abc' }, s3: { bucket: 'abc' } }]) {
        assertInvalid(await refusal(dryRunCreate('nixeryinstances', storage('both', spec))), 'spec.storage', /storage takes at most one of persistentVolume, gcs and s3/);
      }
      const keysAndRole = { bucket: 'abc', credentialsSecret: { name: 'keys' }, roleArn: 'arn:aws:iam::123456789012:role/r' };
      assertInvalid(await refusal(dryRunCreate('nixeryinstances', storage('s3-both', { s3: keysAndRole }))), 'spec.storage.s3', /s3 takes credentialsSecret or roleArn, not both/);
      assertInvalid(await refusal(dryRunCreate('nixeryinstances', storage('s3-kms', { s3: { bucket: 'abc', kmsKeyId: 'k' } }))), 'spec.storage.s3', /kmsKeyId needs serverSideEncryption aws:kms/);
      const created = (await dryRunCreate('nixeryinstances', storage('s3', { s3: { bucket: 'abc', serverSideEncryption: 'aws:kms', kmsKeyId: 'k', credentialsSecret: { name: 'keys' } } }, 3))) as {
        spec: { storage: { s3: object } };
      };
      assert.deepEqual(created.spec.storage.s3, {
        bucket: 'abc',
        serverSideEncryption: 'aws:kms',
        kmsKeyId: 'k',
        forcePathStyle: false,
        redirect: 'presigned',
        credentialsSecret: { name: 'keys', accessKeyIdKey: 'AWS_ACCESS_KEY_ID', secretAccessKeyKey: 'AWS_SECRET_ACCESS_KEY' },
      });
    });

    it("a persistent volume's storage class and access modes cannot change, its size can", async () => {
      await create('nixeryinstances', instance('volume', { storage: { persistentVolume: { size: '1Gi', storageClassName: 'fast', accessModes: ['ReadWriteOnce'] } } }));
      const storageClass = await refusal(patch('nixeryinstances', 'volume', { spec: { storage: { persistentVolume: { storageClassName: 'slow' } } } }));
      assertInvalid(storageClass, 'spec.storage.persistentVolume.storageClassName', /storageClassName is immutable/);
      const accessModes = await refusal(patch('nixeryinstances', 'volume', { spec: { storage: { persistentVolume: { accessModes: ['ReadWriteMany'] } } } }));
      assertInvalid(accessModes, 'spec.storage.persistentVolume.accessModes', /accessModes is immutable/);
      const grown = (await patch('nixeryinstances', 'volume', { spec: { storage: { persistentVolume: { size: '2Gi' } }, replicas: 1 } })) as { spec: { storage: { persistentVolume: object } } };
      assert.deepEqual(grown.spec.storage.persistentVolume, { size: '2Gi', storageClassName: 'fast', accessModes: ['ReadWriteOnce'] });
      // Setting a class where none was is not a change of one (the rule compares two values).
      await create('nixeryinstances', instance('volume-default', {}));
      await patch('nixeryinstances', 'volume-default', { spec: { storage: { persistentVolume: { storageClassName: 'fast' } } } });
    });

    it('keeps spec.build of an instance (the operator reads it: a field the schema lacked would be pruned)', async () => {
      const build = { activeDeadlineSeconds: 900, resources: { limits: { memory: '8Gi' } } };
      const created = (await dryRunCreate('nixeryinstances', instance('build', { build }))) as { spec: { build?: object } };
      assert.deepEqual(created.spec.build, build);
    });

    it('layerCompression is gzip or zstd: an instance defaults to gzip, a NixImage leaves it to its instance', async () => {
      type Compressed = { spec: { layerCompression?: string } };
      assert.equal(((await dryRunCreate('nixeryinstances', instance('compression', {}))) as Compressed).spec.layerCompression, 'gzip');
      assert.equal(((await dryRunCreate('nixeryinstances', instance('compression', { layerCompression: 'zstd' }))) as Compressed).spec.layerCompression, 'zstd');
      const imageSpec = { instanceRef: { name: 'nixery' }, packages: ['hello'] };
      assert.equal(((await dryRunCreate('niximages', image('compression', imageSpec))) as Compressed).spec.layerCompression, undefined, "unset: the instance's");
      assert.equal(((await dryRunCreate('niximages', image('compression', { ...imageSpec, layerCompression: 'gzip' }))) as Compressed).spec.layerCompression, 'gzip');
      const unsupported = /Unsupported value: "brotli": supported values: "gzip", "zstd"/;
      assertInvalid(await refusal(dryRunCreate('nixeryinstances', instance('compression', { layerCompression: 'brotli' }))), 'spec.layerCompression', unsupported);
      assertInvalid(await refusal(dryRunCreate('niximages', image('compression', { ...imageSpec, layerCompression: 'brotli' }))), 'spec.layerCompression', unsupported);
    });

    it('a NixImage keeps its instanceRef, name and tag; its packages may change', async () => {
      await create('niximages', image('moving', { instanceRef: { name: 'nixery' }, packages: ['hello'], tag: 'v1' }));
      assertInvalid(await refusal(patch('niximages', 'moving', { spec: { instanceRef: { name: 'other' } } })), 'spec.instanceRef', /spec\.instanceRef is immutable/);
      assertInvalid(await refusal(patch('niximages', 'moving', { spec: { tag: 'v2' } })), 'spec.tag', /spec\.tag is immutable/);
      assertInvalid(await refusal(patch('niximages', 'moving', { spec: { name: 'team-a/moving' } })), 'spec.name', /spec\.name is immutable/);
      const changed = (await patch('niximages', 'moving', { spec: { packages: ['hello', 'git'], rebuildInterval: '24h' } })) as { spec: { packages: string[] } };
      assert.deepEqual(changed.spec.packages, ['hello', 'git']);

      await create('niximages', image('named', { instanceRef: { name: 'nixery' }, name: 'team-a/named', packages: ['hello'] }));
      assertInvalid(await refusal(patch('niximages', 'named', { spec: { name: null } })), 'spec.name', /spec\.name is immutable/);
      assertInvalid(await refusal(patch('niximages', 'named', { spec: { name: 'team-b/named' } })), 'spec.name', /spec\.name is immutable/);
      await patch('niximages', 'named', { spec: { name: 'team-a/named', tag: 'latest' } });
    });

    it('rebuildInterval is at least a minute', async () => {
      const withInterval = (rebuildInterval: string) => image('interval', { instanceRef: { name: 'nixery' }, packages: ['hello'], rebuildInterval });
      for (const interval of ['0s', '0h', '30s', '59s', '0h0m59s', '10s10s']) {
        const error = await refusal(dryRunCreate('niximages', withInterval(interval)));
        assertInvalid(error, 'spec.rebuildInterval', /rebuildInterval must be at least 1m/);
      }
      for (const interval of ['1m', '60s', '90s', '100s', '24h', '1h30m', '0h1m', '0060s']) {
        await dryRunCreate('niximages', withInterval(interval));
      }
    });
  });
});
