import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compilePackagePolicy, ALLOW_EVERYTHING } from '../image/package-policy.ts';
import type { ImageSpec } from '../image/name.ts';
import { AccessControl } from './access-control.ts';
import { ADMIN, type Identity } from './identity.ts';
import { OnDemandCheckError, OnDemandNames, type NameResolver } from './on-demand-names.ts';
import { parsePolicy } from './policy.ts';

/** A source holding these packages; counts what it was asked. */
function source(packages: string[]): NameResolver & { asked: string[][] } {
  const known = new Set(packages);
  const asked: string[][] = [];
  return {
    asked,
    resolves: async (image: ImageSpec) => {
      asked.push(image.packages);
      return image.packages.every((p) => known.has(p));
    },
  };
}

const PACKAGES = ['hello', 'git', 'bashInteractive', 'coreutils', 'moreutils', 'nano', 'cacert', 'iana-etc'];

describe('on-demand names', () => {
  it('are the names whose packages all resolve, meta-packages included', async () => {
    const names = new OnDemandNames({ onDemand: true, packagePolicy: ALLOW_EVERYTHING, resolver: source(PACKAGES) });
    assert.equal(await names.isOnDemand('hello'), true);
    assert.equal(await names.isOnDemand('shell/git/hello'), true);
    assert.equal(await names.isOnDemand('arm64/hello'), true);
    assert.equal(await names.isOnDemand('shell'), true);
    assert.equal(await names.isOnDemand('team-a/tool'), false);
    assert.equal(await names.isOnDemand('hello/team-a'), false, 'one package missing');
  });

  it('are none with on-demand builds off', async () => {
    const resolver = source(PACKAGES);
    const names = new OnDemandNames({ onDemand: false, packagePolicy: ALLOW_EVERYTHING, resolver });
    assert.equal(await names.isOnDemand('hello'), false);
    assert.deepEqual(resolver.asked, [], 'nothing evaluated');
  });

  it('leave out names the package policy refuses to build, and names that are no image', async () => {
    const resolver = source(PACKAGES);
    const names = new OnDemandNames({ onDemand: true, packagePolicy: compilePackagePolicy({ deny: ['git'] }), resolver });
    assert.equal(await names.isOnDemand('shell/git'), false);
    assert.equal(await names.isOnDemand('git/shell'), false, 'a meta-package after packages is no image name');
    assert.deepEqual(resolver.asked, []);
  });

  it('cannot tell when the source cannot be asked', async () => {
    const names = new OnDemandNames({ onDemand: true, packagePolicy: ALLOW_EVERYTHING, resolver: { resolves: () => Promise.reject(new Error('nix-instantiate timed out')) } });
    await assert.rejects(names.isOnDemand('hello'), (e: unknown) => e instanceof OnDemandCheckError && /cannot tell now whether hello is an on-demand name: nix-instantiate timed out/.test(e.message));
  });

  it('ask the source once per name for a while', async () => {
    let now = 0;
    const resolver = source(PACKAGES);
    const names = new OnDemandNames({ onDemand: true, packagePolicy: ALLOW_EVERYTHING, resolver, ttlMs: 1000, now: () => now });
    await Promise.all([names.isOnDemand('hello'), names.isOnDemand('hello')]);
    await names.isOnDemand('hello');
    assert.equal(resolver.asked.length, 1);
    now = 2000;
    await names.isOnDemand('hello');
    assert.equal(resolver.asked.length, 2);
  });
});

describe('pushing over on-demand names', () => {
  const alice: Identity = { kind: 'user', name: 'alice' };
  const access = new AccessControl({
    policy: () => parsePolicy(JSON.stringify({ rules: [{ repositories: ['**'], users: ['alice'], actions: ['pull', 'push', 'delete'] }] })),
    anonymousPull: true,
    onDemandNames: new OnDemandNames({ onDemand: true, packagePolicy: ALLOW_EVERYTHING, resolver: source(PACKAGES) }),
  });

  it('is the administrator\'s alone, whatever the policy grants', async () => {
    const refused = await access.rights(alice, 'shell/hello', ['push']);
    assert.deepEqual([...refused.allowed], ['pull']);
    assert.match(refused.refusal ?? '', /shell\/hello is an on-demand name .*only the administrator may push it/);
    assert.deepEqual([...(await access.rights(alice, 'team-a/tool', ['push', 'delete'])).allowed].sort(), ['delete', 'pull', 'push']);
    assert.deepEqual([...(await access.rights(ADMIN, 'shell/hello', ['push', 'delete'])).allowed].sort(), ['delete', 'pull', 'push']);
    assert.deepEqual(await access.grant(alice, [{ type: 'repository', name: 'hello', actions: ['pull', 'push', 'delete'] }]), [{ type: 'repository', name: 'hello', actions: ['pull'] }]);
  });
});

describe('a rule marked overOnDemandNames', () => {
  const builder: Identity = { kind: 'serviceAccount', namespace: 'nixery', name: 'nixery-build-hello' };
  const access = new AccessControl({
    policy: () =>
      parsePolicy(
        JSON.stringify({
          rules: [
            { repositories: ['hello'], serviceAccounts: ['nixery/nixery-build-hello'], actions: ['pull', 'push'], overOnDemandNames: true },
            { repositories: ['shell/**'], serviceAccounts: ['nixery/nixery-build-hello'], actions: ['pull', 'push', 'delete'] },
          ],
        }),
      ),
    anonymousPull: true,
    onDemandNames: new OnDemandNames({ onDemand: true, packagePolicy: ALLOW_EVERYTHING, resolver: source(PACKAGES) }),
  });

  it('lets its subjects push the exact package-list names it names, and only the actions it grants', async () => {
    assert.deepEqual([...(await access.rights(builder, 'hello', ['push'])).allowed].sort(), ['pull', 'push']);
    const del = await access.rights(builder, 'hello', ['delete']);
    assert.deepEqual([...del.allowed], ['pull', 'push']);
    assert.deepEqual(await access.grant(builder, [{ type: 'repository', name: 'hello', actions: ['pull', 'push'] }]), [{ type: 'repository', name: 'hello', actions: ['pull', 'push'] }]);
  });

  it('gives nothing to rules without it, nor to other identities', async () => {
    const refused = await access.rights(builder, 'shell/hello', ['push']);
    assert.deepEqual([...refused.allowed], ['pull']);
    assert.match(refused.refusal ?? '', /shell\/hello is an on-demand name/);
    const other: Identity = { kind: 'serviceAccount', namespace: 'nixery', name: 'nixery-build-other' };
    assert.deepEqual([...(await access.rights(other, 'hello', ['push'])).allowed], ['pull']);
  });
});
