// What an identity may do on a repository right now: the policy's rights (policy.ts, with the
// anonymous-pull switch), less pushing and deleting over on-demand names for everyone but the
// administrator (on-demand-names.ts) and the policy's overOnDemandNames rules. The token endpoint grants requested ∩ these; every request
// is checked against them (and a registry token's own access).
import { isValidRepositoryName } from '../image/name.ts';
import type { Identity } from './identity.ts';
import type { OnDemandNames } from './on-demand-names.ts';
import { rightsOf, rightsOverOnDemandNames, type CompiledPolicy } from './policy.ts';
import { sortedActions, type Access, type Action } from './scope.ts';

export interface AccessControlOptions {
  /** The policy in force (it may change while the registry runs); undefined: no policy file. */
  policy: () => CompiledPolicy | undefined;
  anonymousPull: boolean;
  /** Unset: no name counts as an on-demand name. */
  onDemandNames?: OnDemandNames;
}

export interface Rights {
  allowed: ReadonlySet<Action>;
  /** Why actions the policy grants were taken away, if they were. */
  refusal?: string;
}

export class AccessControl {
  private readonly options: AccessControlOptions;

  constructor(options: AccessControlOptions) {
    this.options = options;
  }

  get anonymousPull(): boolean {
    return this.options.anonymousPull;
  }

  /**
   * The rights of `identity` on `name`. The on-demand check (which may cost a Nix evaluation) runs
   * only when `wanted` includes an action it could take away and the policy grants it.
   */
  async rights(identity: Identity, name: string, wanted: readonly Action[]): Promise<Rights> {
    if (!isValidRepositoryName(name)) return { allowed: new Set() };
    const policy = this.options.policy();
    const allowed = rightsOf(identity, name, { policy, anonymousPull: this.options.anonymousPull });
    if (identity.kind === 'admin' || !this.options.onDemandNames) return { allowed };
    const delegated = rightsOverOnDemandNames(identity, name, policy);
    const writes = wanted.filter((a) => a !== 'pull' && allowed.has(a) && !delegated.has(a));
    if (writes.length === 0 || !(await this.options.onDemandNames.isOnDemand(name))) return { allowed };
    for (const action of ['push', 'delete'] as const) if (!delegated.has(action)) allowed.delete(action);
    return {
      allowed,
      refusal: `${name} is an on-demand name (a list of packages this registry builds): only the administrator may ${writes.join(' or ')} it`,
    };
  }

  /** What a token for `identity` may carry: each requested repository's actions that the identity has. */
  async grant(identity: Identity, requested: readonly Access[]): Promise<Access[]> {
    const granted: Access[] = [];
    for (const access of requested) {
      const { allowed } = await this.rights(identity, access.name, access.actions);
      const actions = sortedActions(access.actions.filter((a) => allowed.has(a)));
      if (actions.length) granted.push({ type: 'repository', name: access.name, actions });
    }
    return granted;
  }
}
