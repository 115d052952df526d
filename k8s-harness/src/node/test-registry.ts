// A read-only OCI distribution server for the pull tests (registry-trust.test.ts, strict-pull.test.ts):
// it serves `test/busybox` from one OCI layout, over HTTP or HTTPS as the test makes its server.
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { runOk } from '@nixery/test-support';

/** An OCI layout at `layout` with `test/busybox:v1`: the host's static busybox, printing `pulled`. */
export async function busyboxLayout(layout: string): Promise<void> {
  await runOk('umoci', ['init', '--layout', layout], { timeoutMs: 60_000 });
  await runOk('umoci', ['new', '--image', `${layout}:v1`], { timeoutMs: 60_000 });
  await runOk('umoci', ['insert', '--image', `${layout}:v1`, '/usr/bin/busybox', '/bin/busybox'], { timeoutMs: 60_000 });
  await runOk('umoci', ['config', '--image', `${layout}:v1`, '--config.entrypoint', '/bin/busybox', '--config.cmd', 'echo', '--config.cmd', 'pulled'], { timeoutMs: 60_000 });
}

/** A read-only OCI distribution server for one OCI layout; with `auth`, Basic credentials are required as a registry requires them. */
export function registryHandler(layout: string, auth?: { user: string; password: string }) {
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; mediaType: string; annotations?: Record<string, string> }> };
  const blob = (digest: string) => path.join(layout, 'blobs', ...digest.split(':'));
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const error = (status: number, code: string, message: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end(JSON.stringify({ errors: [{ code, message, detail: null }] }));
    };
    if (auth) {
      const expected = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`;
      if (req.headers.authorization !== expected) return error(401, 'UNAUTHORIZED', 'authentication required by the test registry', { 'WWW-Authenticate': 'Basic realm="test-registry"' });
    }
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/v2/') return error(200, 'OK', 'ok');
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!m || m[1] !== 'test/busybox') return error(404, 'NAME_UNKNOWN', 'repository name not known to registry');
    let digest = m[3]!;
    let type = 'application/octet-stream';
    if (m[2] === 'manifests') {
      const descriptor = index.manifests.find((d) => d.digest === digest || d.annotations?.['org.opencontainers.image.ref.name'] === digest);
      if (!descriptor) return error(404, 'MANIFEST_UNKNOWN', 'manifest unknown');
      digest = descriptor.digest;
      type = descriptor.mediaType;
    }
    if (!fs.existsSync(blob(digest))) return error(404, 'BLOB_UNKNOWN', 'blob unknown to registry');
    const body = fs.readFileSync(blob(digest));
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length, 'Docker-Content-Digest': digest });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}
