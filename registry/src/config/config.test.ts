import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { issueCertificate, makeCertificateAuthority, type ServingCertificate } from '@nixery/test-support';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { DEFAULT_TRUSTED_REFS, isTrustedRef, trustedRefPatternProblem } from './package-source.ts';
import { bundledPackageSetPath, ConfigError, DEFAULT_CONNECTION_LIMITS, DEFAULT_LAYER_BUDGET, ENV, loadConfig, loadLogLevel, renderEnvironment, type RegistrySettings } from './config.ts';

describe('configuration from Nixery environment variables', () => {
  it('uses the embedded defaults when nothing is set: port 8080, local filesystem storage, the bundled set', () => {
    const config = loadConfig({}, '/srv/nixery');
    assert.equal(config.port, 8080);
    assert.deepEqual(config.storage, { backend: 'filesystem', path: '/srv/nixery/.data/storage' });
    assert.deepEqual(config.source, { type: 'path', path: bundledPackageSetPath() });
    assert.equal(config.sourceIsDefault, true);
    assert.equal(config.nixTimeoutSeconds, 60);
    assert.equal(config.layerBudget, DEFAULT_LAYER_BUDGET);
  });

  it('follows Nixery precedence: channel, then git repository, then path', () => {
    const all = { NIXERY_CHANNEL: 'nixos-unstable', NIXERY_PKGS_REPO: 'https://example.org/pkgs.git', NIXERY_PKGS_PATH: '/pkgs' };
    assert.equal(loadConfig(all).source.type, 'channel');
    assert.deepEqual(loadConfig({ ...all, NIXERY_CHANNEL: '' }).source, { type: 'git', url: 'https://example.org/pkgs.git' });
    assert.deepEqual(loadConfig({ NIXERY_PKGS_PATH: 'pkgs' }, '/work').source, { type: 'path', path: '/work/pkgs' });
    assert.equal(loadConfig({ NIXERY_PKGS_PATH: '/pkgs' }).sourceIsDefault, false);
  });

  it('fetches channels from the nixpkgs archive unless told otherwise', () => {
    assert.deepEqual(loadConfig({ NIXERY_CHANNEL: 'nixos-24.05' }).source, {
      type: 'channel',
      channel: 'nixos-24.05',
      baseUrl: 'https://github.com/NixOS/nixpkgs/archive',
    });
    const local = loadConfig({ NIXERY_CHANNEL: 'c', NIXERY_CHANNEL_BASE_URL: 'http://127.0.0.1:9/channels/' }).source;
    assert.equal(local.type === 'channel' && local.baseUrl, 'http://127.0.0.1:9/channels');
  });

  it('reads every documented variable', () => {
    const config = loadConfig({
      PORT: '5000',
      STORAGE_PATH: '/var/lib/nixery',
      NIX_TIMEOUT: '300',
      NIX_POPULARITY_URL: 'file:///etc/nixery/popularity.json',
      WEB_DIR: '/srv/web',
      NIXERY_LAYER_BUDGET: '50',
      NIXERY_MAX_CONCURRENT_BUILDS: '4',
    });
    assert.equal(config.port, 5000);
    assert.deepEqual(config.storage, { backend: 'filesystem', path: '/var/lib/nixery' });
    assert.equal(config.nixTimeoutSeconds, 300);
    assert.equal(config.popularityUrl, 'file:///etc/nixery/popularity.json');
    assert.equal(config.webDir, '/srv/web');
    assert.equal(config.layerBudget, 50);
    assert.equal(config.maxConcurrentBuilds, 4);
  });

  it('accepts the gcs backend with a bucket, and demands the bucket', () => {
    assert.deepEqual(loadConfig({ NIXERY_STORAGE_BACKEND: 'gcs', GCS_BUCKET: 'my-bucket', GOOGLE_APPLICATION_CREDENTIALS: '/k.json' }).storage, {
      backend: 'gcs',
      bucket: 'my-bucket',
      credentialsFile: '/k.json',
    });
    assert.throws(() => loadConfig({ NIXERY_STORAGE_BACKEND: 'gcs' }), { variable: 'GCS_BUCKET' });
  });

  it('reads the GCS knobs: redirect mode, signed URL expiry, resumable upload threshold', () => {
    const gcs = { NIXERY_STORAGE_BACKEND: 'gcs', GCS_BUCKET: 'my-bucket' };
    assert.deepEqual(
      loadConfig({ ...gcs, NIXERY_GCS_REDIRECT: 'public', NIXERY_GCS_SIGNED_URL_EXPIRY: '600', NIXERY_GCS_RESUMABLE_THRESHOLD: '0' }).storage,
      { backend: 'gcs', bucket: 'my-bucket', redirect: 'public', signedUrlExpirySeconds: 600, resumableThresholdBytes: 0 },
    );
    assert.deepEqual(loadConfig(gcs).storage, { backend: 'gcs', bucket: 'my-bucket' }, 'unset knobs take the backend defaults');
    for (const [env, variable] of [
      [{ NIXERY_GCS_REDIRECT: 'proxy' }, ENV.gcsRedirect],
      [{ NIXERY_GCS_SIGNED_URL_EXPIRY: '604801' }, ENV.gcsSignedUrlExpiry],
      [{ NIXERY_GCS_SIGNED_URL_EXPIRY: '0' }, ENV.gcsSignedUrlExpiry],
      [{ NIXERY_GCS_RESUMABLE_THRESHOLD: '-1' }, ENV.gcsResumableThreshold],
      [{ NIXERY_GCS_RESUMABLE_THRESHOLD: '8MiB' }, ENV.gcsResumableThreshold],
    ] as const) {
      assert.throws(() => loadConfig({ ...gcs, ...env }), { variable }, JSON.stringify(env));
    }
  });

  it('accepts the s3 backend with its settings, and demands the bucket', () => {
    const s3 = { NIXERY_STORAGE_BACKEND: 's3', S3_BUCKET: 'my-bucket' };
    assert.deepEqual(loadConfig(s3).storage, { backend: 's3', bucket: 'my-bucket' }, 'unset knobs take the backend defaults; region and credentials come from the SDK chain');
    assert.deepEqual(
      loadConfig({
        ...s3,
        S3_REGION: 'eu-west-1',
        S3_ENDPOINT: 'http://rgw.storage:7480',
        S3_FORCE_PATH_STYLE: 'true',
        S3_PREFIX: '/team/nixery/',
        NIXERY_S3_REDIRECT: 'stream',
        NIXERY_S3_PRESIGNED_URL_EXPIRY: '600',
        NIXERY_S3_SSE: 'aws:kms',
        NIXERY_S3_SSE_KMS_KEY_ID: 'alias/nixery',
        NIXERY_S3_PART_SIZE: '16Mi',
      }).storage,
      {
        backend: 's3',
        bucket: 'my-bucket',
        region: 'eu-west-1',
        endpoint: 'http://rgw.storage:7480',
        forcePathStyle: true,
        prefix: 'team/nixery',
        redirect: 'stream',
        presignedUrlExpirySeconds: 600,
        serverSideEncryption: 'aws:kms',
        kmsKeyId: 'alias/nixery',
        partSizeBytes: 16 * 1024 * 1024,
      },
    );
    assert.throws(() => loadConfig({ NIXERY_STORAGE_BACKEND: 's3' }), { variable: 'S3_BUCKET' });
    for (const [env, variable] of [
      [{ S3_BUCKET: 'a' }, ENV.s3Bucket],
      [{ S3_ENDPOINT: 'ftp://x' }, ENV.s3Endpoint],
      [{ S3_FORCE_PATH_STYLE: 'yes' }, ENV.s3ForcePathStyle],
      [{ S3_PREFIX: 'a/../b' }, ENV.s3Prefix],
      [{ S3_PREFIX: 'a b' }, ENV.s3Prefix],
      [{ NIXERY_S3_REDIRECT: 'signed' }, ENV.s3Redirect],
      [{ NIXERY_S3_PRESIGNED_URL_EXPIRY: '604801' }, ENV.s3PresignedUrlExpiry],
      [{ NIXERY_S3_SSE: 'SSE-C' }, ENV.s3ServerSideEncryption],
      [{ NIXERY_S3_SSE_KMS_KEY_ID: 'k' }, ENV.s3KmsKeyId],
      [{ NIXERY_S3_PART_SIZE: '1Mi' }, ENV.s3PartSize],
      [{ NIXERY_S3_PART_SIZE: '6Gi' }, ENV.s3PartSize],
    ] as const) {
      assert.throws(() => loadConfig({ ...s3, ...env }), { variable }, JSON.stringify(env));
    }
  });

  it('rejects bad values with an error naming the variable and the value', () => {
    const cases: [Record<string, string>, string][] = [
      [{ PORT: 'http' }, ENV.port],
      [{ PORT: '70000' }, ENV.port],
      [{ PORT: '0' }, ENV.port],
      [{ NIX_TIMEOUT: '-5' }, ENV.nixTimeout],
      [{ NIX_TIMEOUT: '1.5' }, ENV.nixTimeout],
      [{ NIXERY_STORAGE_BACKEND: 'azure' }, ENV.storageBackend],
      [{ NIX_POPULARITY_URL: 'ftp://example.org/p.json' }, ENV.popularityUrl],
      [{ NIXERY_CHANNEL: 'nixos unstable; rm -rf' }, ENV.channel],
      [{ NIXERY_LAYER_BUDGET: '1' }, ENV.layerBudget],
      [{ NIXERY_LOG_LEVEL: 'loud' }, ENV.logLevel],
    ];
    for (const [env, variable] of cases) {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, JSON.stringify(env));
          assert.equal(error.variable, variable);
          assert.ok(error.message.startsWith(`${variable}: `), error.message);
          assert.ok(error.message.includes(JSON.stringify(Object.values(env)[0])), error.message);
          return true;
        },
      );
    }
  });

  it('treats empty variables as unset, as Nixery does', () => {
    assert.equal(loadConfig({ PORT: '', NIX_TIMEOUT: '  ' }).port, 8080);
  });

  it('reads the tag index bounds: flush interval and most recorded pulled tags', () => {
    assert.equal(loadConfig({}).tagFlushIntervalSeconds, 30);
    assert.equal(loadConfig({}).maxRecordedTags, 10_000);
    const config = loadConfig({ NIXERY_TAG_FLUSH_INTERVAL: '5', NIXERY_MAX_RECORDED_TAGS: '100000' });
    assert.equal(config.tagFlushIntervalSeconds, 5);
    assert.equal(config.maxRecordedTags, 100_000);
    for (const [env, variable] of [
      [{ NIXERY_TAG_FLUSH_INTERVAL: '0' }, ENV.tagFlushInterval],
      [{ NIXERY_TAG_FLUSH_INTERVAL: '0.5' }, ENV.tagFlushInterval],
      [{ NIXERY_MAX_RECORDED_TAGS: '0' }, ENV.maxRecordedTags],
      [{ NIXERY_MAX_RECORDED_TAGS: 'many' }, ENV.maxRecordedTags],
    ] as const) {
      assert.throws(() => loadConfig(env), { variable }, JSON.stringify(env));
    }
  });
});

