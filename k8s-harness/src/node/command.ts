// The argv a container runs, by Kubernetes' rules for command/args against the image's
// ENTRYPOINT/CMD, with `$(VAR)` references expanded from the container's environment.

export interface ImageProcess {
  entrypoint: string[];
  cmd: string[];
}

/**
 * - neither command nor args: ENTRYPOINT + CMD
 * - command only: command (the image's CMD is dropped too)
 * - args only: ENTRYPOINT + args
 * - both: command + args
 * An empty list counts as unset, as in the API.
 */
export function containerArgv(image: ImageProcess, container: { command?: string[]; args?: string[] }, env: Record<string, string>): string[] {
  const command = container.command?.length ? container.command.map((s) => expand(s, env)) : undefined;
  const args = container.args?.length ? container.args.map((s) => expand(s, env)) : undefined;
  if (command) return [...command, ...(args ?? [])];
  return [...image.entrypoint, ...(args ?? image.cmd)];
}

/**
 * Kubernetes' `$(VAR)` syntax: a defined variable is replaced, an undefined one is left as written,
 * and `$$` is a literal `$` (so `$$(VAR)` yields `$(VAR)`).
 */
export function expand(input: string, env: Record<string, string>): string {
  let out = '';
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c !== '$' || i + 1 >= input.length) {
      out += c;
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        out += input.slice(i);
        break;
      }
      const name = input.slice(i + 2, close);
      out += Object.hasOwn(env, name) ? env[name] : `$(${name})`;
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}
