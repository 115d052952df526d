// Clients that hold connections without keeping up their end: 300 that ask for a large blob and
// never read a byte, 100 that trickle their headers. With the limits set to 2 s, the registry lets
// go of every one of them, its memory and open files come back to what they were before, and a
// normal pull in the middle of it succeeds. A manifest that waits on a build keeps its connection
// past every one of those limits, until its answer (here NIX_TIMEOUT's 503).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { eventually, within } from '@nixery/test-support';
import { metricValue } from '../support/metrics.ts';
import { pullAndUnpack, runInRoot } from '../support/oci-client.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const TOKEN = 'e2e-push-token-0123456789';
const LIMIT_SECONDS = 2;
const NIX_TIMEOUT_SECONDS = 5;
const STALLED_DOWNLOADS = 300;
const TRICKLED_HEADERS = 100;
/** Larger than loopback socket buffers take (a few MiB a connection): the registry's writes stall. */
const BLOB_BYTES = 48 * 1024 * 1024;
/**
 * A stalled download is cut the send-stall timeout after the kernel last took a byte of it, and
 * on loopback the kernel takes ~3 MiB a connection, about 1 GB for all of them, which takes the
 * registry a few seconds on two cores: the bound for all of them is that, the timeout, and margin.
 */
const RELEASED_WITHIN_MS = 15_000;
/**
 * What a limit may be late by: the registry checks four times a timeout; the rest is this machine's
 * slack, which is large while the registry (and this test) push 1 GB into 300 sockets on two cores
 * shared with another test file (a fresh-root CI run saw 4.3 s). Without the limit a trickle is
 * never cut, so any bound well below the test's own proves the point.
 */
const MARGIN_MS = 6_000;

function rssBytes(pid: number): number {
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib) * 1024;
}

