// Store path names as Nix reads them: `builtins.parseDrvName` splits a name at its first `-`
// followed by something other than a letter (`hello-2.12.1` → `hello`, `2.12.1`;
// `python3.11-setuptools-69.0` → `python3.11-setuptools`, `69.0`). Pure.

/** The store directory every path Nixery builds from lives in. */
const STORE_PATH = /^\/nix\/store\/([0-9a-df-np-sv-z]{32})-(.+)$/;

export interface DrvName {
  name: string;
  /** Empty when the name has no version, as with builtins.parseDrvName. */
  version: string;
}

/** builtins.parseDrvName: the first `-` not followed by an ASCII letter starts the version. */
export function parseDrvName(fullName: string): DrvName {
  for (let i = 0; i + 1 < fullName.length; i++) {
    if (fullName[i] === '-' && !/[A-Za-z]/.test(fullName[i + 1]!)) return { name: fullName.slice(0, i), version: fullName.slice(i + 1) };
  }
  return { name: fullName, version: '' };
}

/** The name part of a store path (`/nix/store/<hash>-<name>`); throws for anything else. */
export function storePathName(storePath: string): string {
  const match = STORE_PATH.exec(storePath);
  if (!match) throw new Error(`not a store path: ${JSON.stringify(storePath)}`);
  return match[2]!;
}