describe('on-demand builds and the package lists', () => {
  it('builds on demand, and every package, by default', () => {
    const config = loadConfig({});
    assert.equal(config.onDemand, true);
    assert.equal(config.allowedPackages, undefined, 'no allow list: everything allowed');
    assert.deepEqual(config.deniedPackages, []);
    assert.equal(loadConfig({ NIXERY_ON_DEMAND: '', NIXERY_ALLOWED_PACKAGES: ' ', NIXERY_DENIED_PACKAGES: '' }).allowedPackages, undefined, 'empty is unset');
  });

  it('reads NIXERY_ON_DEMAND as true or false', () => {
    assert.equal(loadConfig({ NIXERY_ON_DEMAND: 'false' }).onDemand, false);
    assert.equal(loadConfig({ NIXERY_ON_DEMAND: 'true' }).onDemand, true);
  });

  it('reads the lists as comma-separated attribute paths with * as a glob, in their order', () => {
    const config = loadConfig({ NIXERY_ALLOWED_PACKAGES: 'hello, python3Packages.* ,_7zip', NIXERY_DENIED_PACKAGES: 'python3Packages.requests' });
    assert.deepEqual(config.allowedPackages, ['hello', 'python3Packages.*', '_7zip']);
    assert.deepEqual(config.deniedPackages, ['python3Packages.requests']);
  });

  it('rejects anything else with an error naming the variable and the value', () => {
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ NIXERY_ON_DEMAND: 'no' }, ENV.onDemand, /expected true or false/],
      [{ NIXERY_ON_DEMAND: 'False' }, ENV.onDemand, /expected true or false/],
      [{ NIXERY_ON_DEMAND: '0' }, ENV.onDemand, /expected true or false/],
      [{ NIXERY_ALLOWED_PACKAGES: 'hello,,git' }, ENV.allowedPackages, /an empty entry/],
      [{ NIXERY_ALLOWED_PACKAGES: 'hello,' }, ENV.allowedPackages, /an empty entry/],
      [{ NIXERY_DENIED_PACKAGES: 'hello git' }, ENV.deniedPackages, /"hello git" is no attribute path/],
      [{ NIXERY_DENIED_PACKAGES: 'shell/git' }, ENV.deniedPackages, /"shell\/git" is no attribute path/],
      [{ NIXERY_DENIED_PACKAGES: 'a..b' }, ENV.deniedPackages, /is no attribute path/],
      [{ NIXERY_DENIED_PACKAGES: 'x'.repeat(129) }, ENV.deniedPackages, /longer than 128 characters/],
      [{ NIXERY_DENIED_PACKAGES: Array.from({ length: 257 }, (_, i) => `p${i}`).join(',') }, ENV.deniedPackages, /at most 256 comma-separated attribute paths, got 257/],
    ];
    for (const [env, variable, message] of cases) {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, JSON.stringify(env));
          assert.equal(error.variable, variable);
          assert.ok(error.message.startsWith(`${variable}: `), error.message);
          assert.match(error.message, message);
          assert.ok(error.message.includes(JSON.stringify(Object.values(env)[0])), error.message);
          return true;
        },
      );
    }
  });
});

