// `nixery node-config`'s I/O: writes the files files.ts describes (atomically: a temporary file
// beside the target, then a rename), never one without its marker, re-reads the CA and the
// containerd configuration on an interval, answers readiness over HTTP, and on SIGTERM removes
// exactly the files it wrote.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type { Logger } from '../log/logger.ts';
import { checkConfigPath, desiredFiles, ownership, type DesiredFile, type NodeConfigInputs } from './files.ts';

export interface NodeConfigOptions extends Omit<NodeConfigInputs, 'ca'> {
  /** The CA bundle file (a ConfigMap volume the kubelet updates), with an https server. */
  caFile?: string;
  /** containerd's config.toml as this process sees it; absent file: not a containerd node. */
  containerdConfig?: string;
}

export interface SyncReport {
  ready: boolean;
  /** Why not ready, one sentence each. */
  problems: string[];
  written: string[];
}

async function readIfThere(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Writes `content` to `file` through a temporary file in the same directory and a rename. */
async function writeAtomically(file: string, content: string): Promise<void> {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.nixery-${randomBytes(4).toString('hex')}`);
  try {
    await fs.writeFile(temporary, content, { mode: 0o644, flag: 'wx' });
    await fs.rename(temporary, file);
  } catch (error) {
    await fs.rm(temporary, { force: true });
    throw error;
  }
}

export class NodeConfigSync {
  private readonly options: NodeConfigOptions;
  private readonly log: Logger;
  /** What this process wrote last, by path: exactly what it removes at the end. */
  private readonly written = new Map<string, string>();
  /** Directories this process made, removed when they are empty at the end. */
  private readonly madeDirs = new Set<string>();
  /** Problems already logged, so that a steady state logs once. */
  private logged = new Set<string>();
  private last: SyncReport = { ready: false, problems: ['not synchronised yet'], written: [] };

  constructor(options: NodeConfigOptions, log: Logger) {
    this.options = options;
    this.log = log;
  }

  get report(): SyncReport {
    return this.last;
  }

  /** One pass: read the CA and containerd's configuration, write what changed, judge readiness. */
  async sync(): Promise<SyncReport> {
    const problems: string[] = [];
    const { caFile, containerdConfig } = this.options;
    const ca = caFile ? await readIfThere(caFile) : undefined;
    if (caFile && !ca?.includes('-----BEGIN CERTIFICATE-----')) problems.push(`the CA bundle ${caFile} is not there yet (or holds no certificate): no file is written until it is`);
    const desired = desiredFiles({ ...this.options, ...(ca ? { ca } : {}) });
    const wanted = new Set(desired.map((f) => f.path));
    for (const file of desired) {
      const problem = await this.put(file);
      if (problem) problems.push(problem);
    }
    // A file this process wrote and no longer wants (the CA went, say): removed now.
    for (const file of [...this.written.keys()]) if (!wanted.has(file)) await this.remove(file);

    if (containerdConfig && this.options.containerdDir) {
      const text = await readIfThere(containerdConfig);
      if (text !== undefined) {
        const verdict = checkConfigPath(text, this.options.containerdHostDir ?? this.options.containerdDir);
        if (!verdict.ok) problems.push(verdict.message);
      }
    }
    for (const problem of problems) {
      if (!this.logged.has(problem)) this.log.warn(problem, { instance: this.options.instance, ready: false });
    }
    if (problems.length === 0 && this.logged.size > 0) this.log.info('node configured', { instance: this.options.instance, files: [...this.written.keys()] });
    this.logged = new Set(problems);
    this.last = { ready: problems.length === 0, problems, written: [...this.written.keys()] };
    return this.last;
  }

  /** Writes one file unless it is someone else's or already says this; returns a problem or nothing. */
  private async put(file: DesiredFile): Promise<string | undefined> {
    try {
      const existing = await readIfThere(file.path);
      const owner = ownership(existing, this.options.instance);
      if (owner === 'foreign') return `${file.path} exists and was not written by nixery node-config for ${this.options.instance}: left as it is, not overwritten`;
      if (existing === file.content) {
        this.written.set(file.path, file.content);
        return undefined;
      }
      const made = await fs.mkdir(path.dirname(file.path), { recursive: true, mode: 0o755 });
      if (made) this.madeDirs.add(path.dirname(file.path));
      await writeAtomically(file.path, file.content);
      this.written.set(file.path, file.content);
      this.log.info(existing === undefined ? 'wrote' : 'rewrote', { instance: this.options.instance, file: file.path });
      return undefined;
    } catch (error) {
      return `cannot write ${file.path}: ${(error as Error).message}`;
    }
  }

  /** Removes a file only while it still holds what this process wrote (another writer's stays). */
  private async remove(file: string): Promise<void> {
    const expected = this.written.get(file);
    this.written.delete(file);
    try {
      const existing = await readIfThere(file);
      if (existing === undefined) return;
      if (existing !== expected || ownership(existing, this.options.instance) !== 'ours') {
        this.log.warn('not removed: it changed since this process wrote it', { instance: this.options.instance, file });
        return;
      }
      await fs.rm(file);
      this.log.info('removed', { instance: this.options.instance, file });
      const dir = path.dirname(file);
      if (this.madeDirs.has(dir)) {
        await fs.rmdir(dir).then(
          () => this.madeDirs.delete(dir),
          () => {},
        );
      }
    } catch (error) {
      this.log.warn(`cannot remove ${file}: ${(error as Error).message}`, { instance: this.options.instance, file });
    }
  }

  /** At the end (SIGTERM): every file this process wrote, and directories it made once empty. */
  async removeAll(): Promise<void> {
    for (const file of [...this.written.keys()]) await this.remove(file);
  }
}

/** GET /readyz: 200 when the last pass found nothing wrong, else 503 with the reasons (JSON). */
export function startReadinessServer(sync: NodeConfigSync, host: string, port: number): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    if (request.url !== '/readyz' && request.url !== '/healthz') {
      response.writeHead(404).end();
      return;
    }
    // /healthz: the process answers; /readyz: the node is configured.
    const { ready, problems } = sync.report;
    const ok = request.url === '/healthz' || ready;
    response.writeHead(ok ? 200 : 503, { 'Content-Type': 'application/json' }).end(JSON.stringify({ ready, problems }) + '\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
