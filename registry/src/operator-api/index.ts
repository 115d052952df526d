// What the registry offers the operator, and nothing else (package.json exports only this): how
// to run its commands in a container, its environment, the build summary a Job leaves behind
// and the failures it names, its logger and configuration errors, removing a pushed tag, and
// small requests to a registry (a bounded exchange, a token bought with Basic credentials).
export {
  buildArgs,
  CA_MOUNT,
  containerEnv,
  forwardArgs,
  HTPASSWD_MOUNT,
  IDENTITY_TOKEN_MOUNT,
  nodeConfigArgs,
  POLICY_MOUNT,
  PULL_USER_MOUNT,
  PUSH_TOKEN_MOUNT,
  serveArgs,
  TLS_MOUNT,
  TOKEN_KEY_MOUNT,
  type BuildCommand,
  type NodeConfigCommand,
} from './commands.ts';
export { ConfigError, ENV, loadConfig, loadLogLevel, type RegistrySettings } from '../config/config.ts';
export { DEFAULT_CHANNEL_BASE_URL, type PackageSource } from '../config/package-source.ts';
export type { BuildSummary, FailureOutcome, PlatformSummary } from '../builder/summary.ts';
export { PLATFORMS, type Platform } from '../image/platform.ts';
export type { ImageConfigOverrides } from '../oci/image.ts';
export { createLogger, silentLogger, type Level, type Logger } from '../log/logger.ts';
export { deleteTag, tagUrl, TagDeleteError, type DeleteTagOptions, type TagReference } from '../push/delete-tag.ts';
export { buyRegistryToken, exchange, type ExchangeAnswer, type ExchangeOptions, type TokenPurchase } from '../push/registry-exchange.ts';
export type { LastGcRun, StorageStatusView, StorageUsage } from '../service/storage-status.ts';
export { parsePolicy, PolicyError, policySchema, type Policy, type PolicyRule } from '../auth/policy.ts';