describe('the bounds on on-demand builds', () => {
  it('default to 16 queued builds, 30 new builds a minute per client, and closures up to 10 GiB', () => {
    const config = loadConfig({});
    assert.equal(config.maxConcurrentBuilds, 2);
    assert.equal(config.maxQueuedBuilds, 16);
    assert.equal(config.clientBuildsPerMinute, 30);
    assert.equal(config.maxClosureBytes, 10 * 1024 ** 3);
  });

  it('reads each variable; a closure size takes Kubernetes quantity suffixes, and no build need wait', () => {
    const config = loadConfig({ NIXERY_MAX_QUEUED_BUILDS: '0', NIXERY_CLIENT_BUILDS_PER_MINUTE: '5', NIXERY_MAX_CLOSURE_SIZE: '512Mi' });
    assert.equal(config.maxQueuedBuilds, 0);
    assert.equal(config.clientBuildsPerMinute, 5);
    assert.equal(config.maxClosureBytes, 512 * 1024 ** 2);
    assert.equal(loadConfig({ NIXERY_MAX_CLOSURE_SIZE: '2G' }).maxClosureBytes, 2e9);
    assert.equal(loadConfig({ NIXERY_MAX_CLOSURE_SIZE: '123456' }).maxClosureBytes, 123456);
  });

  it('rejects anything else with an error naming the variable and the value', () => {
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ NIXERY_MAX_QUEUED_BUILDS: '-1' }, ENV.maxQueuedBuilds, /expected a number of builds as a whole number/],
      [{ NIXERY_MAX_QUEUED_BUILDS: 'many' }, ENV.maxQueuedBuilds, /expected a number of builds as a whole number/],
      [{ NIXERY_MAX_QUEUED_BUILDS: '9999999' }, ENV.maxQueuedBuilds, /at most 1000000/],
      [{ NIXERY_CLIENT_BUILDS_PER_MINUTE: '0' }, ENV.clientBuildsPerMinute, /greater than zero/],
      [{ NIXERY_CLIENT_BUILDS_PER_MINUTE: '2.5' }, ENV.clientBuildsPerMinute, /whole number/],
      [{ NIXERY_MAX_CLOSURE_SIZE: '10GB' }, ENV.maxClosureSize, /suffix \(such as 10Gi\)/],
      [{ NIXERY_MAX_CLOSURE_SIZE: '0' }, ENV.maxClosureSize, /greater than zero/],
      [{ NIXERY_MAX_CLOSURE_SIZE: '1.5Gi' }, ENV.maxClosureSize, /size in bytes/],
      [{ NIXERY_MAX_CLOSURE_SIZE: '99999999999Ti' }, ENV.maxClosureSize, /size in bytes/],
    ];
    for (const [env, variable, message] of cases) {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, JSON.stringify(env));
          assert.equal(error.variable, variable);
          assert.ok(error.message.startsWith(`${variable}: `), error.message);
          assert.match(error.message, message);
          assert.ok(error.message.includes(JSON.stringify(Object.values(env)[0])), error.message);
          return true;
        },
      );
    }
  });
});

describe('the per-client bound on credential checks (NIXERY_CLIENT_AUTH_CHECKS_PER_MINUTE)', () => {
  it('defaults to 60 checks a minute and reads a positive whole number', () => {
    assert.equal(loadConfig({}).clientAuthChecksPerMinute, 60);
    assert.equal(loadConfig({ NIXERY_CLIENT_AUTH_CHECKS_PER_MINUTE: '5' }).clientAuthChecksPerMinute, 5);
  });

  it('rejects anything else with an error naming the variable and the value', () => {
    for (const [value, message] of [['0', /greater than zero/], ['2.5', /whole number/], ['-3', /whole number/], ['many', /whole number/]] as const) {
      assert.throws(
        () => loadConfig({ NIXERY_CLIENT_AUTH_CHECKS_PER_MINUTE: value }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, value);
          assert.equal(error.variable, ENV.clientAuthChecksPerMinute);
          assert.ok(error.message.startsWith(`${ENV.clientAuthChecksPerMinute}: `), error.message);
          assert.match(error.message, message);
          assert.ok(error.message.includes(JSON.stringify(value)), error.message);
          return true;
        },
      );
    }
  });
});

