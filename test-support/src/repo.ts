// Where this checkout is: suites find the built programs, the chart and the tools from here.
import path from 'node:path';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
