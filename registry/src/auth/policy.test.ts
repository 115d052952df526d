import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN, ANONYMOUS, type Identity } from './identity.ts';
import { parsePolicy, PolicyError, repositoryMatches, rightsOf, type CompiledPolicy } from './policy.ts';

const alice: Identity = { kind: 'user', name: 'alice' };
const bob: Identity = { kind: 'user', name: 'bob' };
const builder: Identity = { kind: 'serviceAccount', namespace: 'team-a', name: 'builder' };
const other: Identity = { kind: 'serviceAccount', namespace: 'team-b', name: 'builder' };

const rights = (identity: Identity, name: string, policy: CompiledPolicy | undefined, anonymousPull = true) =>
  [...rightsOf(identity, name, { policy, anonymousPull })].sort();

describe('repository patterns', () => {
  it('* matches any characters within one path segment', () => {
    assert.ok(repositoryMatches('tools/*', 'tools/jq'));
    assert.ok(repositoryMatches('tools/*', 'tools/x-1.2_3'));
    assert.ok(repositoryMatches('team-*/app', 'team-a/app'));
    assert.ok(!repositoryMatches('tools/*', 'tools/jq/extra'), 'not across a slash');
    assert.ok(!repositoryMatches('tools/*', 'tools'), 'one segment must be there');
    assert.ok(!repositoryMatches('team-*/app', 'team/app'));
  });

  it('** matches any number of segments, none included', () => {
    assert.ok(repositoryMatches('team-a/**', 'team-a/tool'));
    assert.ok(repositoryMatches('team-a/**', 'team-a/x/y/z'));
    assert.ok(repositoryMatches('team-a/**', 'team-a'));
    assert.ok(repositoryMatches('**', 'anything/at/all'));
    assert.ok(repositoryMatches('a/**/b', 'a/b'));
    assert.ok(repositoryMatches('a/**/b', 'a/x/y/b'));
    assert.ok(!repositoryMatches('a/**/b', 'a/x/y/c'));
    assert.ok(!repositoryMatches('team-a/**', 'team-ab/tool'));
  });

  it('literal patterns match exactly, case-sensitively', () => {
    assert.ok(repositoryMatches('shell', 'shell'));
    assert.ok(!repositoryMatches('shell', 'shell/git'));
    assert.ok(!repositoryMatches('Team-A/**', 'team-a/tool'));
  });

  it('stays fast on patterns made to backtrack', () => {
    const started = performance.now();
    const name = Array.from({ length: 60 }, () => 'a').join('/');
    assert.ok(!repositoryMatches(Array.from({ length: 30 }, () => '**').join('/') + '/b', name));
    assert.ok(!repositoryMatches('*a*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(200)));
    assert.ok(performance.now() - started < 500);
  });
});

describe('policy documents', () => {
  it('parse with every subject kind', () => {
    const policy = parsePolicy(
      JSON.stringify({
        rules: [
          { repositories: ['team-a/**', 'tools/*'], users: ['alice'], serviceAccounts: ['team-a/builder', 'team-c/*'], namespaces: ['ops'], actions: ['pull', 'push'] },
          { repositories: ['**'], authenticated: true, actions: ['pull'] },
        ],
      }),
    );
    assert.equal(policy.rules.length, 2);
  });

  it('are refused with the place of the first problem', () => {
    const refused = (document: unknown, pattern: RegExp) =>
      assert.throws(() => parsePolicy(typeof document === 'string' ? document : JSON.stringify(document)), (e: unknown) => e instanceof PolicyError && pattern.test(e.message));
    refused('{not json', /not JSON/);
    refused({}, /rules/);
    refused({ rules: [{ repositories: ['a'], users: ['alice'], actions: ['pull', 'fly'] }] }, /rules\.0\.actions\.1: expected pull, push or delete/);
    refused({ rules: [{ repositories: ['a//b'], actions: ['pull'] }] }, /rules\.0\.repositories\.0/);
    refused({ rules: [{ repositories: ['a/b**'], actions: ['pull'] }] }, /\*\* must be a whole path segment/);
    refused({ rules: [{ repositories: ['hello', 'team-a/*'], users: ['alice'], actions: ['push'], overOnDemandNames: true }] }, /rules\.0\.repositories: overOnDemandNames takes exact repository names only/);
    refused({ rules: [{ repositories: [], actions: ['pull'] }] }, /at least one repository/);
    refused({ rules: [{ repositories: ['a'], serviceAccounts: ['builder'], actions: ['pull'] }] }, /namespace\/name/);
    refused({ rules: [{ repositories: ['a'], user: ['alice'], actions: ['pull'] }] }, /rules\.0/);
    refused({ rules: [{ repositories: ['a'], actions: [] }] }, /at least one action/);
  });
});

describe('rights of an identity on a repository', () => {
  const policy = parsePolicy(
    JSON.stringify({
      rules: [
        { repositories: ['team-a/**'], users: ['alice'], serviceAccounts: ['team-a/builder'], actions: ['pull', 'push'] },
        { repositories: ['team-a/tool'], users: ['alice'], actions: ['delete'] },
        { repositories: ['shared/*'], namespaces: ['team-*'], actions: ['pull'] },
        { repositories: ['public/**'], authenticated: true, actions: ['pull'] },
        { repositories: ['nobody/**'], actions: ['pull', 'push'] },
      ],
    }),
  );

  it('without a policy: the administrator everything, others pull only, anonymous per the switch', () => {
    assert.deepEqual(rights(ADMIN, 'x', undefined), ['delete', 'pull', 'push']);
    assert.deepEqual(rights(alice, 'x', undefined), ['pull']);
    assert.deepEqual(rights(builder, 'x', undefined), ['pull']);
    assert.deepEqual(rights(ANONYMOUS, 'x', undefined), ['pull']);
    assert.deepEqual(rights(ANONYMOUS, 'x', undefined, false), []);
  });

  it('with a policy: the union of the rules naming the identity and matching the name', () => {
    const withoutAnonymous = (identity: Identity, name: string) => rights(identity, name, policy, false);
    assert.deepEqual(withoutAnonymous(alice, 'team-a/tool'), ['delete', 'pull', 'push']);
    assert.deepEqual(withoutAnonymous(alice, 'team-a/other'), ['pull', 'push']);
    assert.deepEqual(withoutAnonymous(alice, 'team-b/tool'), []);
    assert.deepEqual(withoutAnonymous(bob, 'team-a/tool'), []);
    assert.deepEqual(withoutAnonymous(builder, 'team-a/tool'), ['pull', 'push']);
    assert.deepEqual(withoutAnonymous(other, 'team-a/tool'), [], 'same name, other namespace');
    assert.deepEqual(withoutAnonymous(other, 'shared/base'), ['pull'], 'by namespace glob');
    assert.deepEqual(withoutAnonymous(alice, 'shared/base'), [], 'namespaces name ServiceAccounts only');
    assert.deepEqual(withoutAnonymous(bob, 'public/x/y'), ['pull'], 'authenticated: every identity');
    assert.deepEqual(withoutAnonymous(builder, 'nobody/x'), [], 'a rule without subjects names nobody');
    assert.deepEqual(rights(ADMIN, 'anything', policy), ['delete', 'pull', 'push']);
  });

  it('an identity never has less than the anonymous client', () => {
    assert.deepEqual(rights(bob, 'team-b/tool', policy, true), ['pull']);
    assert.deepEqual(rights(bob, 'team-b/tool', policy, false), []);
    assert.deepEqual(rights(builder, 'elsewhere', policy, false), []);
  });

  it('anonymous pulls follow the switch alone, whatever the policy says', () => {
    assert.deepEqual(rights(ANONYMOUS, 'public/x', policy, true), ['pull']);
    assert.deepEqual(rights(ANONYMOUS, 'public/x', policy, false), []);
    assert.deepEqual(rights(ANONYMOUS, 'team-a/tool', policy, true), ['pull']);
  });
});
