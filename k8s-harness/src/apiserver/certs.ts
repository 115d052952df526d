// A certificate authority and a serving certificate for 127.0.0.1/localhost and the in-cluster
// names and address of the `kubernetes` Service, made with the openssl CLI (Node cannot issue
// X.509 certificates). client-node and kubectl both insist on TLS they can verify, so the
// kubeconfig and every pod's ca.crt carry this CA. With a data directory the same certificates
// are reused across restarts, so kubeconfigs written earlier stay valid.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
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
    // Synchronous, so it blocks every timer of this process while it runs: bounded here.
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000, killSignal: 'SIGKILL' });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new CertificateError('openssl not found on PATH: install it (Debian: apt-get install openssl)');
    throw new CertificateError(`openssl ${args[0] ?? ''} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

const ecKey = (out: string): string[] => ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', out];

function generateCa(dir: string): void {
  openssl(ecKey('ca.key'), dir);
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=nixery-k8s-ca', '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature', '-out', 'ca.crt'], dir);
}

function generateServer(dir: string, ips: readonly string[]): void {
  const names = ['IP:127.0.0.1', 'IP:::1', ...ips.map((ip) => `IP:${ip}`), 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local'];
  const ext = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=${[...new Set(names)].join(',')}`,
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'server.ext'), `${ext}\n`);
  openssl(ecKey('server.key'), dir);
  openssl(['req', '-new', '-key', 'server.key', '-subj', '/CN=kube-apiserver', '-out', 'server.csr'], dir);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${Date.now().toString(16)}`, '-days', '3650', '-extfile', 'server.ext', '-out', 'server.crt'], dir);
}

/**
 * Reads certificates from `dir` or creates them there; without a dir, uses a temporary one. The
 * serving certificate is valid for localhost, 127.0.0.1, the `kubernetes.default.svc` names and
 * `ips` (the `kubernetes` Service's ClusterIP): one that lacks an address is issued again by the
 * same CA, so kubeconfigs written earlier stay valid.
 */
export function servingCerts(dir?: string, ips: readonly string[] = []): ServingCerts {
  const target = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-k8s-pki-'));
  try {
    fs.mkdirSync(target, { recursive: true });
    const file = (f: string) => path.join(target, f);
    if (!fs.existsSync(file('ca.crt')) || !fs.existsSync(file('ca.key'))) {
      generateCa(target);
      generateServer(target, ips);
    } else if (!fs.existsSync(file('server.crt')) || !fs.existsSync(file('server.key')) || !covers(fs.readFileSync(file('server.crt'), 'utf8'), ips)) {
      generateServer(target, ips);
    }
    const [ca, cert, key] = ['ca.crt', 'server.crt', 'server.key'].map((f) => fs.readFileSync(file(f), 'utf8'));
    return { caCertPem: ca ?? '', certPem: cert ?? '', keyPem: key ?? '' };
  } finally {
    if (!dir) fs.rmSync(target, { recursive: true, force: true });
  }
}

function covers(certPem: string, ips: readonly string[]): boolean {
  try {
    const cert = new X509Certificate(certPem);
    return ['127.0.0.1', ...ips].every((ip) => cert.checkIP(ip) !== undefined);
  } catch {
    return false;
  }
}
