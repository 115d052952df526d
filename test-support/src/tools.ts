// The Kubernetes clients the suites drive, at the versions scripts/setup.sh installs into .tools/.
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './repo.ts';

export const KUBECTL = path.join(REPO_ROOT, '.tools/kubectl/kubectl');
export const HELM3 = path.join(REPO_ROOT, '.tools/helm3/helm');
export const HELM4 = path.join(REPO_ROOT, '.tools/helm4/helm');
const SETUP_HINT = 'run `bash scripts/setup.sh` (it installs kubectl 1.33 and helm 3 and 4 into .tools/)';

/** A tool the tests need; a missing one fails the test with the way to install it. */
export function requireTool(file: string, hint = SETUP_HINT): string {
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: ${hint}`);
  return file;
}

export function kubectlBinary(): string {
  return requireTool(KUBECTL);
}

export function helm(version: 3 | 4): string {
  return requireTool(version === 3 ? HELM3 : HELM4);
}
