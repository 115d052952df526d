// A throw-away service account key in Google's JSON key file format, for GOOGLE_APPLICATION_CREDENTIALS.
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

export interface ServiceAccountKey {
  file: string;
  clientEmail: string;
  publicKey: KeyObject;
  privateKeyPem: string;
}

export async function writeServiceAccountKey(dir: string, name = 'nixery-test'): Promise<ServiceAccountKey> {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const projectId = 'nixery-emulated';
  const clientEmail = `${name}@${projectId}.iam.gserviceaccount.com`;
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const key = {
    type: 'service_account',
    project_id: projectId,
    private_key_id: randomBytes(20).toString('hex'),
    private_key: privateKeyPem,
    client_email: clientEmail,
    client_id: '100000000000000000001',
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    // Never contacted: with STORAGE_EMULATOR_HOST the library sends no tokens.
    token_uri: 'https://oauth2.googleapis.com/token',
    auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
    client_x509_cert_url: `https://www.googleapis.com/robot/v1/metadata/x509/${encodeURIComponent(clientEmail)}`,
    universe_domain: 'googleapis.com',
  };
  const file = path.join(dir, `${name}-key.json`);
  await fs.writeFile(file, JSON.stringify(key, null, 2), { mode: 0o600 });
  return { file, clientEmail, publicKey, privateKeyPem };
}
