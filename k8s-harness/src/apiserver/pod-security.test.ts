// The Pod Security Standards as this server checks them: for each check a pod that passes and one
// that fails with upstream's reason and detail, the aggregated message, and pod-level fallbacks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluatePod, forbiddenDetail, forbiddenReason, type Level } from './pod-security.ts';
import type { JsonObject } from './json.ts';

/** A container that satisfies restricted on its own. */
const good = (name = 'c', extra: JsonObject = {}): JsonObject => ({
  name,
  image: 'x',
  ...extra,
  securityContext: {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    runAsNonRoot: true,
    seccompProfile: { type: 'RuntimeDefault' },
    ...((extra.securityContext as JsonObject | undefined) ?? {}),
  },
});

/** A pod spec whose only container is `good` with `sc` merged into its securityContext. */
const withContainer = (sc: JsonObject, extra: JsonObject = {}): JsonObject => ({ containers: [good('c', { ...extra, securityContext: sc })] });

function failures(level: Level, spec: JsonObject, metadata: JsonObject = {}): Array<[string, string]> {
  return evaluatePod(level, metadata, spec).map((r) => [r.forbiddenReason, r.forbiddenDetail]);
}

interface Case {
  check: string;
  level: Level;
  passes: { spec: JsonObject; metadata?: JsonObject };
  fails: { spec: JsonObject; metadata?: JsonObject };
  reason: string;
  detail: string;
}

