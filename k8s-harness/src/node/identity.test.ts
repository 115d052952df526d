import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Container, V1Pod, V1PodSecurityContext, V1SecurityContext } from '@kubernetes/client-node';
import { effectiveSecurity, imageUser, parseGroup, parsePasswd, podFsUser, resolveIdentity, type IdentityInputs } from './identity.ts';

const PASSWD = `root:x:0:0:root:/root:/bin/sh
# a comment, and a malformed line
broken:x:notanumber:1::/:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
nixery:x:10000:10000:Nixery:/var/lib/nixery:/bin/sh
app:x:4321:4322::/home/app:/bin/sh
`;
const GROUP = `root:x:0:
nixery:x:10000:nixery
app:x:4322:app
extra:x:5000:daemon,app
audio:x:29: app , other
`;

function pod(securityContext?: V1PodSecurityContext, container?: V1SecurityContext): { pod: V1Pod; container: V1Container } {
  const c: V1Container = { name: 'main', ...(container ? { securityContext: container } : {}) };
  return {
    pod: { metadata: { name: 'web-1', namespace: 'shop', uid: 'u-1' }, spec: { containers: [c], ...(securityContext ? { securityContext } : {}) } },
    container: c,
  };
}

function resolve(user: string | undefined, p = pod(), files: Partial<Pick<IdentityInputs, 'passwd' | 'group'>> = { passwd: PASSWD, group: GROUP }) {
  return resolveIdentity({ ...p, user, passwd: files.passwd, group: files.group });
}

describe('passwd and group files', () => {
  it('parse name, ids, home and members, skipping comments and malformed lines', () => {
    const users = parsePasswd(PASSWD);
    assert.deepEqual(users.map((u) => u.name), ['root', 'daemon', 'nixery', 'app']);
    assert.deepEqual(users[2], { name: 'nixery', uid: 10000, gid: 10000, home: '/var/lib/nixery' });
    const groups = parseGroup(GROUP);
    assert.deepEqual(groups.find((g) => g.name === 'extra'), { name: 'extra', gid: 5000, members: ['daemon', 'app'] });
    assert.deepEqual(groups.find((g) => g.name === 'audio')?.members, ['app', 'other']);
    assert.deepEqual(groups.find((g) => g.name === 'root')?.members, []);
  });
  it("an image's User as the runtime reports it: uid, name, or uid 0 when empty; the group part is cut off", () => {
    assert.deepEqual(imageUser(undefined), { uid: 0 });
    assert.deepEqual(imageUser(''), { uid: 0 });
    assert.deepEqual(imageUser('10000'), { uid: 10000 });
    assert.deepEqual(imageUser('10000:10000'), { uid: 10000 });
    assert.deepEqual(imageUser('nixery'), { name: 'nixery' });
    assert.deepEqual(imageUser('nixery:staff'), { name: 'nixery' });
  });
});

describe('who a container runs as', () => {
  it('an image without User runs as root, group 0, HOME from root\'s entry', () => {
    assert.deepEqual(resolve(undefined), { ok: true, identity: { uid: 0, gid: 0, groups: [0], home: '/root' } });
    assert.deepEqual(resolve(undefined, pod(), { passwd: undefined, group: undefined }), { ok: true, identity: { uid: 0, gid: 0, groups: [0], home: '/' } });
  });
  it('a user name from the image: its uid, primary group, /etc/group memberships and home', () => {
    assert.deepEqual(resolve('app'), { ok: true, identity: { uid: 4321, gid: 4322, groups: [4322, 5000, 29], home: '/home/app' } });
    assert.deepEqual(resolve('nixery'), { ok: true, identity: { uid: 10000, gid: 10000, groups: [10000], home: '/var/lib/nixery' } });
  });
  it("a numeric image user: its passwd entry's group and home if it has one, else gid 0 and /", () => {
    assert.deepEqual(resolve('4321'), { ok: true, identity: { uid: 4321, gid: 4322, groups: [4322, 5000, 29], home: '/home/app' } });
    assert.deepEqual(resolve('777'), { ok: true, identity: { uid: 777, gid: 0, groups: [0], home: '/' } });
  });
  it("the group part of the image's User is ignored, as kubelet and containerd ignore it", () => {
    assert.deepEqual(resolve('777:888'), { ok: true, identity: { uid: 777, gid: 0, groups: [0], home: '/' } });
    assert.deepEqual(resolve('app:nosuchgroup'), { ok: true, identity: { uid: 4321, gid: 4322, groups: [4322, 5000, 29], home: '/home/app' } });
  });
  it('runAsUser and runAsGroup (container over pod) override the image; fsGroup and supplementalGroups are added', () => {
    const p = pod({ runAsUser: 1, runAsGroup: 1, fsGroup: 3456, supplementalGroups: [7, 3456] }, { runAsUser: 1234, runAsGroup: 2345 });
    assert.deepEqual(resolve('app', p), { ok: true, identity: { uid: 1234, gid: 2345, groups: [2345, 3456, 7], home: '/' } });
    const podOnly = pod({ runAsUser: 4321 });
    assert.deepEqual(resolve('nixery', podOnly), { ok: true, identity: { uid: 4321, gid: 4322, groups: [4322, 5000, 29], home: '/home/app' } });
    const groupOnly = pod({ runAsGroup: 2345 });
    assert.deepEqual(resolve('app', groupOnly), { ok: true, identity: { uid: 4321, gid: 2345, groups: [2345, 5000, 29], home: '/home/app' } });
  });
  it('supplementalGroupsPolicy Strict leaves out the /etc/group memberships', () => {
    const p = pod({ supplementalGroupsPolicy: 'Strict', supplementalGroups: [7] });
    assert.deepEqual(resolve('app', p), { ok: true, identity: { uid: 4321, gid: 4322, groups: [4322, 7], home: '/home/app' } });
  });
  it('a user name the image does not have: the container cannot be created', () => {
    assert.deepEqual(resolve('ghost'), { ok: false, reason: 'CreateContainerError', message: 'unable to find user ghost: no matching entries in passwd file' });
    assert.deepEqual(resolve('app', pod(), { passwd: undefined, group: undefined }), { ok: false, reason: 'CreateContainerError', message: 'unable to find user app: no matching entries in passwd file' });
  });
});

