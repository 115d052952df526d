import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { testInstance } from '../test-support/fixtures.ts';
import { caRenewal, createCertificateAuthority, issueServingCertificate, SERVING_LIFETIME_MS, servingRenewal, type KeyPair } from './certificates.ts';
import {
  caBundleOf,
  desiredCaBundleConfigMap,
  desiredCertificate,
  serviceDnsNames,
  servingNames,
  servingSecretName,
  tlsCondition,
  tlsMode,
  verificationName,
} from './tls.ts';

const instance = testInstance({ tls: { selfSigned: {} } });
const NOW = new Date('2026-03-01T00:00:00Z');
const DAY = 86_400_000;
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('TLS modes', () => {
  it('are one of secretName, issuerRef and selfSigned, or none', () => {
    assert.equal(tlsMode(testInstance()), undefined);
    assert.equal(tlsMode(testInstance({ tls: { secretName: 'cert' } })), 'secretName');
    assert.equal(tlsMode(testInstance({ tls: { issuerRef: { name: 'ca', kind: 'Issuer', group: 'cert-manager.io' } } })), 'issuerRef');
    assert.equal(tlsMode(instance), 'selfSigned');
  });

  it("serve from the user's Secret, or from <instance>-tls that cert-manager or the operator writes", () => {
    assert.equal(servingSecretName(testInstance()), undefined);
    assert.equal(servingSecretName(testInstance({ tls: { secretName: 'cert' } })), 'cert');
    assert.equal(servingSecretName(instance), 'nixery-tls');
  });
});

describe("the serving certificate's names", () => {
  it("are the Service's DNS names, localhost and 127.0.0.1 (the node-local path)", () => {
    assert.deepEqual(serviceDnsNames(instance), ['nixery', 'nixery.team-a', 'nixery.team-a.svc', 'nixery.team-a.svc.cluster.local']);
    assert.deepEqual(servingNames(instance), { dns: [...serviceDnsNames(instance), 'localhost'], ips: ['127.0.0.1'] });
    assert.equal(verificationName(instance), 'nixery.team-a.svc.cluster.local', 'the host pods pull from');
    assert.deepEqual(servingNames(instance, '10.96.4.2').ips, ['127.0.0.1', '10.96.4.2'], 'and the ClusterIP once there is one');
    assert.deepEqual(servingNames(instance, 'None').ips, ['127.0.0.1']);
  });
});