const CASES: Case[] = [
  // baseline
  {
    check: 'hostNamespaces',
    level: 'baseline',
    passes: { spec: { hostNetwork: false, containers: [good()] } },
    fails: { spec: { hostNetwork: true, hostPID: true, hostIPC: true, containers: [good()] } },
    reason: 'host namespaces',
    detail: 'hostNetwork=true, hostPID=true, hostIPC=true',
  },
  {
    check: 'privileged',
    level: 'baseline',
    passes: { spec: withContainer({ privileged: false }) },
    fails: { spec: { containers: [good('a', { securityContext: { privileged: true } }), good('b', { securityContext: { privileged: true } })] } },
    reason: 'privileged',
    detail: 'containers "a", "b" must not set securityContext.privileged=true',
  },
  {
    check: 'capabilities_baseline',
    level: 'baseline',
    passes: { spec: withContainer({ capabilities: { add: ['CHOWN', 'NET_BIND_SERVICE', 'SYS_CHROOT'] } }) },
    fails: { spec: withContainer({ capabilities: { add: ['SYS_ADMIN', 'CHOWN', 'NET_RAW'] } }) },
    reason: 'non-default capabilities',
    detail: 'container "c" must not include "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add',
  },
  {
    check: 'hostPathVolumes',
    level: 'baseline',
    passes: { spec: { containers: [good()], volumes: [{ name: 'data', emptyDir: {} }] } },
    fails: { spec: { containers: [good()], volumes: [{ name: 'root', hostPath: { path: '/' } }, { name: 'data', emptyDir: {} }] } },
    reason: 'hostPath volumes',
    detail: 'volume "root"',
  },
  {
    check: 'hostPorts',
    level: 'baseline',
    passes: { spec: { containers: [good('c', { ports: [{ containerPort: 80 }, { containerPort: 81, hostPort: 0 }] })] } },
    fails: { spec: { containers: [good('c', { ports: [{ containerPort: 80, hostPort: 8080 }, { containerPort: 443, hostPort: 443 }] })] } },
    reason: 'hostPort',
    detail: 'container "c" uses hostPorts 443, 8080',
  },
  {
    check: 'appArmorProfile',
    level: 'baseline',
    passes: { spec: { securityContext: { appArmorProfile: { type: 'RuntimeDefault' } }, containers: [good('c', { securityContext: { appArmorProfile: { type: 'Localhost', localhostProfile: 'p' } } })] }, metadata: { annotations: { 'container.apparmor.security.beta.kubernetes.io/c': 'runtime/default' } } },
    fails: { spec: { securityContext: { appArmorProfile: { type: 'Unconfined' } }, containers: [good()] }, metadata: { annotations: { 'container.apparmor.security.beta.kubernetes.io/c': 'unconfined' } } },
    reason: 'forbidden AppArmor profiles',
    detail: 'pod and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/c="unconfined""',
  },
  {
    check: 'seLinuxOptions',
    level: 'baseline',
    passes: { spec: { securityContext: { seLinuxOptions: { type: 'container_t', level: 's0:c1' } }, containers: [good('c', { securityContext: { seLinuxOptions: { type: 'container_engine_t' } } })] } },
    fails: { spec: { securityContext: { seLinuxOptions: { type: 'spc_t' } }, containers: [good('c', { securityContext: { seLinuxOptions: { user: 'root', role: 'sysadm_r' } } })] } },
    reason: 'seLinuxOptions',
    detail: 'pod and container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set; role may not be set',
  },
  {
    check: 'procMount',
    level: 'baseline',
    passes: { spec: withContainer({ procMount: 'Default' }) },
    fails: { spec: withContainer({ procMount: 'Unmasked' }) },
    reason: 'procMount',
    detail: 'container "c" must not set securityContext.procMount to "Unmasked"',
  },
  {
    check: 'seccompProfile_baseline',
    level: 'baseline',
    passes: { spec: { containers: [{ name: 'c', image: 'x' }] } },
    fails: { spec: { securityContext: { seccompProfile: { type: 'Unconfined' } }, containers: [{ name: 'c', image: 'x' }] } },
    reason: 'seccompProfile',
    detail: 'pod must not set securityContext.seccompProfile.type to "Unconfined"',
  },
  {
    check: 'sysctls',
    level: 'baseline',
    passes: { spec: { securityContext: { sysctls: [{ name: 'net.ipv4.tcp_rmem', value: '4096 87380 16777216' }, { name: 'kernel.shm_rmid_forced', value: '1' }] }, containers: [good()] } },
    fails: { spec: { securityContext: { sysctls: [{ name: 'kernel.msgmax', value: '1' }, { name: 'net.core.somaxconn', value: '1' }] }, containers: [good()] } },
    reason: 'forbidden sysctls',
    detail: 'kernel.msgmax, net.core.somaxconn',
  },
  {
    check: 'windowsHostProcess',
    level: 'baseline',
    passes: { spec: withContainer({ windowsOptions: { hostProcess: false } }) },
    fails: { spec: { securityContext: { windowsOptions: { hostProcess: true } }, containers: [good('c', { securityContext: { windowsOptions: { hostProcess: true } } })] } },
    reason: 'hostProcess',
    detail: 'pod and container "c" must not set securityContext.windowsOptions.hostProcess=true',
  },
  // restricted
  {
    check: 'restrictedVolumes',
    level: 'restricted',
    passes: { spec: { containers: [good()], volumes: ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'image', 'persistentVolumeClaim', 'projected', 'secret'].map((t, i) => ({ name: `v${i}`, [t]: {} })) } },
    fails: { spec: { containers: [good()], volumes: [{ name: 'a', hostPath: { path: '/' } }, { name: 'b', nfs: { server: 's', path: '/' } }, { name: 'c', emptyDir: {} }, { name: 'd' }] } },
    reason: 'restricted volume types',
    detail: 'volumes "a", "b", "d" use restricted volume types "hostPath", "nfs", "unknown"',
  },
  {
    check: 'allowPrivilegeEscalation',
    level: 'restricted',
    passes: { spec: withContainer({ allowPrivilegeEscalation: false }) },
    fails: { spec: withContainer({ allowPrivilegeEscalation: true }) },
    reason: 'allowPrivilegeEscalation != false',
    detail: 'container "c" must set securityContext.allowPrivilegeEscalation=false',
  },
  {
    check: 'runAsNonRoot',
    level: 'restricted',
    passes: { spec: withContainer({ runAsNonRoot: true }) },
    fails: { spec: withContainer({ runAsNonRoot: false }) },
    reason: 'runAsNonRoot != true',
    detail: 'container "c" must not set securityContext.runAsNonRoot=false',
  },
  {
    check: 'runAsUser',
    level: 'restricted',
    passes: { spec: { securityContext: { runAsUser: 1000 }, containers: [good('c', { securityContext: { runAsUser: 1 } })] } },
    fails: { spec: { securityContext: { runAsUser: 0 }, containers: [good('c', { securityContext: { runAsUser: 0 } })] } },
    reason: 'runAsUser=0',
    detail: 'pod and container "c" must not set runAsUser=0',
  },
  {
    check: 'seccompProfile_restricted',
    level: 'restricted',
    passes: { spec: withContainer({ seccompProfile: { type: 'Localhost', localhostProfile: 'p.json' } }) },
    fails: { spec: withContainer({ seccompProfile: { type: 'Unconfined' } }) },
    reason: 'seccompProfile',
    detail: 'container "c" must not set securityContext.seccompProfile.type to "Unconfined"',
  },
  {
    check: 'capabilities_restricted',
    level: 'restricted',
    passes: { spec: withContainer({ capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } }) },
    fails: { spec: withContainer({ capabilities: { drop: ['NET_RAW'], add: ['CHOWN'] } }) },
    reason: 'unrestricted capabilities',
    detail: 'container "c" must set securityContext.capabilities.drop=["ALL"]; container "c" must not include "CHOWN" in securityContext.capabilities.add',
  },
];

