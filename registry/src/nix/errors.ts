// Every way realising an image can fail, as types the HTTP layer, the CLI and
// metrics can tell apart. Each carries what a user needs to act on it.

/** `collect`: a collection of the registry's Nix store (nix/store-gc.ts), not a build. */
export type NixPhase = 'evaluate' | 'realise' | 'graph' | 'collect';

/** Requested names that address no derivation in the package set. */
export class PackagesNotFoundError extends Error {
  readonly code = 'PACKAGES_NOT_FOUND';
  /** Every name that was not found, sorted. */
  readonly packages: string[];
  /** The subset of `packages` that exists but failed to evaluate (broken, unfree, removed alias). */
  readonly failedToEvaluate: string[];
  constructor(packages: string[], failedToEvaluate: string[] = []) {
    super(`package${packages.length === 1 ? '' : 's'} not found: ${packages.join(', ')}`);
    this.name = 'PackagesNotFoundError';
    this.packages = packages;
    this.failedToEvaluate = failedToEvaluate;
  }
}

/** Nix could not build some of the requested packages. */
export class NixBuildError extends Error {
  readonly code = 'NIX_BUILD_FAILED';
  /** The requested packages (request names, sorted) that did not get built, whether their own build or a dependency's failed. */
  readonly packages: string[];
  /** The derivations Nix reported as failed, as seen in its output. */
  readonly failedDerivations: string[];
  /** The last lines of Nix's output. */
  readonly logTail: string;
  constructor(packages: string[], logTail: string, failedDerivations: string[] = []) {
    super(`Nix failed to build ${packages.length ? packages.join(', ') : 'the image'}`);
    this.name = 'NixBuildError';
    this.packages = packages;
    this.logTail = logTail;
    this.failedDerivations = failedDerivations;
  }
}

/** The package source itself could not be loaded or evaluated. */
export class NixEvaluationError extends Error {
  readonly code: string = 'NIX_EVALUATION_FAILED';
  readonly logTail: string;
  constructor(message: string, logTail: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'NixEvaluationError';
    this.logTail = logTail;
  }
}

/** A git source has no branch or tag named like the image tag; a kind of evaluation failure. */
export class GitRefNotFoundError extends NixEvaluationError {
  override readonly code: string = 'GIT_REF_NOT_FOUND';
  readonly url: string;
  readonly ref: string;
  constructor(url: string, ref: string, logTail = '') {
    super(`no branch or tag '${ref}' in ${url}`, logTail);
    this.name = 'GitRefNotFoundError';
    this.url = url;
    this.ref = ref;
  }
}

/**
 * The image tag names a commit no trusted branch or tag reaches (e.g. one only a pull request's
 * ref has), or a ref that is not trusted: reported like a ref that does not exist, never built.
 */
export class GitRefUntrustedError extends GitRefNotFoundError {
  readonly trustedRefs: readonly string[];
  constructor(url: string, ref: string, trustedRefs: readonly string[], kind: 'commit' | 'ref') {
    super(url, ref);
    this.name = 'GitRefUntrustedError';
    this.trustedRefs = trustedRefs;
    this.message =
      kind === 'commit'
        ? `commit ${ref} is not reachable from a trusted branch or tag of ${url} (trusted refs: ${trustedRefs.join(', ')})`
        : `${ref} of ${url} is not a trusted branch or tag (trusted refs: ${trustedRefs.join(', ')})`;
  }
}

/** Nix ran longer than NIX_TIMEOUT; it has been stopped. */
export class NixTimeoutError extends Error {
  readonly code = 'NIX_TIMEOUT';
  readonly seconds: number;
  readonly phase: NixPhase;
  readonly logTail: string;
  constructor(seconds: number, phase: NixPhase, logTail = '') {
    super(`Nix did not finish ${phase} within ${seconds} s`);
    this.name = 'NixTimeoutError';
    this.seconds = seconds;
    this.phase = phase;
    this.logTail = logTail;
  }
}

/** A Nix (or git) program could not be started at all, e.g. it is not installed. */
export class NixSpawnError extends Error {
  readonly code = 'NIX_SPAWN_FAILED';
  readonly command: string;
  constructor(command: string, options?: ErrorOptions) {
    super(`could not run ${command}: ${(options?.cause as Error | undefined)?.message ?? 'unknown error'}`, options);
    this.name = 'NixSpawnError';
    this.command = command;
  }
}

/** Nix printed something this module does not understand. */
export class NixOutputError extends Error {
  readonly code = 'NIX_OUTPUT_INVALID';
  readonly command: string;
  constructor(command: string, message: string, options?: ErrorOptions) {
    super(`unexpected output from ${command}: ${message}`, options);
    this.name = 'NixOutputError';
    this.command = command;
  }
}
