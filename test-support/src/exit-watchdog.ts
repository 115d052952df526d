// Loaded into every test file's process (`node --import ./test-support/src/exit-watchdog.ts --test …`).
//
// Why not `--test-force-exit`: with it, Node 24's runner sometimes loses a file's last results (a
// whole suite missing from the counts, found when 5 of 12 runs of 30 files counted 805–810 of 810
// tests), so a failure could pass unseen. Without it, a file whose tests left a handle open (a
// server, a child process, a timer) never exits and the whole run waits forever: its
// `--test-timeout` bounds tests, not the process. This watchdog bounds that wait instead and names
// what is still open, and the file fails: a leak is a bug of the test that left it.

import { after } from 'node:test';

/** How long a file's process may live on after its tests ended (and its top-level after hooks began). */
const LINGER_LIMIT_MS = Number(process.env.NIXERY_TEST_LINGER_LIMIT_MS) || 120_000;

/** Whether this process runs one test file for the runner (not the runner itself). */
function isTestFileProcess(): boolean {
  return process.env.NODE_TEST_CONTEXT?.startsWith('child') ?? false;
}

if (isTestFileProcess()) {
  // Registered before the file's own code, so it runs first among the root's after hooks: the
  // limit includes their clean-up, which is why it is generous.
  after(() => {
    const timer = setTimeout(() => {
      process.stderr.write(
        `test file ${process.argv[1] ?? '?'} is still running ${LINGER_LIMIT_MS / 1000} s after its tests ended; open: ${process.getActiveResourcesInfo().join(', ')}\n`,
      );
      process.exit(1);
    }, LINGER_LIMIT_MS);
    // Never what keeps the process alive itself.
    timer.unref();
  });
}