describe('the trusted refs of a git source (NIXERY_PKGS_REPO_TRUSTED_REFS)', () => {
  it('are left to the default, every branch and tag, when unset', () => {
    assert.deepEqual(loadConfig({ NIXERY_PKGS_REPO: '/pkgs' }).source, { type: 'git', url: '/pkgs' });
    assert.deepEqual(DEFAULT_TRUSTED_REFS, ['refs/heads/*', 'refs/tags/*']);
  });

  it('are read as comma-separated ref patterns, in their order', () => {
    const source = loadConfig({ NIXERY_PKGS_REPO: '/pkgs', NIXERY_PKGS_REPO_TRUSTED_REFS: 'refs/heads/main, refs/heads/release-*,refs/tags/v*' }).source;
    assert.deepEqual(source, { type: 'git', url: '/pkgs', trustedRefs: ['refs/heads/main', 'refs/heads/release-*', 'refs/tags/v*'] });
  });

  it('reject anything that is no full ref pattern, naming the variable and the value', () => {
    for (const bad of ['heads/*', 'refs/heads/*,', 'refs/*/*', 'refs/heads/a..b', 'refs/heads/x.lock', 'refs//x', 'refs/heads/ x y', 'refs/heads/.hidden', 'refs/heads/']) {
      assert.throws(
        () => loadConfig({ NIXERY_PKGS_REPO: '/pkgs', NIXERY_PKGS_REPO_TRUSTED_REFS: bad }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, bad);
          assert.equal(error.variable, 'NIXERY_PKGS_REPO_TRUSTED_REFS');
          assert.ok(error.message.includes(JSON.stringify(bad)), error.message);
          return true;
        },
      );
    }
  });
});

describe('matching refs against trusted patterns', () => {
  it('matches whole ref names; * matches any characters, / included, as in git refspecs', () => {
    const patterns = ['refs/heads/*', 'refs/tags/v*', 'refs/heads/exact'];
    for (const ref of ['refs/heads/main', 'refs/heads/feature/x', 'refs/tags/v1.2', 'refs/heads/exact']) assert.ok(isTrustedRef(ref, patterns), ref);
    for (const ref of ['refs/pull/1/head', 'refs/tags/release', 'refs/heads', 'refs/remotes/origin/main', 'HEAD', 'refs/notes/commits']) {
      assert.ok(!isTrustedRef(ref, patterns), ref);
    }
    assert.ok(!isTrustedRef('refs/heads/exactly', ['refs/heads/exact']));
    assert.ok(isTrustedRef('refs/heads/release-1-stable', ['refs/heads/release-*-stable']));
    assert.ok(!isTrustedRef('refs/heads/release-stable', ['refs/heads/release-*-stable-x']));
    assert.ok(!DEFAULT_TRUSTED_REFS.some((p) => isTrustedRef('refs/pull/1/head', [p])));
  });

  it('knows a pattern from a problem', () => {
    for (const good of ['refs/heads/*', 'refs/tags/v*', 'refs/heads/main', 'refs/*', 'refs/heads/release-*-stable']) assert.equal(trustedRefPatternProblem(good), undefined, good);
  });
});

describe('connection limits and the free-space reserve', () => {
  it('are on by default: 30 s for headers, 600 s for a whole request, 30 s of send stall, 5 s idle, 1024 connections, 1 GiB free', () => {
    const config = loadConfig({});
    assert.deepEqual(config.connections, {
      headersTimeoutSeconds: 30,
      receiveTimeoutSeconds: 600,
      sendStallTimeoutSeconds: 30,
      keepAliveTimeoutSeconds: 5,
      maxConnections: 1024,
    });
    assert.ok(config.connections.sendStallTimeoutSeconds <= 60, 'the issue asks for a send-stall timeout of at most 60 s');
    assert.deepEqual(config.minFreeSpace, { bytes: 1024 ** 3 });
  });

  it('read whole seconds and a number of connections', () => {
    const config = loadConfig({
      NIXERY_HEADERS_TIMEOUT: '2',
      NIXERY_RECEIVE_TIMEOUT: '3',
      NIXERY_SEND_STALL_TIMEOUT: '4',
      NIXERY_KEEPALIVE_TIMEOUT: '5',
      NIXERY_MAX_CONNECTIONS: '600',
    });
    assert.deepEqual(config.connections, {
      headersTimeoutSeconds: 2,
      receiveTimeoutSeconds: 3,
      sendStallTimeoutSeconds: 4,
      keepAliveTimeoutSeconds: 5,
      maxConnections: 600,
    });
  });

  it('read the reserve as bytes with Kubernetes suffixes, or a percentage; 0 turns the check off', () => {
    const cases: [string, unknown][] = [
      ['0', { bytes: 0 }],
      ['123456', { bytes: 123456 }],
      ['512Mi', { bytes: 512 * 1024 ** 2 }],
      ['2Gi', { bytes: 2 * 1024 ** 3 }],
      ['1Ti', { bytes: 1024 ** 4 }],
      ['64Ki', { bytes: 65536 }],
      ['3G', { bytes: 3e9 }],
      ['500M', { bytes: 5e8 }],
      ['10k', { bytes: 1e4 }],
      ['5%', { percent: 5 }],
      [' 2.5% ', { percent: 2.5 }],
    ];
    for (const [value, reserve] of cases) assert.deepEqual(loadConfig({ NIXERY_MIN_FREE_SPACE: value }).minFreeSpace, reserve, value);
  });

  it('reject anything else with an error naming the variable and the value', () => {
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ NIXERY_HEADERS_TIMEOUT: '0' }, ENV.headersTimeout, /greater than zero/],
      [{ NIXERY_RECEIVE_TIMEOUT: '1.5' }, ENV.receiveTimeout, /whole number/],
      [{ NIXERY_SEND_STALL_TIMEOUT: '30s' }, ENV.sendStallTimeout, /whole number/],
      [{ NIXERY_KEEPALIVE_TIMEOUT: '-1' }, ENV.keepAliveTimeout, /whole number/],
      [{ NIXERY_MAX_CONNECTIONS: 'many' }, ENV.maxConnections, /expected a number of connections as a whole number/],
      [{ NIXERY_MIN_FREE_SPACE: '1GB' }, ENV.minFreeSpace, /expected bytes as a whole number with an optional k, M, G, T, Ki, Mi, Gi or Ti suffix/],
      [{ NIXERY_MIN_FREE_SPACE: '1.5Gi' }, ENV.minFreeSpace, /such as 2Gi/],
      [{ NIXERY_MIN_FREE_SPACE: '100%' }, ENV.minFreeSpace, /below 100%/],
      [{ NIXERY_MIN_FREE_SPACE: '99999999999Ti' }, ENV.minFreeSpace, /expected bytes/],
    ];
    for (const [env, variable, message] of cases) {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, JSON.stringify(env));
          assert.equal(error.variable, variable);
          assert.ok(error.message.startsWith(`${variable}: `), error.message);
          assert.ok(error.message.includes(JSON.stringify(Object.values(env)[0])), error.message);
          assert.match(error.message, message);
          return true;
        },
      );
    }
  });

  it('refuse a headers timeout longer than the whole request may take, naming both variables', () => {
    assert.throws(() => loadConfig({ NIXERY_HEADERS_TIMEOUT: '60', NIXERY_RECEIVE_TIMEOUT: '30' }), {
      variable: 'NIXERY_HEADERS_TIMEOUT',
      message: 'NIXERY_HEADERS_TIMEOUT: 60 s exceeds NIXERY_RECEIVE_TIMEOUT (30 s), which bounds the whole request, headers included',
    });
    assert.equal(loadConfig({ NIXERY_HEADERS_TIMEOUT: '30', NIXERY_RECEIVE_TIMEOUT: '30' }).connections.receiveTimeoutSeconds, 30);
  });
});

