// The Nix settings the product depends on, read from nix/nix.conf: the one
// list that the registry passes on every Nix call, that scripts/setup.sh
// writes to /etc/nix/nix.conf and that the registry image uses as its own.
import fs from 'node:fs';
import path from 'node:path';

export class NixSettingsError extends Error {
  readonly file: string;
  constructor(file: string, message: string, options?: ErrorOptions) {
    super(`${file}: ${message}`, options);
    this.name = 'NixSettingsError';
    this.file = file;
  }
}

/** `name = value` lines in order; `#` starts a comment; an empty value is a setting too. */
export function parseNixSettings(text: string, file: string): [name: string, value: string][] {
  const settings: [string, string][] = [];
  const seen = new Set<string>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const m = /^([A-Za-z0-9][A-Za-z0-9-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new NixSettingsError(file, `line ${index + 1} is not 'name = value': ${raw}`);
    const [, name, value] = m as unknown as [string, string, string];
    if (seen.has(name)) throw new NixSettingsError(file, `line ${index + 1} sets ${name} a second time`);
    seen.add(name);
    settings.push([name, value]);
  });
  return settings;
}

const cache = new Map<string, readonly string[]>();

/** `--option name value` for every product setting in `<nixDir>/nix.conf`; read once per folder. */
export function productNixArgs(nixDir: string): readonly string[] {
  const file = path.join(nixDir, 'nix.conf');
  let args = cache.get(file);
  if (!args) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (cause) {
      throw new NixSettingsError(file, 'cannot read the product\'s Nix settings', { cause });
    }
    args = parseNixSettings(text, file).flatMap(([name, value]) => ['--option', name, value]);
    cache.set(file, args);
  }
  return args;
}
