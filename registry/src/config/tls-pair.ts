// The registry's serving certificate and key (NIXERY_TLS_CERT_FILE, NIXERY_TLS_KEY_FILE): read
// and judged as a pair, at start-up (config.ts refuses to start with a bad one) and whenever the
// files change (http/tls-files.ts keeps the old pair when the new one is bad).
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';

export interface TlsFiles {
  /** PEM: the serving certificate first, then any intermediates. */
  certFile: string;
  /** PEM: the certificate's private key, unencrypted. */
  keyFile: string;
}

/** What the log may say about a certificate: never the key. */
export interface CertificateSummary {
  subject: string;
  subjectAltName: string | undefined;
  issuer: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  fingerprint256: string;
}

export interface TlsPair {
  cert: Buffer;
  key: Buffer;
  summary: CertificateSummary;
}

export class TlsPairError extends Error {
  readonly code = 'TLS_PAIR_INVALID';
  /** Which file is at fault: the certificate's, or the key's (unreadable, not what it should hold, not the certificate's key). */
  readonly file: keyof TlsFiles;
  constructor(message: string, file: keyof TlsFiles, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TlsPairError';
    this.file = file;
  }
}

/**
 * Judges a certificate and key: the first certificate parses, the key parses, the key is the
 * certificate's, and Node's TLS takes both. Throws TlsPairError saying which and why.
 */
export function checkTlsPair(files: TlsFiles, cert: Buffer, key: Buffer): CertificateSummary {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    throw new TlsPairError(`${files.certFile} holds no PEM certificate: ${(error as Error).message}`, 'certFile', { cause: error });
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new TlsPairError(`${files.keyFile} holds no unencrypted PEM private key: ${(error as Error).message}`, 'keyFile', { cause: error });
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsPairError(`the key in ${files.keyFile} is not the key of the certificate in ${files.certFile} (${x509.subject.replace(/\n/g, ', ')})`, 'keyFile');
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new TlsPairError(`${files.certFile} and ${files.keyFile} cannot serve TLS: ${(error as Error).message}`, 'certFile', { cause: error });
  }
  return {
    subject: x509.subject.replace(/\n/g, ', '),
    subjectAltName: x509.subjectAltName,
    issuer: x509.issuer.replace(/\n/g, ', '),
    serialNumber: x509.serialNumber,
    notBefore: new Date(x509.validFrom).toISOString(),
    notAfter: new Date(x509.validTo).toISOString(),
    fingerprint256: x509.fingerprint256,
  };
}

/** Reads and judges the pair at start-up (loadConfig is synchronous). */
export function readTlsPairSync(files: TlsFiles): TlsPair {
  const cert = readOne(files, 'certFile', readFileSync);
  const key = readOne(files, 'keyFile', readFileSync);
  return { cert, key, summary: checkTlsPair(files, cert, key) };
}

/** The files' bytes as they are now, not yet judged. */
export async function readTlsFiles(files: TlsFiles): Promise<{ cert: Buffer; key: Buffer }> {
  const [cert, key] = await Promise.all([readOneAsync(files, 'certFile'), readOneAsync(files, 'keyFile')]);
  return { cert, key };
}

function readOne(files: TlsFiles, which: keyof TlsFiles, read: (file: string) => Buffer): Buffer {
  try {
    return read(files[which]);
  } catch (error) {
    throw new TlsPairError(`cannot read ${files[which]}: ${(error as Error).message}`, which, { cause: error });
  }
}

async function readOneAsync(files: TlsFiles, which: keyof TlsFiles): Promise<Buffer> {
  try {
    return await readFile(files[which]);
  } catch (error) {
    throw new TlsPairError(`cannot read ${files[which]}: ${(error as Error).message}`, which, { cause: error });
  }
}