describe('Pod Security Standards checks', () => {
  for (const c of CASES) {
    it(`${c.check} (${c.level}): a passing pod, and a failing one with upstream's words`, () => {
      assert.deepEqual(failures(c.level, c.passes.spec, c.passes.metadata), []);
      assert.deepEqual(failures(c.level, c.fails.spec, c.fails.metadata), [[c.reason, c.detail]]);
    });
  }

  it('baseline checks also apply at restricted; restricted ones not at baseline; privileged allows anything', () => {
    const hostPid = { hostPID: true, containers: [good()] };
    assert.deepEqual(failures('restricted', hostPid), [['host namespaces', 'hostPID=true']]);
    const bare = { containers: [{ name: 'c', image: 'x' }] };
    assert.deepEqual(failures('baseline', bare), []);
    assert.deepEqual(failures('privileged', { hostNetwork: true, containers: [{ name: 'c', securityContext: { privileged: true } }] }), []);
  });

  it('restricted replaces baseline capabilities, hostPath and seccomp checks with its own (no double report)', () => {
    const spec = { containers: [good('c', { securityContext: { capabilities: { drop: ['ALL'], add: ['SYS_ADMIN'] } } })], volumes: [{ name: 'h', hostPath: { path: '/' } }] };
    assert.deepEqual(failures('restricted', spec), [
      ['unrestricted capabilities', 'container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add'],
      ['restricted volume types', 'volume "h" uses restricted volume type "hostPath"'],
    ]);
    assert.deepEqual(failures('baseline', spec), [
      ['non-default capabilities', 'container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add'],
      ['hostPath volumes', 'volume "h"'],
    ]);
  });

  it('the aggregated message: checks in upstream order, each reason with its detail in parentheses', () => {
    const results = evaluatePod('restricted', {}, { containers: [{ name: 'c', image: 'x' }] });
    assert.equal(
      forbiddenDetail(results),
      'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), ' +
        'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), ' +
        'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), ' +
        'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
    );
    assert.equal(forbiddenReason(results), 'allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile');
    const everything = evaluatePod('restricted', {}, { hostNetwork: true, containers: [{ name: 'c', image: 'x', ports: [{ containerPort: 1, hostPort: 1 }], securityContext: { privileged: true, runAsUser: 0 } }] });
    assert.deepEqual(everything.map((r) => r.forbiddenReason), ['host namespaces', 'hostPort', 'privileged', 'allowPrivilegeEscalation != false', 'unrestricted capabilities', 'runAsNonRoot != true', 'runAsUser=0', 'seccompProfile']);
  });

  it('init and ephemeral containers are checked too, init first, then containers, then ephemeral', () => {
    const spec = { initContainers: [{ name: 'init', image: 'x' }], containers: [good('main')], ephemeralContainers: [{ name: 'debug', image: 'x', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, privileged: true } }] };
    assert.deepEqual(failures('restricted', spec), [
      ['privileged', 'container "debug" must not set securityContext.privileged=true'],
      ['allowPrivilegeEscalation != false', 'container "init" must set securityContext.allowPrivilegeEscalation=false'],
      ['unrestricted capabilities', 'container "init" must set securityContext.capabilities.drop=["ALL"]'],
      ['runAsNonRoot != true', 'pod or containers "init", "debug" must set securityContext.runAsNonRoot=true'],
      ['seccompProfile', 'pod or containers "init", "debug" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"'],
    ]);
  });

  describe('pod-level fallbacks', () => {
    const bare = (names: string[]): JsonObject[] => names.map((name) => ({ name, image: 'x', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }));
    it('runAsNonRoot and seccompProfile set on the pod cover every container', () => {
      assert.deepEqual(failures('restricted', { securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } }, containers: bare(['a', 'b']) }), []);
    });
    it('a container may override the pod: an explicit false is named, containers relying on the pod are fine', () => {
      const spec = { securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } }, containers: [...bare(['a']), { ...bare(['b'])[0], securityContext: { ...(bare(['b'])[0]?.securityContext as JsonObject), runAsNonRoot: false } }] };
      assert.deepEqual(failures('restricted', spec), [['runAsNonRoot != true', 'container "b" must not set securityContext.runAsNonRoot=false']]);
    });
    it('containers set what the pod does not: each container without it is named', () => {
      const spec = { containers: [...bare(['a']), { ...bare(['b'])[0], securityContext: { ...(bare(['b'])[0]?.securityContext as JsonObject), runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } } }] };
      assert.deepEqual(failures('restricted', spec), [
        ['runAsNonRoot != true', 'pod or container "a" must set securityContext.runAsNonRoot=true'],
        ['seccompProfile', 'pod or container "a" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"'],
      ]);
    });
    it('a pod-level false/Unconfined is reported as the pod setting it, before containers that only lack it', () => {
      const spec = { securityContext: { runAsNonRoot: false, seccompProfile: { type: 'Unconfined' } }, containers: bare(['a']) };
      assert.deepEqual(failures('restricted', spec), [
        ['runAsNonRoot != true', 'pod must not set securityContext.runAsNonRoot=false'],
        ['seccompProfile', 'pod must not set securityContext.seccompProfile.type to "Unconfined"'],
      ]);
    });
    it('capabilities and allowPrivilegeEscalation have no pod-level field: every container must set them', () => {
      const spec = { securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } }, containers: [{ name: 'a', image: 'x' }] };
      assert.deepEqual(failures('restricted', spec).map(([r]) => r), ['allowPrivilegeEscalation != false', 'unrestricted capabilities']);
    });
    it('a Windows pod (spec.os.name) is exempt from allowPrivilegeEscalation, capabilities and seccomp', () => {
      assert.deepEqual(failures('restricted', { os: { name: 'windows' }, securityContext: { runAsNonRoot: true }, containers: [{ name: 'a', image: 'x' }] }), []);
    });
  });
});
