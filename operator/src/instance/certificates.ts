// Self-signed mode's certificates: a CA made once, and a serving certificate it signs for the
// registry's names, renewed at two thirds of its lifetime, when the names change or when the CA
// did. ECDSA P-256 throughout; @peculiar/x509 writes the certificates (node:crypto only reads
// them), WebCrypto makes and signs with the keys.
import 'reflect-metadata';
import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** A serving certificate lives 90 days and is renewed after 60. */
export const SERVING_LIFETIME_MS = 90 * DAY_MS;
export const CA_LIFETIME_MS = 3650 * DAY_MS;
/** Certificates start a little in the past: a node whose clock lags still accepts a fresh one. */
const BACKDATE_MS = 5 * 60_000;

export interface KeyPair {
  certPem: string;
  keyPem: string;
}

export interface ServingNames {
  dns: string[];
  ips: string[];
}

export async function createCertificateAuthority(commonName: string, now: Date): Promise<KeyPair> {
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [commonName] }, { O: ['nixery-operator'] }],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + CA_LIFETIME_MS),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

export async function issueServingCertificate(ca: KeyPair, names: ServingNames, now: Date): Promise<KeyPair> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await webcrypto.subtle.importKey('pkcs8', createPrivateKey(ca.keyPem).export({ format: 'der', type: 'pkcs8' }), ALGORITHM, false, ['sign']);
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: [{ CN: [names.dns.find((n) => n.endsWith('.svc')) ?? names.dns[0]!] }],
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + SERVING_LIFETIME_MS),
    signingKey: caKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([...names.dns.map((value) => ({ type: 'dns' as const, value })), ...names.ips.map((value) => ({ type: 'ip' as const, value }))]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

/** Keep until `renewAt`, or make a new one now, and why. */
export type RenewalDecision = { renew: false; renewAt: Date } | { renew: true; why: string };

/** The CA is replaced once less than a serving certificate's lifetime is left of it. */
export function caRenewal(caPem: string | undefined, now: Date): RenewalDecision {
  const ca = parse(caPem);
  if (!ca) return { renew: true, why: 'there is no CA yet' };
  const renewAt = new Date(new Date(ca.validTo).getTime() - SERVING_LIFETIME_MS);
  return now >= renewAt ? { renew: true, why: `the CA expires on ${new Date(ca.validTo).toISOString()}` } : { renew: false, renewAt };
}

/** Whether the serving certificate still does: signed by this CA, for exactly these names, within two thirds of its life. */
export function servingRenewal(certPem: string | undefined, caPem: string, names: ServingNames, now: Date): RenewalDecision {
  const cert = parse(certPem);
  if (!cert) return { renew: true, why: 'there is no serving certificate yet' };
  const ca = new X509Certificate(caPem);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return { renew: true, why: 'it is not signed by the current CA' };
  const want = [...names.dns.map((n) => `DNS:${n}`), ...names.ips.map((ip) => `IP Address:${ip}`)].sort();
  const have = (cert.subjectAltName ?? '').split(', ').filter(Boolean).sort();
  if (want.join(',') !== have.join(',')) return { renew: true, why: `its names (${have.join(', ')}) are not the Service's (${want.join(', ')})` };
  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  const renewAt = new Date(from + ((to - from) * 2) / 3);
  return now >= renewAt ? { renew: true, why: `it expires on ${new Date(to).toISOString()}` } : { renew: false, renewAt };
}

function parse(pem: string | undefined): X509Certificate | undefined {
  if (!pem) return undefined;
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** 16 random bytes, positive as RFC 5280 wants (the high bit clear). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  return bytes.toString('hex');
}
