// Pulling from a private registry the way a kubelet and containerd do it: the pod's (or its
// ServiceAccount's) imagePullSecrets give the credentials, matched by registry host; the node's
// hosts directory (`certsDir`, containerd's config_path) says which CA to trust, read at each pull;
// an HTTPS registry whose certificate is not trusted fails on the certificate, and a plain HTTP
// registry keeps working. The registry here is a small OCI distribution server of the test
// (HTTPS with Basic authentication, and plain HTTP), serving an image made with umoci.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import { eventually, runOk } from '@nixery/test-support';
import { claimClusterIpRange, type ClaimedRange } from '../ip-range.ts';
import { credentialForEndpoint, credentialsFor, criAuthConfig, keyMatches, keyringFromSecrets } from './pull-secrets.ts';
import { parseHostsToml, registryEndpoints } from './registry-hosts.ts';
import { registryHandler } from './test-registry.ts';
import { startCluster, type Cluster } from './testing.ts';

const NS = 'private-it';
const SERVICE_HOST = `reg.${NS}.svc.cluster.local:443`;
const USER = 'puller';
const PASSWORD = 'right-password';

const dockerConfigJson = (key: string, username: string, password: string) => ({
  '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { [key]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } } })),
});

describe('pull secrets: the kubelet keyring', () => {
  it('matches hosts by glob part, the port exactly and the path as a prefix; the most specific key first', () => {
    assert.equal(keyMatches('reg.ns.svc.cluster.local:443', 'reg.ns.svc.cluster.local:443/team/tool'), true);
    assert.equal(keyMatches('https://reg.ns.svc.cluster.local:443/', 'reg.ns.svc.cluster.local:443/team/tool'), true);
    assert.equal(keyMatches('reg.ns.svc.cluster.local', 'reg.ns.svc.cluster.local:443/team/tool'), false, 'a port must be the same');
    assert.equal(keyMatches('*.ns.svc.cluster.local:443', 'reg.ns.svc.cluster.local:443/team/tool'), true);
    assert.equal(keyMatches('*.svc.cluster.local:443', 'reg.ns.svc.cluster.local:443/team/tool'), false, 'as many host parts');
    assert.equal(keyMatches('reg:5000/team', 'reg:5000/team/tool'), true);
    assert.equal(keyMatches('reg:5000/other', 'reg:5000/team/tool'), false);
    const keyring = keyringFromSecrets([
      { name: 'broad', type: 'kubernetes.io/dockerconfigjson', data: dockerConfigJson('reg:5000', 'broad', 'b') },
      { name: 'narrow', type: 'kubernetes.io/dockercfg', data: { '.dockercfg': Buffer.from(JSON.stringify({ 'https://reg:5000/team': { username: 'narrow', password: 'n' } })) } },
      { name: 'opaque', type: 'Opaque', data: dockerConfigJson('reg:5000', 'ignored', 'x') },
    ]);
    assert.deepEqual(credentialsFor(keyring, 'reg:5000/team/tool').map((c) => c.username), ['narrow', 'broad']);
    assert.deepEqual(credentialsFor(keyring, 'other:5000/team/tool'), []);
    assert.throws(() => keyringFromSecrets([{ name: 'bad', type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from('{') } }]), /invalid image pull secret "bad"/);
  });

  it("reach every endpoint of the image's host, mirrors too (containerd's ParseAuth with the kubelet's empty server address)", () => {
    const [credential] = keyringFromSecrets([{ name: 'pull', type: 'kubernetes.io/dockerconfigjson', data: dockerConfigJson(SERVICE_HOST, USER, PASSWORD) }]);
    const auth = criAuthConfig(credential!);
    assert.equal(auth.serverAddress, '', 'the key of the docker config is not passed on');
    for (const endpoint of [SERVICE_HOST, '10.96.0.4:443', '127.96.0.4:443']) assert.deepEqual(credentialForEndpoint(auth, endpoint), { username: USER, password: PASSWORD }, endpoint);
    // An AuthConfig that names a server (not one from a pull Secret) is for that host only.
    const named = { ...auth, serverAddress: `https://${SERVICE_HOST}` };
    assert.deepEqual(credentialForEndpoint(named, SERVICE_HOST), { username: USER, password: PASSWORD });
    assert.equal(credentialForEndpoint(named, '10.96.0.4:443'), undefined);
    assert.equal(credentialForEndpoint(undefined, SERVICE_HOST), undefined);
  });
});

