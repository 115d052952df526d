// Strict node pulls (`strictNodePulls`), as a containerd node makes them: a Service's DNS name is
// no host to the node — ErrImagePull with containerd's "no such host" — until a hosts.toml in the
// certs dir names the Service's ClusterIP, which the node reaches (the Service proxy here, kube-proxy
// on a real node); plain HTTP only for localhost or an `http://` endpoint.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { eventually, runOk } from '@nixery/test-support';
import { claimClusterIpRange, type ClaimedRange } from '../ip-range.ts';
import { hostOf, isLocalhost, lookupFailure, nameToResolve, nodeTransport, unreachableMessage } from './node-pull.ts';
import { hostPathOnNode } from './node-root.ts';
import { parseHostsToml, type RegistryEndpoint } from './registry-hosts.ts';
import { busyboxLayout, registryHandler } from './test-registry.ts';
import { BUSYBOX_IMAGE, startCluster, type Cluster } from './testing.ts';

const endpoint = (host: string, scheme: RegistryEndpoint['scheme'], more: Partial<RegistryEndpoint> = {}): RegistryEndpoint => ({
  scheme,
  host,
  caFiles: [],
  skipVerify: false,
  capabilities: ['pull', 'resolve', 'push'],
  ...more,
});

describe('strict node pulls: the decisions', () => {
  it('localhost is localhost, 127/8 and ::1 (containerd IsLocalhost); nothing else', () => {
    for (const host of ['localhost', 'localhost:5000', '127.0.0.1:5000', '127.96.0.4:80', '[::1]:5000', '::1']) assert.equal(isLocalhost(host), true, host);
    for (const host of ['reg.ns.svc.cluster.local:5000', '10.96.0.4:5000', 'localhost.example.com', '[fe80::1]:5000', 'registry-1.docker.io']) assert.equal(isLocalhost(host), false, host);
    assert.equal(hostOf('[::1]:5000'), '::1');
    assert.equal(hostOf('reg.ns:5000'), 'reg.ns');
  });

  it('an endpoint nothing describes: HTTPS verified; localhost as containerd (443 HTTPS, 80 HTTP, else HTTPS unverified falling back to HTTP)', () => {
    assert.deepEqual(nodeTransport(endpoint('nixery.team-a.svc.cluster.local:5000', undefined)), { scheme: 'https', mode: 'tls', skipVerify: false });
    assert.deepEqual(nodeTransport(endpoint('10.96.0.4:5000', undefined)), { scheme: 'https', mode: 'tls', skipVerify: false });
    assert.deepEqual(nodeTransport(endpoint('localhost', undefined)), { scheme: 'https', mode: 'tls', skipVerify: true });
    assert.deepEqual(nodeTransport(endpoint('127.0.0.1:443', undefined)), { scheme: 'https', mode: 'tls', skipVerify: true });
    assert.deepEqual(nodeTransport(endpoint('127.0.0.1:80', undefined)), { scheme: 'http', mode: 'plain', skipVerify: false });
    assert.deepEqual(nodeTransport(endpoint('[::1]:5000', undefined)), { scheme: 'http', mode: 'fallback', skipVerify: true });
  });

  it('hosts.toml endpoints as configured: http:// plain (HTTPS first with a ca and a port other than 80), https:// verified unless skip_verify', () => {
    assert.deepEqual(nodeTransport(endpoint('127.96.0.4:5000', 'http')), { scheme: 'http', mode: 'plain', skipVerify: false });
    assert.deepEqual(nodeTransport(endpoint('10.96.0.4:5000', 'http')), { scheme: 'http', mode: 'plain', skipVerify: false });
    assert.deepEqual(nodeTransport(endpoint('10.96.0.4:5000', 'http', { caFiles: ['/ca.pem'] })), { scheme: 'https', mode: 'fallback', skipVerify: false });
    assert.deepEqual(nodeTransport(endpoint('10.96.0.4:80', 'http', { caFiles: ['/ca.pem'] })), { scheme: 'http', mode: 'plain', skipVerify: false });
    assert.deepEqual(nodeTransport(endpoint('reg.example.com', 'https')), { scheme: 'https', mode: 'tls', skipVerify: false });
    assert.deepEqual(nodeTransport(endpoint('reg.example.com', 'https', { skipVerify: true })), { scheme: 'https', mode: 'tls', skipVerify: true });
  });

  it('names go to the node resolver, addresses do not; its failure in containerd and Go words', () => {
    assert.equal(nameToResolve(endpoint('nixery.team-a.svc.cluster.local:5000', undefined)), 'nixery.team-a.svc.cluster.local');
    assert.equal(nameToResolve(endpoint('127.96.0.4:5000', 'http')), undefined);
    assert.equal(nameToResolve(endpoint('[::1]:5000', 'http')), undefined);
    const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND x'), { code: 'ENOTFOUND' });
    assert.equal(lookupFailure('nixery.team-a.svc.cluster.local', notFound), 'lookup nixery.team-a.svc.cluster.local: no such host');
    const image = 'nixery.team-a.svc.cluster.local:5000/x:y';
    const e = endpoint('nixery.team-a.svc.cluster.local:5000', undefined);
    assert.equal(
      unreachableMessage(image, { registry: 'nixery.team-a.svc.cluster.local:5000', repository: 'x', tag: 'y' }, e, nodeTransport(e), lookupFailure('nixery.team-a.svc.cluster.local', notFound)),
      'failed to pull and unpack image "nixery.team-a.svc.cluster.local:5000/x:y": failed to resolve reference "nixery.team-a.svc.cluster.local:5000/x:y": ' +
        'failed to do request: Head "https://nixery.team-a.svc.cluster.local:5000/v2/x/manifests/y": dial tcp: lookup nixery.team-a.svc.cluster.local: no such host',
    );
    const digest = 'sha256:' + 'a'.repeat(64);
    assert.match(unreachableMessage(`r:5000/a/b@${digest}`, { registry: 'r:5000', repository: 'a/b', digest }, endpoint('r:5000', undefined), nodeTransport(endpoint('r:5000', undefined)), 'x'), new RegExp(`Head "https://r:5000/v2/a/b/manifests/${digest}"`));
  });
});

