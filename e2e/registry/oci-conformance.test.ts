// The OCI distribution-spec conformance suite (v1.1.1, vendored in e2e/oci-conformance/) against
// the registry with filesystem storage: all four workflows (pull, push, content discovery with
// referrers, content management with deletes), once with the push token and once with
// authentication on (anonymous pulls off, an htpasswd user allowed by a policy), and once on Google
// Cloud Storage (the local emulator; blob reads redirected to signed URLs). Every spec must
// pass, and only the four specs that are alternatives of ones that run may be skipped (README there).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { run } from '@nixery/test-support';
import { unpackConformanceSuite } from '../oci-conformance/unpack.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';
import { startGcsEmulator } from '../gcs/emulator.ts';
import { writeServiceAccountKey } from '../gcs/service-account.ts';

const TOKEN = 'e2e-conformance-token-0123456789';
const TITLE = 'OCI Distribution Conformance Tests ';
const EXPECTED_SKIPS = [
  'Pull Setup Get tag name from environment',
  'Push Cross-Repository Blob Mount Cross-mounting of nonexistent blob should yield session id',
  'Push Cross-Repository Blob Mount Cross-mounting without from, and automatic content discovery disabled should return a 202',
  'Content Discovery Setup Populate registry with test tags (no push)',
];

interface Spec {
  name: string;
  status: string;
  failure?: string;
}

/** The specs of ginkgo's junit.xml, by name and status, with the failure message of a failed one. */
function junitSpecs(xml: string): Spec[] {
  const unescape = (s: string) => s.replace(/&#xA;/g, '\n').replace(/&#34;|&quot;/g, '"').replace(/&#39;|&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  return [...xml.matchAll(/<testcase name="([^"]*)"[^>]*status="([^"]*)"[^>]*>([\s\S]*?)<\/testcase>/g)].map(([, name, status, body]) => {
    const failure = /<failure message="([^"]*)"/.exec(body!)?.[1];
    return { name: unescape(name!).replace(TITLE, ''), status: status!, ...(failure !== undefined ? { failure: unescape(failure) } : {}) };
  });
}

interface ConformanceCase {
  /** What the registry is started with. */
  env: Record<string, string>;
  /** The suite's Basic credentials. */
  username: string;
  password: string;
  /** Stops what the setup started besides the registry. */
  close?: () => Promise<void>;
}

/** Runs all four workflows against a registry started for `setup`; every spec must pass, and only the alternatives may be skipped. */
function conformanceCase(title: string, setup: (work: string) => Promise<ConformanceCase>): void {
  describe(title, () => {
    let registry: RegistryProcess;
    let work: string;
    let conformance: ConformanceCase;
    before(async () => {
      work = await tempDir('nixery-e2e-conformance-');
      conformance = await setup(work);
      registry = await startRegistry({ env: conformance.env });
    });
    after(async () => {
      await registry?.stop();
      await conformance?.close?.();
      if (registry) await fs.rm(registry.storagePath, { recursive: true, force: true });
      if (work) await fs.rm(work, { recursive: true, force: true });
    });

    it('passes every spec of pull, push, content discovery and content management, skipping only the alternatives', async () => {
      const suite = await unpackConformanceSuite(path.join(work, 'conformance.test'));
      const reports = path.join(work, 'report');
      await fs.mkdir(reports);
      const result = await run(suite, ['-test.v', '-ginkgo.no-color'], {
        cwd: reports,
        timeoutMs: 180_000,
        env: {
          PATH: process.env.PATH,
          HOME: work,
          OCI_ROOT_URL: registry.url,
          OCI_NAMESPACE: 'myorg/myrepo',
          OCI_CROSSMOUNT_NAMESPACE: 'myorg/other',
          OCI_AUTOMATIC_CROSSMOUNT: 'true',
          // Basic credentials: the suite exchanges them at /v2/token for a registry token.
          OCI_USERNAME: conformance.username,
          OCI_PASSWORD: conformance.password,
          OCI_TEST_PULL: '1',
          OCI_TEST_PUSH: '1',
          OCI_TEST_CONTENT_DISCOVERY: '1',
          OCI_TEST_CONTENT_MANAGEMENT: '1',
          OCI_REPORT_DIR: reports,
        },
      });
      const output = result.stdout + result.stderr;
      // ginkgo's summary: "Ran 75 of 79 Specs ... -- 75 Passed | 0 Failed | 0 Pending | 4 Skipped"
      const summary = /(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped/.exec(output);
      assert.ok(summary, `the suite printed no summary (exit ${result.code}):\n${output.slice(-4000)}`);
      const specs = junitSpecs(await fs.readFile(path.join(reports, 'junit.xml'), 'utf8'));
      const failed = specs.filter((s) => s.status === 'failed' || s.failure !== undefined);
      assert.deepEqual(
        failed.map((s) => `${s.name}: ${s.failure ?? ''}`),
        [],
        `failed specs (registry log tail:\n${registry.logs().slice(-3000)})`,
      );
      assert.deepEqual(specs.filter((s) => s.status === 'skipped').map((s) => s.name).sort(), [...EXPECTED_SKIPS].sort(), 'skipped specs');
      const [, passed, failedCount, pending, skipped] = summary.map(Number);
      assert.deepEqual({ passed, failed: failedCount, pending, skipped }, { passed: 75, failed: 0, pending: 0, skipped: 4 });
      assert.equal(result.code, 0, 'the suite exits 0');
      assert.ok(!registry.logs().includes(conformance.password), 'no credential in the registry log');
    });
  });
}

conformanceCase('registry: the OCI distribution-spec conformance suite, with the push token', async () => ({
  env: { NIXERY_PUSH_TOKEN: TOKEN },
  // The administrator: any user name, the push token as the password.
  username: 'any',
  password: TOKEN,
}));

conformanceCase('registry: the OCI distribution-spec conformance suite, with authentication on (anonymous pulls off, an htpasswd user, a policy)', async (work) => {
  const password = 'conformance-password-0123';
  const htpasswd = path.join(work, 'htpasswd');
  await fs.writeFile(htpasswd, `conformance:${bcrypt.hashSync(password, 4)}\n`);
  const policy = path.join(work, 'policy.json');
  await fs.writeFile(policy, JSON.stringify({ rules: [{ repositories: ['myorg/**'], users: ['conformance'], actions: ['pull', 'push', 'delete'] }] }));
  return {
    env: { NIXERY_PUSH_TOKEN: TOKEN, NIXERY_ANONYMOUS_PULL: 'false', NIXERY_HTPASSWD_FILE: htpasswd, NIXERY_AUTH_POLICY_FILE: policy },
    username: 'conformance',
    password,
  };
});

conformanceCase('registry: the OCI distribution-spec conformance suite, on Google Cloud Storage (emulated), with the push token', async (work) => {
  const bucket = 'nixery-conformance';
  const emulator = await startGcsEmulator({ buckets: [bucket] });
  try {
    const key = await writeServiceAccountKey(work);
    emulator.registerServiceAccount(key.clientEmail, key.publicKey);
    return {
      env: { NIXERY_PUSH_TOKEN: TOKEN, NIXERY_STORAGE_BACKEND: 'gcs', GCS_BUCKET: bucket, GOOGLE_APPLICATION_CREDENTIALS: key.file, STORAGE_EMULATOR_HOST: emulator.url },
      username: 'any',
      password: TOKEN,
      close: () => emulator.close(),
    };
  } catch (error) {
    await emulator.close();
    throw error;
  }
});