describe("the node's hosts directory, as containerd reads it", () => {
  it('hosts.toml: [host] endpoints first, then server; ca relative to the directory, as a list too; skip_verify; capabilities', () => {
    const endpoints = parseHostsToml(
      [
        'server = "https://reg:5000"',
        'ca = "ca.crt"',
        '[host."https://mirror:5001"]',
        '  capabilities = ["pull", "resolve"]',
        '  ca = ["/etc/a.pem", "b.pem"]',
        '[host."http://plain:5002"]',
        '  capabilities = ["pull"]',
        '  skip_verify = true',
      ].join('\n'),
      '/certs/reg:5000',
      'reg:5000',
    );
    assert.deepEqual(endpoints, [
      { scheme: 'https', host: 'mirror:5001', caFiles: ['/etc/a.pem', '/certs/reg:5000/b.pem'], skipVerify: false, capabilities: ['pull', 'resolve'] },
      { scheme: 'http', host: 'plain:5002', caFiles: [], skipVerify: true, capabilities: ['pull'] },
      { scheme: 'https', host: 'reg:5000', caFiles: ['/certs/reg:5000/ca.crt'], skipVerify: false, capabilities: ['pull', 'resolve', 'push'] },
    ]);
    assert.throws(() => parseHostsToml('server = 5', '/d', 'reg'), /server must be a string/);
  });

  it('without hosts.toml the *.crt files are CAs for https://<host>; no directory: the host, to be probed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-certs-'));
    try {
      fs.mkdirSync(path.join(dir, 'reg:5000'));
      fs.writeFileSync(path.join(dir, 'reg:5000', 'ca.crt'), 'x');
      assert.deepEqual(await registryEndpoints(dir, 'reg:5000'), [{ scheme: 'https', host: 'reg:5000', caFiles: [path.join(dir, 'reg:5000', 'ca.crt')], skipVerify: false, capabilities: ['pull', 'resolve', 'push'] }]);
      assert.deepEqual((await registryEndpoints(dir, 'other:5000'))[0]?.scheme, undefined);
      assert.deepEqual((await registryEndpoints(undefined, 'reg:5000'))[0]?.caFiles, []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('node agent: pulling from a private registry with pull secrets and a CA from the certs dir', () => {
  let range: ClaimedRange;
  let cluster: Cluster;
  let work: string;
  let certsDir: string;
  let tlsServer: https.Server;
  let plainServer: http.Server;
  let tlsPort: number;
  let plainPort: number;
  const core = () => cluster.kube.core;
  const pod = (name: string) => core().readNamespacedPod({ name, namespace: NS });

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-private-'));
    certsDir = path.join(work, 'certs.d');
    fs.mkdirSync(certsDir);
    // A CA and a serving certificate for the Service's names and 127.0.0.1 (not for localhost).
    const ca = (...args: string[]) => runOk('openssl', args, { cwd: work, timeoutMs: 60_000 });
    await ca('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=private-it-ca');
    await ca('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tls.key', '-out', 'tls.csr', '-subj', '/CN=reg');
    fs.writeFileSync(path.join(work, 'san.ext'), `subjectAltName=DNS:reg.${NS}.svc.cluster.local,DNS:reg.${NS}.svc,IP:127.0.0.1\n`);
    await ca('x509', '-req', '-in', 'tls.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'tls.crt', '-days', '2', '-extfile', 'san.ext');
    // An image whose program is the host's static busybox.
    const layout = path.join(work, 'layout');
    await runOk('umoci', ['init', '--layout', layout], { timeoutMs: 60_000 });
    await runOk('umoci', ['new', '--image', `${layout}:v1`], { timeoutMs: 60_000 });
    await runOk('umoci', ['insert', '--image', `${layout}:v1`, '/usr/bin/busybox', '/bin/busybox'], { timeoutMs: 60_000 });
    await runOk('umoci', ['config', '--image', `${layout}:v1`, '--config.entrypoint', '/bin/busybox', '--config.cmd', 'echo', '--config.cmd', 'pulled'], { timeoutMs: 60_000 });

    tlsServer = https.createServer({ key: fs.readFileSync(path.join(work, 'tls.key')), cert: fs.readFileSync(path.join(work, 'tls.crt')) }, registryHandler(layout, { user: USER, password: PASSWORD }));
    plainServer = http.createServer(registryHandler(layout));
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => plainServer.listen(0, '127.0.0.1', resolve));
    tlsPort = (tlsServer.address() as AddressInfo).port;
    plainPort = (plainServer.address() as AddressInfo).port;

    range = await claimClusterIpRange();
    // Pulls by the Service's name with only a ca.crt: the lenient node, whatever the default (strict pulls: strict-pull.test.ts).
    cluster = await startCluster(range.range, undefined, { certsDir, strictNodePulls: false });
    await cluster.namespace(NS);
    // The registry as a Service of the cluster (selector-less, its Endpoints the test's server).
    await core().createNamespacedService({ namespace: NS, body: { metadata: { name: 'reg' }, spec: { ports: [{ port: 443, targetPort: tlsPort }] } } });
    await core().createNamespacedEndpoints({ namespace: NS, body: { metadata: { name: 'reg' }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ port: tlsPort }] }] } });
    fs.mkdirSync(path.join(certsDir, SERVICE_HOST));
    fs.copyFileSync(path.join(work, 'ca.crt'), path.join(certsDir, SERVICE_HOST, 'ca.crt'));
    await core().createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'pull' }, type: 'kubernetes.io/dockerconfigjson', data: base64(dockerConfigJson(SERVICE_HOST, USER, PASSWORD)) } });
  });
  after(async () => {
    await cluster?.stop();
    await range?.release();
    tlsServer?.closeAllConnections();
    plainServer?.closeAllConnections();
    await new Promise((resolve) => tlsServer?.close(resolve) ?? resolve(undefined));
    await new Promise((resolve) => plainServer?.close(resolve) ?? resolve(undefined));
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  function base64(data: Record<string, Buffer>): Record<string, string> {
    return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.toString('base64')]));
  }

  // Every pod pulls (Always): with IfNotPresent an image another pod pulled is used without credentials, as on a real node.
  async function runPod(name: string, image: string, spec: Partial<NonNullable<V1Pod['spec']>> = {}): Promise<void> {
    await core().createNamespacedPod({ namespace: NS, body: { metadata: { name }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image, imagePullPolicy: 'Always' }], ...spec } } });
  }
  const finished = (name: string, timeoutMs = 90_000) =>
    eventually(`${name} to finish`, async () => {
      const p = await pod(name);
      return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined;
    }, timeoutMs, 200);
  const waiting = async (name: string, reasons: string[]) => {
    const seen = new Map<string, string>();
    await eventually(`${name} to wait in ${reasons.join(' and ')}`, async () => {
      const w = (await pod(name)).status?.containerStatuses?.[0]?.state?.waiting;
      if (w?.reason) seen.set(w.reason, w.message ?? '');
      return reasons.every((r) => seen.has(r)) ? true : undefined;
    }, 90_000, 100);
    return seen;
  };
  const logs = async (name: string) => (await cluster.kubectl(['logs', '-n', NS, name])).stdout;

  it("pulls over TLS from the Service's name with the CA of the certs dir and the pod's dockerconfigjson pull secret", async () => {
    await runPod('with-secret', `${SERVICE_HOST}/test/busybox:v1`, { imagePullSecrets: [{ name: 'pull' }] });
    const done = await finished('with-secret');
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.containerStatuses));
    assert.equal(await logs('with-secret'), 'pulled\n');
    assert.match(done.status?.containerStatuses?.[0]?.imageID ?? '', new RegExp(`^${SERVICE_HOST}/test/busybox@sha256:[0-9a-f]{64}$`));
  });

  it('without credentials, with a wrong password or a missing secret: ErrImagePull, then ImagePullBackOff, with the registry\'s message', async () => {
    await core().createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'wrong' }, type: 'kubernetes.io/dockerconfigjson', data: base64(dockerConfigJson(SERVICE_HOST, USER, 'wrong-password')) } });
    await runPod('anonymous', `${SERVICE_HOST}/test/busybox:v1`);
    await runPod('wrong', `${SERVICE_HOST}/test/busybox:v1`, { imagePullSecrets: [{ name: 'wrong' }, { name: 'absent' }] });
    for (const name of ['anonymous', 'wrong']) {
      const seen = await waiting(name, ['ErrImagePull', 'ImagePullBackOff']);
      assert.match(seen.get('ErrImagePull') ?? '', /authentication required by the test registry/, name);
      assert.match(seen.get('ImagePullBackOff') ?? '', /^Back-off pulling image ".*test\/busybox:v1": ErrImagePull: .*authentication required/, name);
    }
    const events = (await core().listNamespacedEvent({ namespace: NS })).items.filter((e) => e.involvedObject.name === 'wrong');
    assert.ok(events.some((e) => e.reason === 'FailedToRetrieveImagePullSecret' && e.message === 'Unable to retrieve some image pull secrets (absent); attempting to pull the image may not succeed.'), JSON.stringify(events.map((e) => e.message)));
    assert.ok(!JSON.stringify(events).includes('wrong-password') && !JSON.stringify(cluster.logs).includes('wrong-password'), 'no credential in events or logs');
  });

  it("a pod that names no pull secrets gets its ServiceAccount's (admission), here a dockercfg Secret", async () => {
    await core().createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: 'cfg' }, type: 'kubernetes.io/dockercfg', data: { '.dockercfg': Buffer.from(JSON.stringify({ [`https://${SERVICE_HOST}`]: { username: USER, password: PASSWORD } })).toString('base64') } },
    });
    await core().createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'builder' }, imagePullSecrets: [{ name: 'cfg' }] } });
    await runPod('by-account', `${SERVICE_HOST}/test/busybox:v1`, { serviceAccountName: 'builder' });
    assert.deepEqual((await pod('by-account')).spec?.imagePullSecrets?.map((r) => r.name), ['cfg']);
    const done = await finished('by-account');
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.containerStatuses));
  });

  it('a certificate the node does not trust fails the pull on the certificate; a CA written to the certs dir is used from the next pull on', async () => {
    const host = `127.0.0.1:${tlsPort}`;
    await core().createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'by-address' }, type: 'kubernetes.io/dockerconfigjson', data: base64(dockerConfigJson(host, USER, PASSWORD)) } });
    await runPod('untrusted', `${host}/test/busybox:v1`, { imagePullSecrets: [{ name: 'by-address' }] });
    const seen = await waiting('untrusted', ['ErrImagePull']);
    assert.match(seen.get('ErrImagePull') ?? '', /x509: certificate signed by unknown authority/);
    // containerd's hosts.toml, naming the CA relative to its directory.
    fs.mkdirSync(path.join(certsDir, host));
    fs.copyFileSync(path.join(work, 'ca.crt'), path.join(certsDir, host, 'registry-ca.pem'));
    fs.writeFileSync(path.join(certsDir, host, 'hosts.toml'), `server = "https://${host}"\nca = "registry-ca.pem"\n`);
    const done = await finished('untrusted');
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.containerStatuses));
  });

  it('skip_verify = true in hosts.toml pulls from a TLS registry whose certificate does not name it', async () => {
    const host = `localhost:${tlsPort}`;
    await core().createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'by-localhost' }, type: 'kubernetes.io/dockerconfigjson', data: base64(dockerConfigJson(host, USER, PASSWORD)) } });
    fs.mkdirSync(path.join(certsDir, host));
    fs.writeFileSync(path.join(certsDir, host, 'hosts.toml'), `server = "https://${host}"\n\n[host."https://${host}"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n`);
    await runPod('skip-verify', `${host}/test/busybox:v1`, { imagePullSecrets: [{ name: 'by-localhost' }] });
    const done = await finished('skip-verify');
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.containerStatuses));
  });

  it('a registry that speaks plain HTTP is pulled from as before', async () => {
    await runPod('plain', `127.0.0.1:${plainPort}/test/busybox:v1`);
    const done = await finished('plain');
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.containerStatuses));
    assert.equal(await logs('plain'), 'pulled\n');
  });
});
