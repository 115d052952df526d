// The access policy (NIXERY_AUTH_POLICY_FILE): which identities may pull, push or delete which
// repositories. Pure: parsing and validating the JSON, matching repository patterns, and the
// rights of an identity on a repository. On-demand names are access-control.ts's concern.
//
//   { "rules": [ { "repositories": ["team-a/**", "tools/*"], "users": ["alice"],
//                  "serviceAccounts": ["team-a/builder", "team-a/*"], "namespaces": ["team-a"],
//                  "authenticated": false, "actions": ["pull", "push", "delete"] },
//                { "repositories": ["hello"], "serviceAccounts": ["nixery/nixery-build-hello"],
//                  "actions": ["pull", "push", "delete"], "overOnDemandNames": true } ] }
import { z } from 'zod';
import { globMatches } from '../image/package-policy.ts';
import type { Identity } from './identity.ts';
import { ACTIONS, type Action } from './scope.ts';

/** A path segment of letters, digits, `.`, `_`, `-` and `*` (any characters within the segment), or `**` alone (any number of segments). */
const REPOSITORY_PATTERN = /^(?:\*\*|[A-Za-z0-9._*-]+)(?:\/(?:\*\*|[A-Za-z0-9._*-]+))*$/;
/** Kubernetes names (DNS labels and subdomains) with `*` globs. */
const KUBERNETES_NAME_GLOB = /^[a-z0-9*]([a-z0-9.*-]{0,251}[a-z0-9*])?$/;
const MAX_ENTRIES = 1024;

const list = <T extends z.ZodType>(item: T) => z.array(item).max(MAX_ENTRIES);

const ruleSchema = z.strictObject({
  repositories: list(
    z
      .string()
      .max(255)
      .regex(REPOSITORY_PATTERN, 'expected a repository pattern: path segments of letters, digits, . _ - with * (within a segment) or ** (a whole segment: any number of segments)')
      .refine((p) => !/\*\*\*/.test(p) && p.split('/').every((s) => s === '**' || !s.includes('**')), '** must be a whole path segment'),
  ).min(1, 'a rule names at least one repository pattern'),
  users: list(z.string().min(1).max(255).regex(/^[^:\s]+$/, 'expected an htpasswd user name')).optional(),
  serviceAccounts: list(
    z.string().refine((s) => {
      const [namespace, name, ...rest] = s.split('/');
      return rest.length === 0 && namespace !== undefined && name !== undefined && KUBERNETES_NAME_GLOB.test(namespace) && KUBERNETES_NAME_GLOB.test(name);
    }, 'expected namespace/name, with * as a glob'),
  ).optional(),
  namespaces: list(z.string().regex(KUBERNETES_NAME_GLOB, 'expected a namespace name, with * as a glob')).optional(),
  authenticated: z.boolean().optional(),
  actions: z.array(z.enum(ACTIONS, { error: 'expected pull, push or delete' })).min(1, 'a rule grants at least one action'),
  // An administrator's deliberate delegation of exact names that are also package lists (the
  // operator's NixImage grants): a glob could hand out `shell/*` by accident, so none is allowed.
  overOnDemandNames: z.boolean().optional(),
}).refine((rule) => !rule.overOnDemandNames || rule.repositories.every((p) => !p.includes('*')), {
  message: 'overOnDemandNames takes exact repository names only (no * or **)',
  path: ['repositories'],
});

export const policySchema = z.strictObject({ rules: list(ruleSchema) });

export type Policy = z.infer<typeof policySchema>;
export type PolicyRule = z.infer<typeof ruleSchema>;

/** A policy ready for matching (its patterns split once). */
export interface CompiledPolicy {
  rules: readonly CompiledRule[];
}

interface CompiledRule {
  repositories: readonly string[][];
  users: ReadonlySet<string>;
  serviceAccounts: readonly { namespace: string; name: string }[];
  namespaces: readonly string[];
  authenticated: boolean;
  actions: readonly Action[];
  overOnDemandNames: boolean;
}

export class PolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyError';
  }
}

/** Parses and validates a policy document; PolicyError names the first problem and where it is. */
export function parsePolicy(text: string): CompiledPolicy {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new PolicyError(`not JSON: ${(error as Error).message}`);
  }
  const result = policySchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new PolicyError(`${issue.path.length ? issue.path.join('.') : 'the document'}: ${issue.message}`);
  }
  return compilePolicy(result.data);
}

