// HTTP load with wrk (bounded by duration, loopback only); a Lua `done` hook prints the summary as JSON.
import fs from 'node:fs';
import path from 'node:path';
import { runOk } from './exec.ts';

export interface WrkResult {
  requests: number;
  seconds: number;
  bytes: number;
  errors: number;
  non2xx: number;
  rps: number;
  bytesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

const SCRIPT = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;

export async function wrk(url: string, options: { connections: number; seconds: number; headers?: Record<string, string>; workDir: string; timeoutSeconds?: number }): Promise<WrkResult> {
  if (!/^http:\/\/127\.\d+\.\d+\.\d+:\d+\//.test(url)) throw new Error(`wrk only targets loopback addresses, not ${url}`);
  const script = path.join(options.workDir, 'wrk-summary.lua');
  if (!fs.existsSync(script)) fs.writeFileSync(script, SCRIPT);
  const threads = Math.min(2, options.connections);
  const args = ['-t', String(threads), '-c', String(options.connections), '-d', `${options.seconds}s`, '--timeout', `${options.timeoutSeconds ?? 10}s`, '-s', script];
  for (const [k, v] of Object.entries(options.headers ?? {})) args.push('-H', `${k}: ${v}`);
  args.push(url);
  const ran = await runOk('wrk', args, { timeoutMs: (options.seconds + 60) * 1000 });
  const line = ran.stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk printed no summary:\n${ran.stdout}\n${ran.stderr}`);
  const s = JSON.parse(line.slice('WRKJSON '.length)) as Record<string, number>;
  const seconds = s.duration_us! / 1e6;
  return {
    requests: s.requests!,
    seconds,
    bytes: s.bytes!,
    errors: s.connect! + s.read! + s.write! + s.timeout!,
    non2xx: s.status!,
    rps: s.requests! / seconds,
    bytesPerSecond: s.bytes! / seconds,
    p50Ms: s.p50_us! / 1000,
    p99Ms: s.p99_us! / 1000,
  };
}