describe('rendering a registry environment (what the operator puts in a Deployment)', () => {
  it('round-trips through loadConfig for every source and storage', () => {
    const cases: RegistrySettings[] = [
      { port: 5000, source: { type: 'path', path: '/pkgs' }, storage: { backend: 'filesystem', path: '/var/lib/nixery' } },
      { source: { type: 'git', url: 'https://example.org/pkgs.git' }, nixTimeoutSeconds: 120, layerBudget: 40 },
      { source: { type: 'git', url: 'https://example.org/pkgs.git', trustedRefs: ['refs/heads/main', 'refs/tags/v*'] } },
      { source: { type: 'channel', channel: 'nixos-24.05', baseUrl: 'http://127.0.0.1:1/a' }, popularityUrl: 'https://example.org/p.json' },
      { storage: { backend: 'gcs', bucket: 'my-bucket', credentialsFile: '/var/run/secrets/gcs/key.json' } },
      { storage: { backend: 'gcs', bucket: 'my-bucket', redirect: 'stream', signedUrlExpirySeconds: 60, resumableThresholdBytes: 1024 } },
      { storage: { backend: 's3', bucket: 'my-bucket' } },
      {
        storage: {
          backend: 's3',
          bucket: 'my-bucket',
          region: 'us-east-2',
          endpoint: 'https://s3.example.org',
          forcePathStyle: false,
          prefix: 'a/b',
          redirect: 'presigned',
          presignedUrlExpirySeconds: 60,
          serverSideEncryption: 'AES256',
          partSizeBytes: 8 * 1024 * 1024,
        },
      },
      { onDemand: false },
      { onDemand: true, allowedPackages: ['hello', 'python3Packages.*'], deniedPackages: ['python3Packages.requests', '_7zip'] },
      { maxQueuedBuilds: 0, clientBuildsPerMinute: 7, maxClosureSize: '3Gi' },
      { clientAuthChecksPerMinute: 9 },
      { connections: { headersTimeoutSeconds: 5, receiveTimeoutSeconds: 60, sendStallTimeoutSeconds: 10, keepAliveTimeoutSeconds: 15, maxConnections: 200 } },
      { connections: { sendStallTimeoutSeconds: 45 }, minFreeSpace: '2Gi' },
      { minFreeSpace: '7.5%' },
    ];
    for (const settings of cases) {
      const config = loadConfig(renderEnvironment(settings), '/');
      if (settings.port) assert.equal(config.port, settings.port);
      if (settings.source) assert.deepEqual(config.source, settings.source);
      if (settings.storage) assert.deepEqual(config.storage, settings.storage);
      if (settings.nixTimeoutSeconds) assert.equal(config.nixTimeoutSeconds, settings.nixTimeoutSeconds);
      if (settings.popularityUrl) assert.equal(config.popularityUrl, settings.popularityUrl);
      if (settings.layerBudget) assert.equal(config.layerBudget, settings.layerBudget);
      if (settings.onDemand !== undefined) assert.equal(config.onDemand, settings.onDemand);
      if (settings.allowedPackages) assert.deepEqual(config.allowedPackages, settings.allowedPackages);
      if (settings.deniedPackages) assert.deepEqual(config.deniedPackages, settings.deniedPackages);
      if (settings.maxQueuedBuilds !== undefined) assert.equal(config.maxQueuedBuilds, settings.maxQueuedBuilds);
      if (settings.clientBuildsPerMinute !== undefined) assert.equal(config.clientBuildsPerMinute, settings.clientBuildsPerMinute);
      if (settings.clientAuthChecksPerMinute !== undefined) assert.equal(config.clientAuthChecksPerMinute, settings.clientAuthChecksPerMinute);
      if (settings.maxClosureSize !== undefined) assert.equal(config.maxClosureBytes, 3 * 1024 ** 3);
      assert.deepEqual(config.connections, { ...DEFAULT_CONNECTION_LIMITS, ...settings.connections });
      if (settings.minFreeSpace === '2Gi') assert.deepEqual(config.minFreeSpace, { bytes: 2 * 1024 ** 3 });
      if (settings.minFreeSpace === '7.5%') assert.deepEqual(config.minFreeSpace, { percent: 7.5 });
    }
  });

  it('leaves empty package lists out: an empty allow list is no allow list', () => {
    assert.deepEqual(renderEnvironment({ allowedPackages: [], deniedPackages: [] }), {});
    assert.equal(loadConfig(renderEnvironment({ allowedPackages: [] })).allowedPackages, undefined);
  });

  it('uses only the variable names of this module', () => {
    const env = renderEnvironment({
      port: 1,
      source: { type: 'channel', channel: 'c', baseUrl: 'http://x/y' },
      storage: { backend: 'gcs', bucket: 'abc', credentialsFile: '/k' },
      nixTimeoutSeconds: 1,
      popularityUrl: 'file:///p',
      layerBudget: 3,
      onDemand: false,
      allowedPackages: ['a'],
      deniedPackages: ['b'],
      maxQueuedBuilds: 1,
      clientBuildsPerMinute: 1,
      clientAuthChecksPerMinute: 1,
      maxClosureSize: '1',
      connections: { headersTimeoutSeconds: 1, receiveTimeoutSeconds: 1, sendStallTimeoutSeconds: 1, keepAliveTimeoutSeconds: 1, maxConnections: 1 },
      minFreeSpace: '1',
    });
    assert.equal(Object.keys(env).filter((name) => /TIMEOUT$|CONNECTIONS|FREE_SPACE/.test(name) && name !== 'NIX_TIMEOUT').length, 6);
    const known = new Set<string>(Object.values(ENV));
    for (const name of Object.keys(env)) assert.ok(known.has(name), name);
  });
});

