// What the suites of this repository share (registry and operator unit tests, the Kubernetes test
// cluster's own tests, the end-to-end suites): bounded waits, running programs (each one tracked,
// so that nothing outlives the test file that started it), free ports, the checkout and its tools.
export { eventually } from './eventually.ts';
export { within } from './within.ts';
export { execFile, exited, run, runOk, spawn, stopChild, waitForOutput, type RunOptions, type RunResult } from './process.ts';
export { commandLine, descendantsOf, identify, isRunning, noProcessMatching, processesMatching, type ProcessIdentity } from './proc.ts';
export { freePort } from './ports.ts';
export { REPO_ROOT } from './repo.ts';
export { issueCertificate, makeCertificateAuthority, type CertificateAuthority, type IssueOptions, type ServingCertificate } from './certificates.ts';
export { HELM3, HELM4, KUBECTL, helm, kubectlBinary, requireTool } from './tools.ts';