describe("hosts.toml's ca on the node's file system", () => {
  it('an absolute ca is a node path (mapped as hostPaths are), a relative one is in the host directory', () => {
    const endpoints = parseHostsToml(
      'server = "https://10.96.0.4:5000"\nca = "/etc/containerd/certs.d/reg:5000/ca.crt"\n[host."https://10.96.0.5:5000"]\n  ca = "mine.pem"\n',
      '/certs/reg:5000',
      'reg:5000',
      (p) => hostPathOnNode(p, { nodeRoot: '/data/node-root', certsDir: '/certs' }),
    );
    assert.deepEqual(endpoints.map((e) => e.caFiles), [['/certs/reg:5000/mine.pem'], ['/certs/reg:5000/ca.crt']]);
    assert.deepEqual(parseHostsToml('ca = "/etc/ssl/reg.pem"\n', '/certs/reg', 'reg', (p) => hostPathOnNode(p, { nodeRoot: '/data/node-root' }))[0]?.caFiles, ['/data/node-root/etc/ssl/reg.pem']);
  });
});

/** The test's registry at 127.0.0.1:`port` as the Service `nixery` (selector-less, its Endpoints that server), port 5000. */
async function registryService(cluster: Cluster, namespace: string, port: number): Promise<void> {
  await cluster.kube.core.createNamespacedService({ namespace, body: { metadata: { name: 'nixery' }, spec: { ports: [{ port: 5000, targetPort: port }] } } });
  await cluster.kube.core.createNamespacedEndpoints({ namespace, body: { metadata: { name: 'nixery' }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ port }] }] } });
}

/** Whatever of a suite's cluster, IP range, registry and scratch directory was made, stopped and removed. */
async function stopAll(cluster: Cluster | undefined, range: ClaimedRange | undefined, server: http.Server | undefined, work: string | undefined): Promise<void> {
  await cluster?.stop();
  await range?.release();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  if (work) fs.rmSync(work, { recursive: true, force: true });
}

