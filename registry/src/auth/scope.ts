// Scopes of the distribution token flow: what a client asks the token endpoint for
// (`repository:team-a/tool:pull,push`), what a token's `access` claim grants, and what a
// challenge names. Pure.

export const ACTIONS = ['pull', 'push', 'delete'] as const;
export type Action = (typeof ACTIONS)[number];

/** One repository and actions on it, as the token's `access` claim lists them. */
export interface Access {
  type: 'repository';
  name: string;
  actions: Action[];
}

const isAction = (value: string): value is Action => (ACTIONS as readonly string[]).includes(value);

/** Most scopes one token request may name: each costs a policy check (and maybe an evaluation). */
export const MAX_SCOPES = 32;

/**
 * The repository scopes among `values` (each one scope, or several separated by spaces as the
 * OAuth2 form sends them). Other resource types (`registry:catalog:*`) and unknown actions are
 * dropped; `*` stands for every action; one name's scopes are merged. Names are not validated
 * here: an invalid name is simply never granted anything.
 */
export function parseScopes(values: readonly string[]): Access[] {
  const byName = new Map<string, Set<Action>>();
  for (const scope of values.flatMap((v) => v.split(' ')).filter(Boolean)) {
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    if (first < 0 || last === first || scope.slice(0, first) !== 'repository') continue;
    const name = scope.slice(first + 1, last);
    const actions = byName.get(name) ?? new Set<Action>();
    for (const action of scope.slice(last + 1).split(',')) {
      if (action === '*') ACTIONS.forEach((a) => actions.add(a));
      else if (isAction(action)) actions.add(action);
    }
    byName.set(name, actions);
    if (byName.size > MAX_SCOPES) throw new ScopeError(`a token request may name at most ${MAX_SCOPES} repositories`);
  }
  return [...byName].map(([name, actions]) => ({ type: 'repository', name, actions: sortedActions(actions) }));
}

export class ScopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScopeError';
  }
}

/** As a challenge's `scope` parameter: space-separated, actions comma-separated. */
export function renderScope(access: readonly Access[]): string {
  return access.map((a) => `repository:${a.name}:${a.actions.join(',')}`).join(' ');
}

/** The actions in the spec's order, without duplicates. */
export function sortedActions(actions: Iterable<Action>): Action[] {
  const set = new Set(actions);
  return ACTIONS.filter((a) => set.has(a));
}

/** The actions an access list grants on `name`. */
export function actionsOn(access: readonly Access[], name: string): Set<Action> {
  return new Set(access.filter((a) => a.type === 'repository' && a.name === name).flatMap((a) => a.actions));
}
