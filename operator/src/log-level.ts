// NIXERY_LOG_LEVEL as the registry reads it: the same variable, the same levels, empty meaning
// unset. A mistyped level stops start-up: the logger would otherwise print everything.
import { ConfigError, ENV, type Level } from '@nixery/registry/operator-api';

// A record, not a list, so that a level added to the logger fails to compile until it is here.
const LEVELS: Record<Level, true> = { debug: true, info: true, warn: true, error: true };

/** Throws ConfigError naming the variable when it holds no level. */
export function logLevelFrom(env: NodeJS.ProcessEnv = process.env): Level {
  const raw = env[ENV.logLevel];
  if (raw === undefined || raw.trim() === '') return 'info';
  if (Object.hasOwn(LEVELS, raw)) return raw as Level;
  const names = Object.keys(LEVELS);
  throw new ConfigError(ENV.logLevel, `expected ${names.slice(0, -1).join(', ')} or ${names.at(-1)} (got ${JSON.stringify(raw)})`);
}