describe('runAsNonRoot, as kubelet verifies it', () => {
  const where = '(pod: "web-1_shop(u-1)", container: main)';
  it('a root image (no User, or 0) is refused', () => {
    const p = pod({ runAsNonRoot: true });
    assert.deepEqual(resolve(undefined, p), { ok: false, reason: 'CreateContainerConfigError', message: `container has runAsNonRoot and image will run as root ${where}` });
    assert.deepEqual(resolve('0:0', p), { ok: false, reason: 'CreateContainerConfigError', message: `container has runAsNonRoot and image will run as root ${where}` });
  });
  it('a named image user cannot be verified, even when it is not root', () => {
    assert.deepEqual(resolve('nixery', pod(undefined, { runAsNonRoot: true })), {
      ok: false,
      reason: 'CreateContainerConfigError',
      message: `container has runAsNonRoot and image has non-numeric user (nixery), cannot verify user is non-root ${where}`,
    });
  });
  it('runAsUser 0 breaks it; a non-zero runAsUser or numeric image user passes', () => {
    assert.deepEqual(resolve('app', pod({ runAsNonRoot: true, runAsUser: 0 })), { ok: false, reason: 'CreateContainerConfigError', message: `container's runAsUser breaks non-root policy ${where}` });
    assert.equal(resolve(undefined, pod({ runAsNonRoot: true, runAsUser: 10000 })).ok, true);
    assert.equal(resolve('nixery', pod({ runAsNonRoot: true, runAsUser: 10000 })).ok, true);
    assert.equal(resolve('10000', pod({ runAsNonRoot: true })).ok, true);
  });
  it('the container can turn it off', () => {
    assert.equal(resolve(undefined, pod({ runAsNonRoot: true }, { runAsNonRoot: false })).ok, true);
  });
});

describe('pod-level security helpers', () => {
  it('effective settings: the container field, else the pod field; readOnlyRootFilesystem and allowPrivilegeEscalation are the container\'s', () => {
    const p = pod({ runAsUser: 1, runAsGroup: 2, runAsNonRoot: true }, { runAsUser: 3, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    assert.deepEqual(effectiveSecurity(p.pod, p.container), { runAsUser: 3, runAsGroup: 2, runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
  });
  it('fsUser: the one runAsUser of every container (init containers too), else none', () => {
    const same: V1Pod = { spec: { securityContext: { runAsUser: 5 }, initContainers: [{ name: 'i' }], containers: [{ name: 'a', securityContext: { runAsUser: 5 } }] } };
    assert.equal(podFsUser(same), 5);
    const differ: V1Pod = { spec: { securityContext: { runAsUser: 5 }, containers: [{ name: 'a' }, { name: 'b', securityContext: { runAsUser: 6 } }] } };
    assert.equal(podFsUser(differ), undefined);
    const unset: V1Pod = { spec: { containers: [{ name: 'a', securityContext: { runAsUser: 5 } }, { name: 'b' }] } };
    assert.equal(podFsUser(unset), undefined);
  });
});
