// Certificates made at test time with openssl (scripts/setup.sh installs it): a CA, and serving
// certificates it signs for the hosts a test server answers on, so that a suite can serve HTTPS
// and show that a client trusts it with the CA and refuses it without. Nothing is checked in: a
// test's certificates live as long as its temporary directory.
import { randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { runOk } from './process.ts';

export interface CertificateAuthority {
  certFile: string;
  keyFile: string;
  /** The CA certificate, PEM: what a client is told to trust. */
  cert: string;
}

export interface ServingCertificate {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  /** SHA-256 fingerprint as node:crypto and `getPeerCertificate()` write it (`AB:CD:…`). */
  fingerprint256: string;
}

const DAYS = '2';
const CURVE = ['-pkeyopt', 'ec_paramgen_curve:P-256'];

/** A self-signed CA in `dir` (`<name>.crt`, `<name>.key`). */
export async function makeCertificateAuthority(dir: string, name = 'ca'): Promise<CertificateAuthority> {
  await fs.mkdir(dir, { recursive: true });
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  await runOk('openssl', [
    'req', '-x509', '-newkey', 'ec', ...CURVE, '-nodes', '-keyout', keyFile, '-out', certFile, '-days', DAYS,
    '-subj', `/CN=nixery test ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { certFile, keyFile, cert: await fs.readFile(certFile, 'utf8') };
}

export interface IssueOptions {
  /** Host names and IP addresses the certificate is for (its subjectAltName); the first is its CN. */
  hosts: string[];
  /** Reuse this key (a renewal that keeps the key); default: a new one. */
  keyFile?: string;
}

/** A serving certificate signed by `ca`, written to `dir` as `<name>.crt` and `<name>.key`. */
export async function issueCertificate(ca: CertificateAuthority, dir: string, name: string, options: IssueOptions): Promise<ServingCertificate> {
  await fs.mkdir(dir, { recursive: true });
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  if (options.keyFile === undefined) await runOk('openssl', ['genpkey', '-algorithm', 'EC', ...CURVE, '-out', keyFile]);
  else if (path.resolve(options.keyFile) !== keyFile) await fs.copyFile(options.keyFile, keyFile);
  const csr = path.join(dir, `${name}.csr`);
  const extensions = path.join(dir, `${name}.ext`);
  await runOk('openssl', ['req', '-new', '-key', keyFile, '-subj', `/CN=${options.hosts[0]}`, '-out', csr]);
  const altNames = options.hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  await fs.writeFile(
    extensions,
    `subjectAltName=${altNames}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`,
  );
  // A random serial: two certificates for the same hosts must differ, as a renewal does.
  const serial = `0x${randomBytes(16).toString('hex')}`;
  await runOk('openssl', ['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', serial, '-days', DAYS, '-extfile', extensions, '-out', certFile]);
  await Promise.all([fs.rm(csr), fs.rm(extensions)]);
  const cert = await fs.readFile(certFile, 'utf8');
  return { certFile, keyFile, cert, key: await fs.readFile(keyFile, 'utf8'), fingerprint256: new X509Certificate(cert).fingerprint256 };
}
