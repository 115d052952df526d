// The servers compared: our registry (`nixery serve`), Debian's docker-registry (the CNCF
// distribution registry) with filesystem storage, and nginx serving files. All on loopback,
// each with its own temporary directory and its default per-request logging, into a file.
import fs from 'node:fs';
import path from 'node:path';
import { dockerRegistryConfig } from '../../support/docker-registry.ts';
import { NIXERY_BIN } from './context.ts';
import { freePort } from '@nixery/test-support';
import { httpOk, mkdirp, run, startDaemon, type Daemon } from './exec.ts';

export interface Server {
  daemon: Daemon;
  host: string;
  url: string;
  dir: string;
  stop(): Promise<void>;
}

export async function startNixery(dir: string, env: Record<string, string>, name = 'nixery'): Promise<Server & { storagePath: string }> {
  const port = await freePort();
  const storagePath = mkdirp(path.join(dir, 'storage'));
  const daemon = await startDaemon(name, process.execPath, [NIXERY_BIN, 'serve', '--host', '127.0.0.1'], {
    env: { ...process.env, PORT: String(port), STORAGE_PATH: storagePath, NIX_TIMEOUT: '900', ...env },
    logFile: path.join(dir, `${name}.log`),
    ready: () => httpOk(`http://127.0.0.1:${port}/healthz`),
  });
  return { daemon, host: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}`, dir, storagePath, stop: () => daemon.stop() };
}

export async function startDockerRegistry(dir: string): Promise<Server> {
  const port = await freePort();
  const root = mkdirp(path.join(dir, 'data'));
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(config, dockerRegistryConfig(root, port));
  const daemon = await startDaemon('docker-registry', 'docker-registry', ['serve', config], {
    logFile: path.join(dir, 'docker-registry.log'),
    ready: () => httpOk(`http://127.0.0.1:${port}/v2/`),
  });
  return { daemon, host: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}`, dir, stop: () => daemon.stop() };
}

/** nginx serving the files of `blobDir` under /blobs/. */
export async function startNginx(dir: string, blobDir: string): Promise<Server> {
  const port = await freePort();
  const tmp = mkdirp(path.join(dir, 'tmp'));
  const config = path.join(dir, 'nginx.conf');
  fs.writeFileSync(
    config,
    `daemon off;
user root;
worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log ${dir}/access.log;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    location /blobs/ { alias ${blobDir}/; }
  }
}
`,
  );
  const daemon = await startDaemon('nginx', 'nginx', ['-c', config, '-e', `${dir}/error.log`], {
    logFile: path.join(dir, 'nginx.out'),
    ready: () => httpOk(`http://127.0.0.1:${port}/blobs/`),
  });
  return { daemon, host: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}`, dir, stop: () => daemon.stop() };
}