function openFiles(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

const MiB = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MiB`;

describe('registry: timeouts and connection limits', () => {
  let registry: RegistryProcess;
  let work: string;
  let digest: string;
  const sockets: net.Socket[] = [];

  before(async () => {
    registry = await startRegistry({
      env: {
        NIXERY_PUSH_TOKEN: TOKEN,
        NIXERY_HEADERS_TIMEOUT: String(LIMIT_SECONDS),
        NIXERY_RECEIVE_TIMEOUT: String(LIMIT_SECONDS),
        NIXERY_SEND_STALL_TIMEOUT: String(LIMIT_SECONDS),
        NIXERY_KEEPALIVE_TIMEOUT: String(LIMIT_SECONDS),
        NIX_TIMEOUT: String(NIX_TIMEOUT_SECONDS),
      },
    });
    work = await tempDir('nixery-e2e-limits-');
    const blob = randomBytes(BLOB_BYTES);
    digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const pushed = await fetch(`${registry.url}/v2/big/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TOKEN}` },
      body: blob,
    });
    assert.equal(pushed.status, 201);
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await registry?.stop();
    await fs.promises.rm(work, { recursive: true, force: true });
    if (registry) await fs.promises.rm(registry.storagePath, { recursive: true, force: true });
  });

  it('releases 300 downloads that never read and 100 trickled headers, back to idle memory and files, while a pull succeeds', async () => {
    // Idle, after the work the test does meanwhile has been done once: a build, a pull, a blob download.
    const warm = await pullAndUnpack(registry.host, 'shell/hello:latest', path.join(work, 'warm'));
    assert.equal((await runInRoot(warm, ['/bin/hello'])).trim(), 'Hello, world!');
    assert.equal(Buffer.from(await (await fetch(`${registry.url}/v2/big/blobs/${digest}`)).arrayBuffer()).length, BLOB_BYTES);
    const pid = registry.child.pid!;
    const idle = { rss: rssBytes(pid), files: openFiles(pid) };

    const started = performance.now();
    for (let i = 0; i < STALLED_DOWNLOADS; i++) {
      const socket = net.connect(registry.port, '127.0.0.1');
      sockets.push(socket);
      socket.on('error', () => {});
      socket.pause();
      socket.write(`GET /v2/big/blobs/${digest} HTTP/1.1\r\nHost: ${registry.host}\r\n\r\n`);
    }
    const trickled = Array.from({ length: TRICKLED_HEADERS }, () => {
      const socket = net.connect(registry.port, '127.0.0.1');
      sockets.push(socket);
      socket.on('error', () => {});
      const opened = performance.now();
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
      socket.write(`GET /v2/ HTTP/1.1\r\nHost: ${registry.host}\r\n`);
      const trickle = setInterval(() => socket.write('X-Slow: yes\r\n'), 300);
      return new Promise<{ ms: number; answer: string }>((resolve) =>
        socket.once('close', () => {
          clearInterval(trickle);
          resolve({ ms: performance.now() - opened, answer });
        }),
      );
    });

    // Meanwhile a normal pull, end to end.
    const rootfs = await pullAndUnpack(registry.host, 'shell/hello:latest', path.join(work, 'during'));
    assert.equal((await runInRoot(rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
    const peak = { rss: rssBytes(pid), files: openFiles(pid) };

    for (const { ms, answer } of await within(LIMIT_SECONDS * 1000 + MARGIN_MS + 5_000, 'the trickled headers to be cut', Promise.all(trickled))) {
      assert.match(answer, /^HTTP\/1\.1 408 /, 'a trickle of headers is answered 408');
      assert.ok(ms <= LIMIT_SECONDS * 1000 + MARGIN_MS, `a trickle of headers was cut after ${Math.round(ms)} ms, later than ${LIMIT_SECONDS} s and margin`);
    }
    const released = await eventually(
      'the stalled downloads to be released',
      async () => ((await metricValue(registry.url, 'nixery_http_connections_closed_total', { reason: 'send_stall' })) >= STALLED_DOWNLOADS ? performance.now() : undefined),
      RELEASED_WITHIN_MS,
      100,
    );
    assert.ok(released - started <= RELEASED_WITHIN_MS, `released ${Math.round(released - started)} ms after the attack started`);
    assert.equal(await metricValue(registry.url, 'nixery_http_connections_closed_total', { reason: 'send_stall' }), STALLED_DOWNLOADS, 'each cut once');
    assert.ok(peak.files >= idle.files + STALLED_DOWNLOADS, `the stalled downloads held sockets and files (${peak.files} open, ${idle.files} idle)`);

    // The registry let go of them: a socket and a blob file each, 2 MiB of buffers each.
    const settled = await eventually(
      'open files and memory back near idle',
      () => {
        const now = { rss: rssBytes(pid), files: openFiles(pid) };
        return now.files <= idle.files + 8 && now.rss <= idle.rss + 64 * 1024 * 1024 ? now : undefined;
      },
      5_000,
      200,
    ).catch((error: Error) => {
      throw new Error(
        `${error.message}: ${openFiles(pid)} files open (${idle.files} idle, ${peak.files} at the peak), ` +
          `RSS ${MiB(rssBytes(pid))} (${MiB(idle.rss)} idle, ${MiB(peak.rss)} at the peak)`,
      );
    });
    assert.ok(settled.rss < peak.rss);
  });

  it('keeps a manifest request that waits on a build past every limit, and answers it when NIX_TIMEOUT ends the build', async () => {
    const started = performance.now();
    // `slow` sleeps for 30 s in its builder.
    const response = await within(NIX_TIMEOUT_SECONDS * 1000 + 20_000, 'the answer', fetch(`${registry.url}/v2/slow/manifests/latest`));
    const ms = performance.now() - started;
    assert.equal(response.status, 503);
    const body = (await response.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]!.code, 'UNAVAILABLE');
    assert.match(body.errors[0]!.message, new RegExp(`within ${NIX_TIMEOUT_SECONDS} s`));
    assert.ok(ms >= NIX_TIMEOUT_SECONDS * 1000, `answered after ${Math.round(ms)} ms, when Nix was stopped, longer than any connection limit (${LIMIT_SECONDS} s)`);
  });
});