export function compilePolicy(policy: Policy): CompiledPolicy {
  return {
    rules: policy.rules.map((rule) => ({
      repositories: rule.repositories.map((p) => p.split('/')),
      users: new Set(rule.users ?? []),
      serviceAccounts: (rule.serviceAccounts ?? []).map((s) => {
        const [namespace, name] = s.split('/') as [string, string];
        return { namespace, name };
      }),
      namespaces: rule.namespaces ?? [],
      authenticated: rule.authenticated ?? false,
      actions: rule.actions,
      overOnDemandNames: rule.overOnDemandNames ?? false,
    })),
  };
}

/**
 * Whether a repository pattern matches a name: `*` is any characters within one path segment,
 * `**` (a whole segment) any number of segments, none included (`team-a/**` matches `team-a`
 * and everything under it). Case-sensitive. O(segments²) without backtracking.
 */
export function repositoryMatches(pattern: string | readonly string[], name: string): boolean {
  const globs = typeof pattern === 'string' ? pattern.split('/') : pattern;
  const segments = name.split('/');
  // reached[k]: the first k globs can match the segments consumed so far.
  let reached = new Array<boolean>(globs.length + 1).fill(false);
  reached[0] = true;
  const closeOverDoubleStars = (states: boolean[]) => {
    for (let k = 0; k < globs.length; k++) if (states[k] && globs[k] === '**') states[k + 1] = true;
  };
  closeOverDoubleStars(reached);
  for (const segment of segments) {
    const next = new Array<boolean>(globs.length + 1).fill(false);
    for (let k = 0; k < globs.length; k++) {
      if (!reached[k]) continue;
      if (globs[k] === '**') next[k] = true;
      else if (globMatches(globs[k]!, segment, false)) next[k + 1] = true;
    }
    closeOverDoubleStars(next);
    reached = next;
  }
  return reached[globs.length]!;
}

export interface RightsOptions {
  /** Unset: no policy file. */
  policy: CompiledPolicy | undefined;
  /** NIXERY_ANONYMOUS_PULL. */
  anonymousPull: boolean;
}

/**
 * The actions `identity` may take on `repository`. The administrator may do everything; the
 * anonymous client may pull when anonymous pulls are on, whatever the policy says. Without a
 * policy every other identity pulls everything and pushes nothing; with one, it gets the union of
 * the rules that name it and match the repository — and never less than the anonymous client,
 * who it could always pretend to be.
 */
export function rightsOf(identity: Identity, repository: string, options: RightsOptions): Set<Action> {
  if (identity.kind === 'admin') return new Set(ACTIONS);
  const rights = new Set<Action>(options.anonymousPull ? ['pull'] : []);
  if (identity.kind === 'anonymous') return rights;
  if (!options.policy) return new Set(['pull']);
  for (const rule of rulesFor(options.policy, identity, repository)) for (const action of rule.actions) rights.add(action);
  return rights;
}

/**
 * The actions that rules marked `overOnDemandNames` give `identity` on `repository`: these stand
 * even when the name is an on-demand name (access-control.ts). The administrator needs none.
 */
export function rightsOverOnDemandNames(identity: Identity, repository: string, policy: CompiledPolicy | undefined): Set<Action> {
  const rights = new Set<Action>();
  if (identity.kind === 'admin' || identity.kind === 'anonymous' || !policy) return rights;
  for (const rule of rulesFor(policy, identity, repository)) {
    if (rule.overOnDemandNames) for (const action of rule.actions) rights.add(action);
  }
  return rights;
}

/** The rules that name `identity` and match `repository`. */
function rulesFor(policy: CompiledPolicy, identity: Identity & { kind: 'user' | 'serviceAccount' }, repository: string): CompiledRule[] {
  return policy.rules.filter((rule) => ruleNames(rule, identity) && rule.repositories.some((p) => repositoryMatches(p, repository)));
}

/** Whether a rule's subjects include the identity; a rule without subjects names nobody. */
function ruleNames(rule: CompiledRule, identity: Identity & { kind: 'user' | 'serviceAccount' }): boolean {
  if (rule.authenticated) return true;
  if (identity.kind === 'user') return rule.users.has(identity.name);
  if (rule.namespaces.some((n) => globMatches(n, identity.namespace, false))) return true;
  return rule.serviceAccounts.some((s) => globMatches(s.namespace, identity.namespace, false) && globMatches(s.name, identity.name, false));
}
