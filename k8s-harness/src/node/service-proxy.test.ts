// The API server's Service proxy (/api/v1/namespaces/NS/services/[scheme:]NAME[:PORT]/proxy/…)
// in front of a real pod: how suites reach Services from outside any cluster, the same way
// against this harness and a real kube-apiserver.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import path from 'node:path';
import type { V1Deployment } from '@kubernetes/client-node';
import { claimClusterIpRange, type ClaimedRange } from '../ip-range.ts';
import { eventually } from '@nixery/test-support';
import { HERE, startCluster, TEST_IMAGES, type Cluster } from './testing.ts';

const NS = 'proxy-it';
const ECHO = 'example.org/echo-http';
const PREFIX = `/api/v1/namespaces/${NS}/services`;

function echoDeployment(): V1Deployment {
  return {
    metadata: { name: 'echo', namespace: NS },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'echo' } },
      template: {
        metadata: { labels: { app: 'echo' } },
        spec: {
          terminationGracePeriodSeconds: 2,
          containers: [
            {
              name: 'echo',
              image: ECHO,
              env: [
                { name: 'HOST', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                { name: 'PORTS', value: '8080,8081' },
              ],
              ports: [{ name: 'http', containerPort: 8080 }, { name: 'alt', containerPort: 8081 }],
              readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

interface Described {
  port: number;
  method: string;
  url: string;
  headers: Record<string, string>;
}

describe('the Service proxy subresource', () => {
  let cluster: Cluster;
  let range: ClaimedRange;
  let token: string;
  let podIP: string;

  /** A request to the API server as the kubeconfig's user, answer read whole. */
  const call = (method: string, pathAndQuery: string, options: { body?: Buffer; headers?: Record<string, string> } = {}): Promise<Answer> => {
    const url = new URL(cluster.api.url);
    return new Promise((resolve, reject) => {
      const req = https.request(
        { host: url.hostname, port: url.port, method, path: pathAndQuery, ca: cluster.api.caCertPem, headers: { Authorization: `Bearer ${token}`, ...options.headers } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        },
      );
      req.on('error', reject);
      req.end(options.body);
    });
  };
  const describeRequest = async (method: string, pathAndQuery: string): Promise<Described> => {
    const answer = await call(method, pathAndQuery);
    assert.equal(answer.status, 200, answer.body.toString());
    return JSON.parse(answer.body.toString()) as Described;
  };

  before(async () => {
    range = await claimClusterIpRange();
    cluster = await startCluster(range.range, [...TEST_IMAGES, { image: ECHO, command: [process.execPath, path.join(HERE, 'fixtures/echo-http.mjs')] }]);
    token = cluster.kube.config.getCurrentUser()?.token ?? '';
    await cluster.namespace(NS);
    await cluster.kube.apps.createNamespacedDeployment({ namespace: NS, body: echoDeployment() });
    await cluster.kube.core.createNamespacedService({
      namespace: NS,
      body: { metadata: { name: 'echo' }, spec: { selector: { app: 'echo' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'alt', port: 81, targetPort: 'alt' }] } },
    });
    const endpoints = await eventually('a ready echo endpoint', async () => {
      const ep = await cluster.kube.core.readNamespacedEndpoints({ namespace: NS, name: 'echo' });
      return ep.subsets?.[0]?.addresses?.length ? ep : undefined;
    }, 60_000, 100);
    podIP = endpoints.subsets?.[0]?.addresses?.[0]?.ip ?? '';
  });
  after(async () => {
    await cluster?.stop();
    await range?.release();
  });

  it('kubectl get --raw reaches the pod; the query goes along, the client\'s Authorization does not', async () => {
    const r = await cluster.kubectl(['get', '--raw', `${PREFIX}/echo:http/proxy/hello/world?x=1&y=two`]);
    assert.equal(r.code, 0, r.stderr);
    const seen = JSON.parse(r.stdout) as Described;
    assert.equal(seen.port, 8080);
    assert.equal(seen.method, 'GET');
    assert.equal(seen.url, '/hello/world?x=1&y=two');
    assert.equal(seen.headers.authorization, undefined);
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-uri'], `${PREFIX}/echo:http/proxy/hello/world`);
    // the Host the client used, as Go's reverse proxy keeps it
    assert.equal(seen.headers.host, new URL(cluster.api.url).host);
    assert.match(seen.headers['user-agent'] ?? '', /^kubectl\//);

    const entry = cluster.api.requestLog.findLast((e) => e.path === `${PREFIX}/echo:http/proxy/hello/world`);
    assert.deepEqual(entry && { ...entry }, {
      method: 'GET',
      path: `${PREFIX}/echo:http/proxy/hello/world`,
      verb: 'get',
      user: 'admin',
      groups: ['system:masters', 'system:authenticated'],
      resourceRequest: true,
      apiGroup: '',
      apiVersion: 'v1',
      resource: 'services',
      subresource: 'proxy',
      namespace: NS,
      // RequestInfo's name is the id as written: RBAC resourceNames must say `echo:http`
      name: 'echo:http',
    });
    // the query exactly as received; the path decoded and encoded again, as Go does
    assert.equal((await describeRequest('GET', `${PREFIX}/echo%3Ahttp/proxy/a%20b/c%2Fd?y=two%20words&y=%2B&path=q`)).url, '/a%20b/c/d?y=two%20words&y=%2B&path=q');
  });

  it('the port by name or number selects the target port; scheme http is the default', async () => {
    assert.equal((await describeRequest('GET', `${PREFIX}/echo:alt/proxy/`)).port, 8081);
    assert.equal((await describeRequest('GET', `${PREFIX}/echo:81/proxy/`)).port, 8081);
    assert.equal((await describeRequest('GET', `${PREFIX}/echo:80/proxy/`)).port, 8080);
    assert.equal((await describeRequest('GET', `${PREFIX}/http:echo:http/proxy/x`)).url, '/x');
    // a Service whose ports are named needs the name: `echo` alone asks for the unnamed port
    const unnamed = await call('GET', `${PREFIX}/echo/proxy/`);
    assert.equal(unnamed.status, 503);
    assert.equal(JSON.parse(unnamed.body.toString()).message, 'no endpoints available for service "echo"');
    const wrongNumber = await call('GET', `${PREFIX}/echo:99/proxy/`);
    assert.equal(wrongNumber.status, 503);
    assert.equal(JSON.parse(wrongNumber.body.toString()).message, 'no service port 99 found for service "echo"');
    const badScheme = await call('GET', `${PREFIX}/ftp:echo:http/proxy/`);
    assert.equal(badScheme.status, 400);
    assert.equal(JSON.parse(badScheme.body.toString()).message, 'invalid service request "ftp:echo:http"');
  });

  it('client-node connectGetNamespacedServiceProxyWithPath (which encodes the path as one segment)', async () => {
    const answer = await cluster.kube.core.connectGetNamespacedServiceProxyWithPath({ namespace: NS, name: 'echo:http', path: 'via/client-node' });
    assert.equal((JSON.parse(String(answer)) as Described).url, '/via/client-node');
  });

  it('streams a POST body both ways, byte for byte', async () => {
    const first = randomBytes(64 * 1024);
    const rest = randomBytes(8 * 1024 * 1024);
    const url = new URL(cluster.api.url);
    const received = await new Promise<Buffer>((resolve, reject) => {
      const req = https.request(
        { host: url.hostname, port: url.port, method: 'POST', path: `${PREFIX}/echo:http/proxy/echo`, ca: cluster.api.caCertPem, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/octet-stream' } },
        (res) => {
          assert.equal(res.statusCode, 200);
          assert.equal(res.headers['content-type'], 'application/octet-stream');
          const chunks: Buffer[] = [];
          let sentRest = false;
          res.on('data', (c: Buffer) => {
            chunks.push(c);
            // The first part came back before the rest was sent: nothing waited for the whole body.
            if (!sentRest && Buffer.concat(chunks).length >= first.length) {
              sentRest = true;
              req.end(rest);
            }
          });
          res.on('end', () => resolve(Buffer.concat(chunks)));
        },
      );
      req.on('error', reject);
      req.write(first);
    });
    assert.equal(received.length, first.length + rest.length);
    assert.ok(received.equals(Buffer.concat([first, rest])));
  });

  it('every method goes through, with the verb upstream authorizes it as', async () => {
    for (const [method, verb] of [['PUT', 'update'], ['PATCH', 'patch'], ['DELETE', 'delete'], ['OPTIONS', ''], ['POST', 'create']] as const) {
      const seen = await describeRequest(method, `${PREFIX}/echo:http/proxy/m`);
      assert.equal(seen.method, method);
      const entry = cluster.api.requestLog.findLast((e) => e.path === `${PREFIX}/echo:http/proxy/m`);
      assert.equal(entry?.verb, verb, method);
    }
    const head = await call('HEAD', `${PREFIX}/echo:http/proxy/m`);
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(cluster.api.requestLog.findLast((e) => e.path === `${PREFIX}/echo:http/proxy/m`)?.verb, 'get');
  });

  it('answers keep their headers except CORS ones, and carry an Audit-Id', async () => {
    const answer = await call('GET', `${PREFIX}/echo:http/proxy/h`);
    assert.equal(answer.headers['content-type'], 'text/plain');
    assert.equal(answer.headers['access-control-allow-origin'], undefined);
    assert.equal(typeof answer.headers['audit-id'], 'string');
  });

  it('rewrites Locations that lead back to the pod or this server, as the proxy transport does', async () => {
    const location = async (to: string) => (await call('GET', `${PREFIX}/echo:http/proxy/redirect?to=${encodeURIComponent(to)}`)).headers.location;
    const base = `${PREFIX}/echo:http/proxy`;
    assert.equal(await location('/v2/uploads/1?state=a'), `${base}/v2/uploads/1?state=a`);
    assert.equal(await location(`http://${podIP}:8080/dir/`), `${base}/dir/`);
    assert.equal(await location(`${cluster.api.url}/there`), `${cluster.api.url}${base}/there`);
    assert.equal(await location(`${base}/already`), `${base}/already`);
    assert.equal(await location('http://elsewhere.example/x'), 'http://elsewhere.example/x');
    assert.equal(await location('relative/path'), 'relative/path');
    // `.../proxy` without a path is sent to `.../proxy/` first
    const bare = await call('GET', `${base}?q=1`);
    assert.equal(bare.status, 301);
    assert.equal(bare.headers.location, `${base}/?q=1`);
  });

  it('404 for a missing Service (services or endpoints, as upstream looks either up), 503 without ready endpoints or a listener', async () => {
    const byNumber = await cluster.kubectl(['get', '--raw', `${PREFIX}/missing:80/proxy/`]);
    assert.notEqual(byNumber.code, 0);
    assert.match(byNumber.stderr, /NotFound.*services "missing" not found/);
    const byName = await call('GET', `${PREFIX}/missing:http/proxy/`);
    assert.equal(byName.status, 404);
    assert.equal(JSON.parse(byName.body.toString()).message, 'endpoints "missing" not found');

    await cluster.kube.core.createNamespacedService({ namespace: NS, body: { metadata: { name: 'idle' }, spec: { selector: { app: 'nobody' }, ports: [{ name: 'http', port: 80 }] } } });
    await eventually('the idle Service\'s Endpoints', () => cluster.kube.core.readNamespacedEndpoints({ namespace: NS, name: 'idle' }), 60_000, 100);
    const idle = await cluster.kubectl(['get', '--raw', `${PREFIX}/idle:http/proxy/`]);
    assert.notEqual(idle.code, 0);
    assert.match(idle.stderr, /ServiceUnavailable.*no endpoints available for service "idle"/);
    const status = JSON.parse((await call('GET', `${PREFIX}/idle:http/proxy/`)).body.toString()) as Record<string, unknown>;
    assert.deepEqual(status, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'no endpoints available for service "idle"', reason: 'ServiceUnavailable', code: 503 });

    await cluster.kube.core.createNamespacedService({ namespace: NS, body: { metadata: { name: 'closed' }, spec: { selector: { app: 'echo' }, ports: [{ name: 'http', port: 80, targetPort: 9999 }] } } });
    await eventually('the closed Service\'s endpoint', async () => {
      const ep = await cluster.kube.core.readNamespacedEndpoints({ namespace: NS, name: 'closed' });
      return ep.subsets?.[0]?.addresses?.length ? ep : undefined;
    }, 60_000, 100);
    const refused = await call('POST', `${PREFIX}/closed:http/proxy/`, { body: Buffer.from('x') });
    assert.equal(refused.status, 503);
    assert.equal(JSON.parse(refused.body.toString()).message, `error trying to reach service: dial tcp ${podIP}:9999: connect: connection refused`);
  });

  it('discovery lists services/proxy', async () => {
    const r = await cluster.kubectl(['get', '--raw', '/api/v1']);
    const resources = (JSON.parse(r.stdout) as { resources: { name: string; kind: string; verbs: string[] }[] }).resources;
    assert.deepEqual(resources.find((x) => x.name === 'services/proxy'), { name: 'services/proxy', singularName: '', namespaced: true, kind: 'ServiceProxyOptions', verbs: ['create', 'delete', 'get', 'patch', 'update'] });
    assert.equal(resources.find((x) => x.name === 'pods/proxy'), undefined);
  });
});
