#!/usr/bin/env node
// `nixery build` runs in a child Node.js with a larger initial old generation; every other
// command runs here.
//
// V8 sizes the old generation's first limits from --initial-old-space-size, and that can only be
// given on the command line (not in NODE_OPTIONS, and v8.setFlagsFromString is too late). Left
// at its default, a build process packs with the old generation ~24 MB short of its limit and
// V8 marks it over and over: 68-85 full collections while packing 355 MB, each a pause for the
// event loop that feeds the deflate threads, against 15 with 128 MB (packing 7.2-7.6 s against
// 6.0-6.4 s in the cold-build benchmark; peak RSS of the build 171-182 MB against 202-210 MB).
// A server does not need it: its heap settles over its life, and it packs far less often.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const BUILD_HEAP_FLAG = '--initial-old-space-size=128';
const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT'];

const isBuild = process.argv[2] === 'build';
const hasHeapFlag = process.execArgv.some((arg) => arg.startsWith('--initial-old-space-size'));

if (isBuild && !hasHeapFlag) {
  const child = spawn(process.execPath, [...process.execArgv, BUILD_HEAP_FLAG, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  // A Job's pod is stopped with SIGTERM to this process (PID 1 in the container): the build must
  // get it, and this process must stay until the build has stopped.
  for (const signal of FORWARDED_SIGNALS) process.on(signal, () => child.kill(signal));
  child.on('error', (error) => {
    process.stderr.write(`nixery: cannot start the build process: ${error.message}\n`);
    process.exit(1);
  });
  // The shell convention for a death by signal; re-raising it would not end PID 1.
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
} else {
  await import('../dist/cli/main.js');
}