describe('issuerRef mode', () => {
  it('asks cert-manager for a Certificate of those names into <instance>-tls, owned by the instance', () => {
    const certificate = desiredCertificate(testInstance({ tls: { issuerRef: { name: 'ca', kind: 'ClusterIssuer', group: 'cert-manager.io' } } }));
    assert.equal(certificate.apiVersion, 'cert-manager.io/v1');
    assert.equal(certificate.kind, 'Certificate');
    assert.equal(certificate.metadata!.name, 'nixery-tls');
    assert.equal(certificate.metadata!.ownerReferences![0]!.kind, 'NixeryInstance');
    assert.equal(certificate.spec.secretName, 'nixery-tls');
    assert.deepEqual(certificate.spec.dnsNames, servingNames(instance).dns);
    assert.deepEqual(certificate.spec.ipAddresses, ['127.0.0.1']);
    assert.deepEqual(certificate.spec.issuerRef, { name: 'ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });
  });
});

describe('the CA bundle', () => {
  it("is a Secret's ca.crt, else its certificate chain, else nothing", () => {
    assert.equal(caBundleOf({ 'ca.crt': b64('-----BEGIN CERTIFICATE-----\nCA'), 'tls.crt': b64('-----BEGIN CERTIFICATE-----\nLEAF') }), '-----BEGIN CERTIFICATE-----\nCA');
    assert.equal(caBundleOf({ 'ca.crt': '', 'tls.crt': b64('-----BEGIN CERTIFICATE-----\nLEAF') }), '-----BEGIN CERTIFICATE-----\nLEAF');
    assert.equal(caBundleOf({ 'tls.key': b64('key') }), undefined);
    assert.equal(caBundleOf(undefined), undefined);
  });

  it('goes into the ConfigMap <instance>-ca-bundle as ca.crt', () => {
    const configMap = desiredCaBundleConfigMap(instance, 'PEM');
    assert.equal(configMap.metadata!.name, 'nixery-ca-bundle');
    assert.deepEqual(configMap.data, { 'ca.crt': 'PEM' });
  });
});

describe('TLSReady', () => {
  it('is True with a certificate and False with the reason otherwise', () => {
    assert.deepEqual(tlsCondition({ ready: true, secretName: 's', caBundle: 'x', message: 'm' }), { type: 'TLSReady', status: 'True', reason: 'CertificateReady', message: 'm' });
    assert.deepEqual(tlsCondition({ ready: false, reason: 'CertManagerNotInstalled', message: 'no', secretName: 's' }), {
      type: 'TLSReady',
      status: 'False',
      reason: 'CertManagerNotInstalled',
      message: 'no',
    });
  });
});

describe('self-signed certificates', () => {
  let ca: KeyPair;
  let serving: KeyPair;
  const names = servingNames(instance);

  it('are a CA and a serving certificate it signs, for exactly the names, for 90 days', async () => {
    ca = await createCertificateAuthority('nixery team-a/nixery CA', NOW);
    serving = await issueServingCertificate(ca, names, NOW);
    const caCert = new X509Certificate(ca.certPem);
    const cert = new X509Certificate(serving.certPem);
    assert.equal(caCert.ca, true);
    assert.equal(cert.ca, false);
    assert.ok(cert.checkIssued(caCert) && cert.verify(caCert.publicKey));
    assert.equal(cert.subjectAltName, 'DNS:nixery, DNS:nixery.team-a, DNS:nixery.team-a.svc, DNS:nixery.team-a.svc.cluster.local, DNS:localhost, IP Address:127.0.0.1');
    assert.equal(new Date(cert.validTo).getTime() - NOW.getTime(), SERVING_LIFETIME_MS);
    assert.equal(cert.publicKey.asymmetricKeyDetails!.namedCurve, 'prime256v1');
    assert.match(serving.keyPem, /^-----BEGIN PRIVATE KEY-----/);
  });

  it('serve HTTPS that a client trusting the CA accepts by each name, and one trusting nothing refuses', async (t) => {
    const now = new Date();
    const liveCa = await createCertificateAuthority('test CA', now);
    const live = await issueServingCertificate(liveCa, names, now);
    const server = https.createServer({ cert: live.certPem, key: live.keyPem }, (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const { port } = server.address() as AddressInfo;
    const get = (options: https.RequestOptions) =>
      new Promise<string>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port, path: '/', ...options }, (res) => {
          res.resume();
          resolve(String(res.statusCode));
        }).on('error', (error) => reject(error));
      });
    for (const servername of ['nixery.team-a.svc.cluster.local', 'nixery.team-a.svc', 'localhost']) assert.equal(await get({ ca: liveCa.certPem, servername }), '200', servername);
    assert.equal(await get({ ca: liveCa.certPem }), '200', 'by 127.0.0.1');
    await assert.rejects(get({ ca: liveCa.certPem, servername: 'other.team-a.svc' }), /altnames/);
    await assert.rejects(get({ servername: 'localhost' }), /self-signed|unable to verify|local issuer/);
  });

  it('are kept until two thirds of the lifetime, then renewed', () => {
    const keep = servingRenewal(serving.certPem, ca.certPem, names, new Date(NOW.getTime() + 59 * DAY));
    assert.equal(keep.renew, false);
    assert.equal(!keep.renew && keep.renewAt.getTime(), NOW.getTime() - 5 * 60_000 + ((SERVING_LIFETIME_MS + 5 * 60_000) * 2) / 3);
    const late = servingRenewal(serving.certPem, ca.certPem, names, new Date(NOW.getTime() + 61 * DAY));
    assert.ok(late.renew && /expires on/.test(late.why));
  });

  it('are renewed when the names change, the CA is another, or there is none', async () => {
    const moved = servingRenewal(serving.certPem, ca.certPem, servingNames(testInstance({}, { namespace: 'team-b' })), NOW);
    assert.ok(moved.renew && /names/.test(moved.why));
    const otherCa = await createCertificateAuthority('another', NOW);
    const foreign = servingRenewal(serving.certPem, otherCa.certPem, names, NOW);
    assert.ok(foreign.renew && /not signed by the current CA/.test(foreign.why));
    assert.deepEqual(servingRenewal(undefined, ca.certPem, names, NOW), { renew: true, why: 'there is no serving certificate yet' });
    assert.equal(servingRenewal('garbage', ca.certPem, names, NOW).renew, true);
  });

  it('have a CA of ten years, replaced once less than a serving lifetime is left', () => {
    const keep = caRenewal(ca.certPem, new Date(NOW.getTime() + 3000 * DAY));
    assert.equal(keep.renew, false);
    assert.equal(caRenewal(ca.certPem, new Date(NOW.getTime() + 3600 * DAY)).renew, true);
    assert.deepEqual(caRenewal(undefined, NOW), { renew: true, why: 'there is no CA yet' });
  });
});
