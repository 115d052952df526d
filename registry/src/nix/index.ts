// The registry's view of Nix: a package list in, a realised runtime closure out.
export {
  evaluateImage,
  realiseImage,
  type EvaluatedImage,
  type EvaluatedPackage,
  type ImageRequest,
  type NixOptions,
  type RealisedImage,
  type ResolvedPackage,
  type StorePath,
} from './realise.ts';
export { defaultNixDir } from './nix-dir.ts';
export { isCommitHash, resolveGitRef, type GitRefOptions, type GitSpec } from './git-ref.ts';
export {
  GitRefNotFoundError,
  NixBuildError,
  NixEvaluationError,
  NixOutputError,
  NixSpawnError,
  NixTimeoutError,
  PackagesNotFoundError,
  type NixPhase,
} from './errors.ts';