describe('the push token', () => {
  it('comes from NIXERY_PUSH_TOKEN or a file, never both, and must be long enough', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    assert.equal(loadConfig({}).pushToken, undefined, 'pushing is off by default');
    assert.equal(loadConfig({ NIXERY_PUSH_TOKEN: 'a'.repeat(20) }).pushToken, 'a'.repeat(20));
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-token-')), 'token');
    fs.writeFileSync(file, `${'b'.repeat(32)}\n`);
    assert.equal(loadConfig({ NIXERY_PUSH_TOKEN_FILE: file }).pushToken, 'b'.repeat(32));
    assert.throws(() => loadConfig({ NIXERY_PUSH_TOKEN: 'short' }), { variable: 'NIXERY_PUSH_TOKEN' });
    assert.throws(() => loadConfig({ NIXERY_PUSH_TOKEN: 'a'.repeat(20), NIXERY_PUSH_TOKEN_FILE: file }), { variable: 'NIXERY_PUSH_TOKEN_FILE' });
    assert.throws(() => loadConfig({ NIXERY_PUSH_TOKEN_FILE: '/nonexistent/token' }), /cannot read/);
    fs.rmSync(path.dirname(file), { recursive: true });
  });
});

describe('NIXERY_LOG_LEVEL alone (the operator logs like the registry)', () => {
  it('is info when unset or empty', () => {
    assert.equal(loadLogLevel({}), 'info');
    assert.equal(loadLogLevel({ NIXERY_LOG_LEVEL: ' ' }), 'info');
  });

  it('takes debug, info, warn or error', () => {
    for (const level of ['debug', 'info', 'warn', 'error']) assert.equal(loadLogLevel({ NIXERY_LOG_LEVEL: level }), level);
  });

  it('rejects anything else with an error naming the variable and the value', () => {
    assert.throws(() => loadLogLevel({ NIXERY_LOG_LEVEL: 'verbose' }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.variable, 'NIXERY_LOG_LEVEL');
      assert.equal(error.message, 'NIXERY_LOG_LEVEL: expected debug, info, warn or error (got "verbose")');
      return true;
    });
  });

  it('reads exactly as loadConfig does', () => {
    const outcome = (read: () => unknown) => {
      try {
        return read();
      } catch (error) {
        return (error as Error).message;
      }
    };
    for (const value of ['', 'debug', 'info', 'warn', 'error', 'INFO', ' info', 'trace', 'constructor']) {
      const env = { NIXERY_LOG_LEVEL: value };
      assert.equal(outcome(() => loadLogLevel(env)), outcome(() => loadConfig(env).logLevel), `NIXERY_LOG_LEVEL=${JSON.stringify(value)}`);
    }
  });
});

