// The benchmarks' smoke run (small sizes, one iteration): every figure is produced. No timing
// is ever asserted here; the numbers of a smoke run mean nothing.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, stopChild } from '@nixery/test-support';
import type { Figure } from './lib/figures.ts';

const RUN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'run.ts');

const EXPECTED = [
  'pack.layer_throughput',
  'pack.image_throughput',
  'pack.compressed_size',
  'pack.image_rss',
  'pack.zstd_image_throughput',
  'pack.zstd_compressed_size',
  'pack.zstd_rss',
  'pack.containerd_unpack',
  'pack.big_layer_rss',
  'pack.big_path_throughput',
  'pack.big_path_rss',
  'build.total',
  'build.evaluate_realise',
  'build.evaluate',
  'build.realise',
  'build.graph',
  'build.layering',
  'build.packing',
  'build.other',
  'build.upload',
  'build.rebuild_fraction',
  'build.rebuild_uploaded_bytes',
  'serve.manifest_rps_c16',
  'serve.manifest_p99_c16',
  'serve.manifest_rps_c64',
  'serve.manifest_p99_c64',
  'serve.manifest_rps_big_source',
  'serve.blob_vs_nginx_c1',
  'serve.blob_vs_registry_c1',
  'serve.blob_vs_nginx_c8',
  'serve.blob_vs_registry_c8',
  'concurrency.pull_errors',
  'concurrency.pull_time',
  'concurrency.pulls_vs_registry',
  'concurrency.cold_builds',
  'pulls.manifest_p50_building',
  'pulls.manifest_p99_building',
  'pulls.blob_p50_building',
  'pulls.blob_p99_building',
  'pulls.containerd_pull',
  'operator.jobs_time',
  'operator.reconciles_per_second',
  'operator.requests_per_image',
  'operator.resync_writes',
  'storage.gc_pass_per_10k_objects',
  'storage.manifest_p99_large_store',
  'storage.manifest_p99_during_gc',
];

describe('benchmarks (smoke)', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-bench-smoke-'));
  after(() => fs.rmSync(out, { recursive: true, force: true }));

  it('produces every figure with its baseline, as JSON and Markdown', async () => {
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [RUN, '--smoke', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let output = '';
      child.stdout.on('data', (c: Buffer) => (output += c.toString()));
      child.stderr.on('data', (c: Buffer) => (output += c.toString()));
      const timer = setTimeout(() => void stopChild(child).catch(reject), 280_000);
      child.on('error', reject);
      child.on('close', (c) => {
        clearTimeout(timer);
        resolve({ code: c, output });
      });
    });
    const report = JSON.parse(fs.readFileSync(path.join(out, 'smoke.json'), 'utf8')) as { figures: Figure[]; errors: { suite: string; message: string }[] };
    assert.deepEqual(report.errors, [], output.slice(-6000));
    assert.equal(code, 0, output.slice(-6000));
    const byId = new Map(report.figures.map((f) => [f.id, f]));
    assert.deepEqual(EXPECTED.filter((id) => !byId.has(id)), [], 'every figure is in the report');
    for (const id of EXPECTED) {
      const f = byId.get(id)!;
      assert.equal(typeof f.ours, 'number', `${id} has a value`);
      if (f.baselineLabel && f.baseline === null) continue;
      if (f.ratio !== null) assert.ok(Number.isFinite(f.ratio), `${id} has a finite ratio`);
    }
    const markdown = fs.readFileSync(path.join(out, 'smoke.md'), 'utf8');
    for (const f of report.figures) assert.ok(markdown.includes(f.label), `${f.id} is in the Markdown table`);
  });
});
