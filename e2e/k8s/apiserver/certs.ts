// A certificate authority and a serving certificate for 127.0.0.1/localhost, made with the
// openssl CLI (Node cannot issue X.509 certificates). client-node and kubectl both insist on
// TLS they can verify, so the kubeconfig carries this CA. With a data directory the same
// certificates are reused across restarts, so kubeconfigs written earlier stay valid.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface ServingCerts {
  caCertPem: string;
  certPem: string;
  keyPem: string;
}

export class CertificateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CertificateError';
  }
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new CertificateError('openssl not found on PATH: install it (Debian: apt-get install openssl)');
    throw new CertificateError(`openssl ${args[0] ?? ''} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

function generate(dir: string): void {
  const ext = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'server.ext'), `${ext}\n`);
  const ecKey = (out: string): string[] => ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', out];
  openssl(ecKey('ca.key'), dir);
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=nixery-k8s-ca', '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature', '-out', 'ca.crt'], dir);
  openssl(ecKey('server.key'), dir);
  openssl(['req', '-new', '-key', 'server.key', '-subj', '/CN=kube-apiserver', '-out', 'server.csr'], dir);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${Date.now().toString(16)}`, '-days', '3650', '-extfile', 'server.ext', '-out', 'server.crt'], dir);
}

/** Reads certificates from `dir` or creates them there; without a dir, uses a temporary one. */
export function servingCerts(dir?: string): ServingCerts {
  const target = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-k8s-pki-'));
  try {
    fs.mkdirSync(target, { recursive: true });
    const files = ['ca.crt', 'server.crt', 'server.key'].map((f) => path.join(target, f));
    if (!files.every((f) => fs.existsSync(f))) generate(target);
    const [ca, cert, key] = files.map((f) => fs.readFileSync(f, 'utf8'));
    return { caCertPem: ca ?? '', certPem: cert ?? '', keyPem: key ?? '' };
  } finally {
    if (!dir) fs.rmSync(target, { recursive: true, force: true });
  }
}