describe('node agent: strict pulls by a Service DNS name, without and with a hosts.toml', () => {
  const NS = 'team-a';
  const HOST = `nixery.${NS}.svc.cluster.local:5000`;
  const IMAGE = `${HOST}/test/busybox:v1`;
  let range: ClaimedRange;
  let cluster: Cluster;
  let work: string;
  let certsDir: string;
  let server: http.Server;
  let port: number;
  const requests: string[] = [];

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-strict-'));
    certsDir = path.join(work, 'certs.d');
    fs.mkdirSync(certsDir);
    const layout = path.join(work, 'layout');
    await busyboxLayout(layout);
    const handle = registryHandler(layout);
    server = http.createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      handle(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    range = await claimClusterIpRange();
    cluster = await startCluster(range.range, undefined, { certsDir, strictNodePulls: true });
    await cluster.namespace(NS);
    await registryService(cluster, NS, port);
  });
  after(() => stopAll(cluster, range, server, work));

  const pod = (name: string) => cluster.kube.core.readNamespacedPod({ namespace: NS, name });

  it("fails with ErrImagePull and containerd's no-such-host message; pulls through the ClusterIP once hosts.toml names it", async () => {
    await cluster.kube.core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'by-name' }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: IMAGE }] } } });
    const message = await eventually('ErrImagePull', async () => {
      const waiting = (await pod('by-name')).status?.containerStatuses?.[0]?.state?.waiting;
      return waiting?.reason === 'ErrImagePull' ? waiting.message : undefined;
    }, 60_000, 100);
    assert.equal(
      message,
      `failed to pull and unpack image "${IMAGE}": failed to resolve reference "${IMAGE}": failed to do request: Head "https://${HOST}/v2/test/busybox/manifests/v1": dial tcp: lookup nixery.${NS}.svc.cluster.local: no such host`,
    );
    assert.deepEqual(requests, [], 'the registry was never asked');

    // What the operator's node-config DaemonSet writes: the ClusterIP as the endpoint, plain HTTP.
    const clusterIP = await cluster.serviceAddress(NS, 'nixery');
    fs.mkdirSync(path.join(certsDir, HOST));
    fs.writeFileSync(
      path.join(certsDir, HOST, 'hosts.toml'),
      `server = "http://${clusterIP}:5000"\n\n[host."http://${clusterIP}:5000"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    const done = await eventually('the pod to finish', async () => {
      const p = await pod('by-name');
      return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined;
    }, 90_000, 200);
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.containerStatuses));
    assert.equal((await cluster.kubectl(['logs', '-n', NS, 'by-name'])).stdout, 'pulled\n');
    assert.ok(requests.some((r) => r === 'GET /v2/test/busybox/manifests/v1' || r === 'HEAD /v2/test/busybox/manifests/v1'), JSON.stringify(requests));
  });

  it('an https:// ClusterIP endpoint is verified: unknown authority fails, the ca named by its node path (/etc/containerd/certs.d/…) is trusted', async () => {
    await cluster.kube.core.createNamespacedService({ namespace: NS, body: { metadata: { name: 'secure' }, spec: { ports: [{ port: 5443 }] } } });
    const clusterIP = await cluster.serviceAddress(NS, 'secure');
    // A CA and a serving certificate for the ClusterIP, as the operator's TLS registry has one.
    const ca = (...args: string[]) => runOk('openssl', args, { cwd: work, timeoutMs: 60_000 });
    await ca('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=strict-it-ca');
    await ca('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tls.key', '-out', 'tls.csr', '-subj', '/CN=secure');
    fs.writeFileSync(path.join(work, 'san.ext'), `subjectAltName=DNS:secure.${NS}.svc.cluster.local,IP:${clusterIP}\n`);
    await ca('x509', '-req', '-in', 'tls.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'tls.crt', '-days', '2', '-extfile', 'san.ext');
    const tlsServer = https.createServer({ key: fs.readFileSync(path.join(work, 'tls.key')), cert: fs.readFileSync(path.join(work, 'tls.crt')) }, registryHandler(path.join(work, 'layout')));
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    try {
      const tlsPort = (tlsServer.address() as AddressInfo).port;
      await cluster.kube.core.createNamespacedEndpoints({ namespace: NS, body: { metadata: { name: 'secure' }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ port: tlsPort }] }] } });
      const host = `secure.${NS}.svc.cluster.local:5443`;
      const dir = path.join(certsDir, host);
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'hosts.toml'), `server = "https://${clusterIP}:5443"\n\n[host."https://${clusterIP}:5443"]\n  capabilities = ["pull", "resolve"]\n`);
      await cluster.kube.core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'secure' }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: `${host}/test/busybox:v1` }] } } });
      const message = await eventually('ErrImagePull', async () => {
        const waiting = (await pod('secure')).status?.containerStatuses?.[0]?.state?.waiting;
        return waiting?.reason === 'ErrImagePull' ? waiting.message : undefined;
      }, 60_000, 100);
      assert.match(message ?? '', /x509: certificate signed by unknown authority/);
      // As the node-config DaemonSet writes it: the CA beside hosts.toml, named by its path on the node.
      fs.copyFileSync(path.join(work, 'ca.crt'), path.join(dir, 'ca.crt'));
      fs.writeFileSync(path.join(dir, 'hosts.toml'), `server = "https://${clusterIP}:5443"\n\n[host."https://${clusterIP}:5443"]\n  capabilities = ["pull", "resolve"]\n  ca = "/etc/containerd/certs.d/${host}/ca.crt"\n`);
      const done = await eventually('the pod to finish', async () => {
        const p = await pod('secure');
        return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined;
      }, 90_000, 200);
      assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.containerStatuses));
    } finally {
      tlsServer.closeAllConnections();
      await new Promise((resolve) => tlsServer.close(resolve));
    }
  });

  it('a hosts.toml endpoint without the pull capability is not used', async () => {
    const clusterIP = await cluster.serviceAddress(NS, 'nixery');
    const host = `nixery.${NS}.svc:5000`;
    fs.mkdirSync(path.join(certsDir, host));
    fs.writeFileSync(path.join(certsDir, host, 'hosts.toml'), `server = "http://${clusterIP}:5000"\ncapabilities = ["resolve"]\n\n[host."http://${clusterIP}:5000"]\n  capabilities = ["resolve"]\n`);
    await cluster.kube.core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'no-pull' }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: `${host}/test/busybox:v1` }] } } });
    const message = await eventually('ErrImagePull', async () => {
      const waiting = (await pod('no-pull')).status?.containerStatuses?.[0]?.state?.waiting;
      return waiting?.reason === 'ErrImagePull' ? waiting.message : undefined;
    }, 60_000, 100);
    assert.match(message ?? '', /no host of registry nixery\.team-a\.svc:5000 is configured to resolve images/);
  });

  it("a pod's pull Secret for the Service's name reaches the ClusterIP endpoint hosts.toml names (containerd gives it to every endpoint of the host)", async () => {
    const privateServer = http.createServer(registryHandler(path.join(work, 'layout'), { user: 'puller', password: 'right-password' }));
    await new Promise<void>((resolve) => privateServer.listen(0, '127.0.0.1', resolve));
    try {
      const privatePort = (privateServer.address() as AddressInfo).port;
      await cluster.kube.core.createNamespacedService({ namespace: NS, body: { metadata: { name: 'private' }, spec: { ports: [{ port: 5000, targetPort: privatePort }] } } });
      await cluster.kube.core.createNamespacedEndpoints({ namespace: NS, body: { metadata: { name: 'private' }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ port: privatePort }] }] } });
      const clusterIP = await cluster.serviceAddress(NS, 'private');
      const host = `private.${NS}.svc.cluster.local:5000`;
      fs.mkdirSync(path.join(certsDir, host));
      fs.writeFileSync(path.join(certsDir, host, 'hosts.toml'), `server = "http://${clusterIP}:5000"\n\n[host."http://${clusterIP}:5000"]\n  capabilities = ["pull", "resolve"]\n`);
      const auths = { [host]: { auth: Buffer.from('puller:right-password').toString('base64') } };
      await cluster.kube.core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'private-pull' }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths })).toString('base64') } } });
      const run = (name: string, pullSecrets: string[]) =>
        cluster.kube.core.createNamespacedPod({
          namespace: NS,
          body: { metadata: { name }, spec: { restartPolicy: 'Never', imagePullSecrets: pullSecrets.map((n) => ({ name: n })), containers: [{ name: 'main', image: `${host}/test/busybox:v1`, imagePullPolicy: 'Always' }] } },
        });
      await run('private-anonymous', []);
      const message = await eventually('ErrImagePull', async () => {
        const waiting = (await pod('private-anonymous')).status?.containerStatuses?.[0]?.state?.waiting;
        return waiting?.reason === 'ErrImagePull' ? waiting.message : undefined;
      }, 60_000, 100);
      assert.match(message ?? '', /authentication required by the test registry/);
      await run('private-with-secret', ['private-pull']);
      const done = await eventually('the pod to finish', async () => {
        const p = await pod('private-with-secret');
        return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined;
      }, 90_000, 200);
      assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.containerStatuses));
    } finally {
      privateServer.closeAllConnections();
      await new Promise((resolve) => privateServer.close(resolve));
    }
  });

  it('a plain HTTP registry on a loopback address is pulled from (containerd: localhost falls back to HTTP)', async () => {
    await cluster.kube.core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'loopback' }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: `127.0.0.1:${port}/test/busybox:v1`, imagePullPolicy: 'Always' }] } } });
    const done = await eventually('the pod to finish', async () => {
      const p = await pod('loopback');
      return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined;
    }, 90_000, 200);
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.containerStatuses));
  });
});

describe('node agent: without a certs dir, the node root\'s /etc/containerd/certs.d is the hosts directory', () => {
  const NS = 'team-b';
  const HOST = `nixery.${NS}.svc.cluster.local:5000`;
  let range: ClaimedRange;
  let cluster: Cluster;
  let work: string;
  let server: http.Server;

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-strict-root-'));
    const layout = path.join(work, 'layout');
    await busyboxLayout(layout);
    server = http.createServer(registryHandler(layout));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    range = await claimClusterIpRange();
    cluster = await startCluster(range.range, undefined, { strictNodePulls: true });
    await cluster.kube.core.createNamespace({ body: { metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } } });
    await registryService(cluster, NS, port);
  });
  after(() => stopAll(cluster, range, server, work));

  it('a hosts.toml a pod writes through the hostPath makes the Service name pullable', async () => {
    const clusterIP = await cluster.serviceAddress(NS, 'nixery');
    const at = '/tmp/nixery-harness-strict-it/certs.d';
    const toml = `server = "http://${clusterIP}:5000"\n[host."http://${clusterIP}:5000"]\n  capabilities = ["pull", "resolve"]\n`;
    await cluster.kube.core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'writer' },
        spec: {
          restartPolicy: 'Never',
          volumes: [{ name: 'certs', hostPath: { path: '/etc/containerd/certs.d', type: 'DirectoryOrCreate' } }],
          containers: [{ name: 'c', image: BUSYBOX_IMAGE, args: ['sh', '-c', `mkdir -p ${at}/${HOST} && printf '%s' '${toml}' > ${at}/${HOST}/hosts.toml`], volumeMounts: [{ name: 'certs', mountPath: at }] }],
        },
      },
    });
    const finished = (name: string) => eventually(`${name} to finish`, async () => {
      const p = await cluster.kube.core.readNamespacedPod({ namespace: NS, name });
      return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined;
    }, 90_000, 200);
    assert.equal((await finished('writer')).status?.phase, 'Succeeded');
    assert.equal(fs.readFileSync(path.join(cluster.dataDir, 'node-root/etc/containerd/certs.d', HOST, 'hosts.toml'), 'utf8'), toml);
    await cluster.kube.core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'puller' }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: `${HOST}/test/busybox:v1` }] } } });
    const done = await finished('puller');
    assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status?.containerStatuses));
  });
});
