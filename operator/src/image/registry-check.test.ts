import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createCertificateAuthority, issueServingCertificate } from '../instance/certificates.ts';
import { MANIFEST_ACCEPT, verifyDigest, type DigestCheckRequest } from './registry-check.ts';

const DIGEST = `sha256:${'d'.repeat(64)}`;
const OTHER = `sha256:${'a'.repeat(64)}`;

interface FakeRegistry {
  /** Manifests of repository `toolbox` by reference (digest or tag): the digest each answers with. */
  manifests: Record<string, string>;
  /** Anonymous pulls off: manifests want a Bearer token, which /v2/token sells to this user. */
  login?: { username: string; password: string };
  /** What the registry was asked, one line per request. */
  seen: string[];
}

/** A registry's manifest HEAD and token endpoint, as far as the check uses them. */
function handler(registry: FakeRegistry): http.RequestListener {
  return (req, res) => {
    const url = new URL(req.url!, 'http://registry');
    registry.seen.push(`${req.method} ${url.pathname}${url.search} ${req.headers.authorization?.split(' ')[0] ?? 'anonymous'}`);
    if (url.pathname === '/v2/token') {
      const basic = `Basic ${Buffer.from(`${registry.login?.username}:${registry.login?.password}`).toString('base64')}`;
      if (req.headers.authorization !== basic || url.searchParams.get('scope') !== 'repository:toolbox:pull') return void res.writeHead(401).end();
      return void res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token: 'pull-token' }));
    }
    if (registry.login && req.headers.authorization !== 'Bearer pull-token') {
      return void res.writeHead(401, { 'WWW-Authenticate': 'Bearer realm="http://registry/v2/token",service="nixery"' }).end();
    }
    const match = /^\/v2\/toolbox\/manifests\/(.+)$/.exec(url.pathname);
    const digest = match && req.headers.accept === MANIFEST_ACCEPT ? registry.manifests[decodeURIComponent(match[1]!)] : undefined;
    if (!digest) return void res.writeHead(404).end();
    res.writeHead(200, { 'Docker-Content-Digest': digest, 'Content-Type': 'application/vnd.oci.image.index.v1+json' }).end();
  };
}

async function serve(t: TestContext, registry: FakeRegistry, tls?: { cert: string; key: string }): Promise<string> {
  const server = tls ? https.createServer(tls, handler(registry)) : http.createServer(handler(registry));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  return `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const ask = (baseUrl: string, more: Partial<DigestCheckRequest> = {}) => verifyDigest({ baseUrl, repository: 'toolbox', tag: 'v1', digest: DIGEST, ...more });

describe('confirming a build’s digest with the registry', () => {
  it('confirms when the manifest answers by digest and the tag names that digest, asking for every manifest type', async (t) => {
    const registry: FakeRegistry = { manifests: { [DIGEST]: DIGEST, v1: DIGEST }, seen: [] };
    const base = await serve(t, registry);
    assert.deepEqual(await ask(base), { confirmed: true });
    assert.deepEqual(registry.seen, [`HEAD /v2/toolbox/manifests/${DIGEST} anonymous`, 'HEAD /v2/toolbox/manifests/v1 anonymous']);
  });

  it('does not confirm a digest the registry does not have', async (t) => {
    const base = await serve(t, { manifests: { v1: OTHER }, seen: [] });
    assert.deepEqual(await ask(base), { confirmed: false, message: `HEAD ${base}/v2/toolbox/manifests/${DIGEST} answered 404` });
  });

  it('does not confirm when the tag names another digest, or none', async (t) => {
    const moved = await serve(t, { manifests: { [DIGEST]: DIGEST, v1: OTHER }, seen: [] });
    assert.deepEqual(await ask(moved), {
      confirmed: false,
      message: `HEAD ${moved}/v2/toolbox/manifests/v1 answered 200 with Docker-Content-Digest ${OTHER}, not ${DIGEST}`,
    });
    const untagged = await serve(t, { manifests: { [DIGEST]: DIGEST }, seen: [] });
    assert.deepEqual(await ask(untagged), { confirmed: false, message: `HEAD ${untagged}/v2/toolbox/manifests/v1 answered 404` });
  });

  it('does not confirm when the registry names another digest for the digest asked', async (t) => {
    const base = await serve(t, { manifests: { [DIGEST]: OTHER, v1: OTHER }, seen: [] });
    const check = await ask(base);
    assert.equal(check.confirmed, false);
    assert.match((check as { message: string }).message, /Docker-Content-Digest sha256:a{64}, not sha256:d{64}/);
  });

  it('with anonymous pulls off, buys a pull token with the pull user when challenged, once for both questions', async (t) => {
    const login = { username: 'nixery-operator-pull', password: 'secret' };
    const registry: FakeRegistry = { manifests: { [DIGEST]: DIGEST, v1: DIGEST }, login, seen: [] };
    const base = await serve(t, registry);
    assert.deepEqual(await ask(base, { credentials: async () => login }), { confirmed: true });
    assert.deepEqual(registry.seen, [
      `HEAD /v2/toolbox/manifests/${DIGEST} anonymous`,
      'GET /v2/token?service=nixery&scope=repository%3Atoolbox%3Apull Basic',
      `HEAD /v2/toolbox/manifests/${DIGEST} Bearer`,
      'HEAD /v2/toolbox/manifests/v1 Bearer',
    ]);
    const refused = await ask(base, { credentials: async () => ({ ...login, password: 'wrong' }) });
    assert.deepEqual(refused, {
      confirmed: false,
      message: `HEAD ${base}/v2/toolbox/manifests/${DIGEST} answered 401 and GET ${base}/v2/token?service=nixery&scope=repository%3Atoolbox%3Apull answered 401`,
    });
    const without = await ask(base);
    assert.deepEqual(without, { confirmed: false, message: `HEAD ${base}/v2/toolbox/manifests/${DIGEST} answered 401 and the operator has no pull user to log in with` });
  });

  it('over HTTPS trusts the given CA and checks the given name', async (t) => {
    const now = new Date();
    const ca = await createCertificateAuthority('check CA', now);
    const pair = await issueServingCertificate(ca, { dns: ['nixery.team-a.svc.cluster.local'], ips: ['127.0.0.1'] }, now);
    const base = await serve(t, { manifests: { [DIGEST]: DIGEST, v1: DIGEST }, seen: [] }, { cert: pair.certPem, key: pair.keyPem });
    assert.deepEqual(await ask(base, { ca: ca.certPem, servername: 'nixery.team-a.svc.cluster.local' }), { confirmed: true });
    const wrongName = await ask(base, { ca: ca.certPem, servername: 'nixery.team-b.svc.cluster.local' });
    assert.equal(wrongName.confirmed, false);
    assert.match((wrongName as { message: string }).message, /could not be asked: .*altnames/);
    const untrusted = await ask(base, { servername: 'nixery.team-a.svc.cluster.local' });
    assert.equal(untrusted.confirmed, false);
  });

  it('says the registry could not be asked when nothing listens, without throwing', async () => {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const check = await ask(base);
    assert.equal(check.confirmed, false);
    assert.match((check as { message: string }).message, new RegExp(`^the registry at ${base} could not be asked: .*ECONNREFUSED`));
  });
});