describe('TLS (NIXERY_TLS_CERT_FILE, NIXERY_TLS_KEY_FILE) and the metrics port (NIXERY_METRICS_PORT)', () => {
  const dirs = tempDirs('nixery-config-tls-');
  let dir: string;
  let serving: ServingCertificate;
  let other: ServingCertificate;
  before(async () => {
    dir = await dirs();
    const ca = await makeCertificateAuthority(dir);
    serving = await issueCertificate(ca, dir, 'serving', { hosts: ['registry.example', '127.0.0.1'] });
    other = await issueCertificate(ca, dir, 'other', { hosts: ['other.example'] });
  });

  it('serves plain HTTP when neither is set, and HTTPS with both, paths taken from the working directory', () => {
    assert.equal(loadConfig({}).tls, undefined);
    assert.deepEqual(loadConfig({ NIXERY_TLS_CERT_FILE: 'serving.crt', NIXERY_TLS_KEY_FILE: serving.keyFile }, dir).tls, {
      certFile: serving.certFile,
      keyFile: serving.keyFile,
    });
  });

  it('refuses one without the other, naming the one that is set', () => {
    assert.throws(() => loadConfig({ NIXERY_TLS_CERT_FILE: serving.certFile }), { variable: 'NIXERY_TLS_CERT_FILE', message: /set together with NIXERY_TLS_KEY_FILE/ });
    assert.throws(() => loadConfig({ NIXERY_TLS_KEY_FILE: serving.keyFile }), { variable: 'NIXERY_TLS_KEY_FILE', message: /set together with NIXERY_TLS_CERT_FILE/ });
  });

  it('refuses files it cannot read, naming the variable and the file', () => {
    assert.throws(() => loadConfig({ NIXERY_TLS_CERT_FILE: '/nonexistent/tls.crt', NIXERY_TLS_KEY_FILE: serving.keyFile }), {
      variable: 'NIXERY_TLS_CERT_FILE',
      message: /cannot read \/nonexistent\/tls\.crt/,
    });
    assert.throws(() => loadConfig({ NIXERY_TLS_CERT_FILE: serving.certFile, NIXERY_TLS_KEY_FILE: '/nonexistent/tls.key' }), {
      variable: 'NIXERY_TLS_KEY_FILE',
      message: /cannot read \/nonexistent\/tls\.key/,
    });
  });

  it('refuses files that are not a certificate and its key', () => {
    assert.throws(() => loadConfig({ NIXERY_TLS_CERT_FILE: serving.keyFile, NIXERY_TLS_KEY_FILE: serving.keyFile }), {
      variable: 'NIXERY_TLS_CERT_FILE',
      message: /holds no PEM certificate/,
    });
    assert.throws(() => loadConfig({ NIXERY_TLS_CERT_FILE: serving.certFile, NIXERY_TLS_KEY_FILE: serving.certFile }), {
      variable: 'NIXERY_TLS_KEY_FILE',
      message: /holds no unencrypted PEM private key/,
    });
    assert.throws(() => loadConfig({ NIXERY_TLS_CERT_FILE: serving.certFile, NIXERY_TLS_KEY_FILE: other.keyFile }), {
      variable: 'NIXERY_TLS_KEY_FILE',
      message: /is not the key of the certificate in .*serving\.crt \(CN=registry\.example\)/,
    });
  });

  it('reads a metrics port of its own, and refuses anything else, the registry\'s own port included', () => {
    assert.equal(loadConfig({}).metricsPort, undefined);
    assert.equal(loadConfig({ NIXERY_METRICS_PORT: '9102' }).metricsPort, 9102);
    for (const bad of ['0', '65536', 'metrics', '-1']) assert.throws(() => loadConfig({ NIXERY_METRICS_PORT: bad }), { variable: 'NIXERY_METRICS_PORT' }, bad);
    assert.throws(() => loadConfig({ NIXERY_METRICS_PORT: '8080' }), { variable: 'NIXERY_METRICS_PORT', message: /registry's own port/ });
    assert.equal(loadConfig({ NIXERY_METRICS_PORT: '8080', PORT: '5000' }).metricsPort, 8080);
  });

  it('round-trip through renderEnvironment', () => {
    const settings: RegistrySettings = { tls: { certFile: serving.certFile, keyFile: serving.keyFile }, metricsPort: 9102 };
    const env = renderEnvironment(settings);
    assert.deepEqual(env, { NIXERY_TLS_CERT_FILE: serving.certFile, NIXERY_TLS_KEY_FILE: serving.keyFile, NIXERY_METRICS_PORT: '9102' });
    const config = loadConfig(env, '/');
    assert.deepEqual(config.tls, settings.tls);
    assert.equal(config.metricsPort, 9102);
  });
});

describe('platforms (NIXERY_PLATFORMS)', () => {
  it('default to linux/amd64 alone, and keep the order given', () => {
    assert.deepEqual(loadConfig({}).platforms, ['linux/amd64']);
    assert.deepEqual(loadConfig({ NIXERY_PLATFORMS: 'linux/arm64,linux/amd64' }).platforms, ['linux/arm64', 'linux/amd64']);
  });

  it('refuse what is not a list of known platforms, naming the variable', () => {
    for (const bad of ['linux/386', 'linux/amd64,,linux/arm64', 'linux/amd64,linux/amd64', 'arm64']) {
      assert.throws(() => loadConfig({ NIXERY_PLATFORMS: bad }), { variable: 'NIXERY_PLATFORMS' }, bad);
    }
  });

  it('round-trip through renderEnvironment', () => {
    const env = renderEnvironment({ platforms: ['linux/amd64', 'linux/arm64'] });
    assert.deepEqual(env, { NIXERY_PLATFORMS: 'linux/amd64,linux/arm64' });
    assert.deepEqual(loadConfig(env).platforms, ['linux/amd64', 'linux/arm64']);
    assert.deepEqual(renderEnvironment({ platforms: [] }), {});
  });
});

describe('layer compression (NIXERY_LAYER_COMPRESSION)', () => {
  it('defaults to gzip, and takes zstd', () => {
    assert.equal(loadConfig({}).layerCompression, 'gzip');
    assert.equal(loadConfig({ NIXERY_LAYER_COMPRESSION: 'zstd' }).layerCompression, 'zstd');
  });

  it('refuses anything else, naming the variable and the choices', () => {
    for (const bad of ['ZSTD', 'xz', 'gzip,zstd']) {
      assert.throws(() => loadConfig({ NIXERY_LAYER_COMPRESSION: bad }), (error: Error & { variable?: string }) => error.variable === 'NIXERY_LAYER_COMPRESSION' && /gzip or zstd/.test(error.message), JSON.stringify(bad));
    }
  });

  it('round-trips through renderEnvironment', () => {
    const env = renderEnvironment({ layerCompression: 'zstd' });
    assert.deepEqual(env, { NIXERY_LAYER_COMPRESSION: 'zstd' });
    assert.equal(loadConfig(env).layerCompression, 'zstd');
  });
});

describe('the purge limits', () => {
  it('default to an hour each, or to twice a receive timeout longer than that', () => {
    assert.deepEqual(loadConfig({}).purge, { uploadSessionTtlSeconds: 3600, stagingTtlSeconds: 3600 });
    assert.deepEqual(loadConfig({ NIXERY_RECEIVE_TIMEOUT: '7200' }).purge, { uploadSessionTtlSeconds: 14400, stagingTtlSeconds: 14400 });
    assert.deepEqual(loadConfig({ NIXERY_UPLOAD_SESSION_TTL: '601', NIXERY_STAGING_TTL: '601' }).purge, { uploadSessionTtlSeconds: 601, stagingTtlSeconds: 601 });
  });

  it('are positive whole seconds; both must exceed the receive timeout', () => {
    for (const bad of ['0', '-5', '1.5', 'an hour']) {
      assert.throws(() => loadConfig({ NIXERY_UPLOAD_SESSION_TTL: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'NIXERY_UPLOAD_SESSION_TTL');
      assert.throws(() => loadConfig({ NIXERY_STAGING_TTL: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'NIXERY_STAGING_TTL');
    }
    assert.throws(() => loadConfig({ NIXERY_STAGING_TTL: '600' }), /NIXERY_STAGING_TTL: 600 s must exceed NIXERY_RECEIVE_TIMEOUT \(600 s\)/);
    assert.throws(() => loadConfig({ NIXERY_STAGING_TTL: '100', NIXERY_RECEIVE_TIMEOUT: '200' }), /must exceed NIXERY_RECEIVE_TIMEOUT/);
    // Upload sessions are shared by replicas: one receiving a chunk elsewhere shows only its start.
    assert.throws(() => loadConfig({ NIXERY_UPLOAD_SESSION_TTL: '600' }), /NIXERY_UPLOAD_SESSION_TTL: 600 s must exceed NIXERY_RECEIVE_TIMEOUT \(600 s\)/);
    assert.throws(() => loadConfig({ NIXERY_UPLOAD_SESSION_TTL: '100', NIXERY_RECEIVE_TIMEOUT: '200' }), /must exceed NIXERY_RECEIVE_TIMEOUT/);
  });

  it('round-trip through renderEnvironment', () => {
    const env = renderEnvironment({ purge: { uploadSessionTtlSeconds: 1200, stagingTtlSeconds: 1800 } });
    assert.deepEqual(env, { NIXERY_UPLOAD_SESSION_TTL: '1200', NIXERY_STAGING_TTL: '1800' });
    assert.deepEqual(loadConfig(env).purge, { uploadSessionTtlSeconds: 1200, stagingTtlSeconds: 1800 });
  });
});

describe('the garbage collection settings', () => {
  it('default to a grace delay of an hour (at least 3 × NIX_TIMEOUT) and a run every six hours', () => {
    assert.deepEqual(loadConfig({}).gc, { graceSeconds: 3600, intervalSeconds: 21600, retainPulledWithinSeconds: 2592000, maxImagesPerName: 10 });
    assert.equal(loadConfig({ NIX_TIMEOUT: '1800' }).gc.graceSeconds, 5400);
    assert.deepEqual(loadConfig({ NIXERY_GC_GRACE: '7200', NIXERY_GC_INTERVAL: '0' }).gc, { graceSeconds: 7200, intervalSeconds: 0, retainPulledWithinSeconds: 2592000, maxImagesPerName: 10 });
  });

  it('take a retention in seconds (NIXERY_RETAIN_PULLED_WITHIN) and a limit of on-demand images per name, 0 for none, and refuse anything else', () => {
    assert.deepEqual(loadConfig({ NIXERY_RETAIN_PULLED_WITHIN: '604800', NIXERY_GC_MAX_IMAGES_PER_NAME: '3' }).gc, { graceSeconds: 3600, intervalSeconds: 21600, retainPulledWithinSeconds: 604800, maxImagesPerName: 3 });
    const off = loadConfig({ NIXERY_RETAIN_PULLED_WITHIN: '0', NIXERY_GC_MAX_IMAGES_PER_NAME: ' 0 ' }).gc;
    assert.equal(off.retainPulledWithinSeconds, 0);
    assert.equal(off.maxImagesPerName, 0);
    for (const bad of ['-1', '1.5', '30d', '3153600001']) {
      assert.throws(() => loadConfig({ NIXERY_RETAIN_PULLED_WITHIN: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'NIXERY_RETAIN_PULLED_WITHIN', bad);
    }
    for (const bad of ['-1', 'ten', '2.5']) {
      assert.throws(() => loadConfig({ NIXERY_GC_MAX_IMAGES_PER_NAME: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'NIXERY_GC_MAX_IMAGES_PER_NAME', bad);
    }
  });

  it('refuse a grace delay not comfortably above the longest build, and malformed values', () => {
    assert.throws(
      () => loadConfig({ NIXERY_GC_GRACE: '179' }),
      /NIXERY_GC_GRACE: 179 s is too short: it must be at least 3 × NIX_TIMEOUT \(180 s\)/,
    );
    assert.throws(() => loadConfig({ NIXERY_GC_GRACE: '3600', NIX_TIMEOUT: '1201' }), (e: unknown) => e instanceof ConfigError && e.variable === 'NIXERY_GC_GRACE');
    for (const bad of ['0', '-5', '1.5', 'an hour']) {
      assert.throws(() => loadConfig({ NIXERY_GC_GRACE: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'NIXERY_GC_GRACE');
    }
    for (const bad of ['-5', '1.5', 'daily']) {
      assert.throws(() => loadConfig({ NIXERY_GC_INTERVAL: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'NIXERY_GC_INTERVAL');
    }
  });
});

// --- Leases across replicas ---
describe('NIXERY_LEASE_DURATION', () => {
  it('is a minute by default, whole seconds from 3 to 3600 otherwise', () => {
    assert.equal(loadConfig({}).leaseDurationSeconds, 60);
    assert.equal(loadConfig({ NIXERY_LEASE_DURATION: '3' }).leaseDurationSeconds, 3);
    for (const bad of ['2', '3601', '1.5', 'soon']) {
      assert.throws(() => loadConfig({ NIXERY_LEASE_DURATION: bad }), { variable: 'NIXERY_LEASE_DURATION' }, bad);
    }
  });
});

describe('the storage quota and the Nix store collection', () => {
  it('take NIXERY_STORAGE_QUOTA as a size in bytes, with a quantity suffix, unset by default', () => {
    assert.equal(loadConfig({}).storageQuotaBytes, undefined);
    assert.equal(loadConfig({ NIXERY_STORAGE_QUOTA: '20Gi' }).storageQuotaBytes, 20 * 1024 ** 3);
    assert.equal(loadConfig({ NIXERY_STORAGE_QUOTA: '1500000' }).storageQuotaBytes, 1_500_000);
    for (const bad of ['0', '-5', '20GB', 'lots']) {
      assert.throws(() => loadConfig({ NIXERY_STORAGE_QUOTA: bad }), (e: unknown) => e instanceof ConfigError && e.variable === 'NIXERY_STORAGE_QUOTA', bad);
    }
  });

  it('refuse a quota without garbage collection in the server, which evicts', () => {
    assert.throws(
      () => loadConfig({ NIXERY_STORAGE_QUOTA: '1Gi', NIXERY_GC_INTERVAL: '0' }),
      (e: unknown) => e instanceof ConfigError && e.variable === 'NIXERY_STORAGE_QUOTA' && /NIXERY_GC_INTERVAL must not be 0/.test(e.message),
    );
  });

  it('leave the Nix store collection off by default, and take an interval and a bound', () => {
    assert.deepEqual(loadConfig({}).nixGc, { intervalSeconds: 0, maxFreedBytes: 10 * 1024 ** 3 });
    assert.deepEqual(loadConfig({ NIXERY_NIX_GC_INTERVAL: '600', NIXERY_NIX_GC_MAX_FREED: '2Gi' }).nixGc, { intervalSeconds: 600, maxFreedBytes: 2 * 1024 ** 3 });
    assert.throws(() => loadConfig({ NIXERY_NIX_GC_INTERVAL: '1h' }), (e: unknown) => e instanceof ConfigError && e.variable === 'NIXERY_NIX_GC_INTERVAL');
    assert.throws(() => loadConfig({ NIXERY_NIX_GC_MAX_FREED: '0' }), (e: unknown) => e instanceof ConfigError && e.variable === 'NIXERY_NIX_GC_MAX_FREED');
  });
});
