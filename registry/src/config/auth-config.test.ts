// The variables of pull authentication and scoped tokens, as loadConfig reads them and
// renderEnvironment writes them for the operator.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_SERVICE_ACCOUNT_DIR, DEFAULT_TOKEN_TTL_SECONDS, loadConfig, renderEnvironment, type RegistrySettings } from './config.ts';

const IN_CLUSTER = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };

describe('authentication settings', () => {
  it('default to the anonymous registry Nixery is', () => {
    assert.deepEqual(loadConfig({}).auth, { anonymousPull: true, htpasswdFiles: [], tokenTtlSeconds: DEFAULT_TOKEN_TTL_SECONDS });
  });

  it('read every variable, paths resolved against the working directory', () => {
    const auth = loadConfig(
      {
        NIXERY_ANONYMOUS_PULL: 'false',
        NIXERY_HTPASSWD_FILE: 'users/htpasswd, /var/run/secrets/nixery/pull-user/htpasswd',
        NIXERY_AUTH_POLICY_FILE: 'policy.json',
        NIXERY_TOKEN_KEY_FILE: '/keys/key.pem',
        NIXERY_TOKEN_TTL: '120',
        NIXERY_K8S_TOKEN_AUDIENCE: 'nixery.dev/team-a/registry',
        NIXERY_K8S_TOKEN_VERIFICATION: 'oidc',
        NIXERY_K8S_SERVICE_ACCOUNT_DIR: 'sa',
        ...IN_CLUSTER,
      },
      '/srv',
    ).auth;
    assert.deepEqual(auth, {
      anonymousPull: false,
      htpasswdFiles: ['/srv/users/htpasswd', '/var/run/secrets/nixery/pull-user/htpasswd'],
      policyFile: '/srv/policy.json',
      tokenKeyFile: '/keys/key.pem',
      tokenTtlSeconds: 120,
      kubernetesTokens: { audience: 'nixery.dev/team-a/registry', verification: 'oidc', apiServer: 'https://10.96.0.1:443', serviceAccountDir: '/srv/sa' },
    });
  });

  it('verify Kubernetes tokens by TokenReview unless told otherwise, with the pod\'s mounted ServiceAccount', () => {
    const auth = loadConfig({ NIXERY_K8S_TOKEN_AUDIENCE: 'registry', KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }).auth;
    assert.deepEqual(auth.kubernetesTokens, { audience: 'registry', verification: 'tokenreview', apiServer: 'https://[fd00::1]:6443', serviceAccountDir: DEFAULT_SERVICE_ACCOUNT_DIR });
  });

  it('refuse values that mean nothing, naming the variable', () => {
    const refused = (env: Record<string, string>, variable: string, message: RegExp) => assert.throws(() => loadConfig(env), { variable, message });
    refused({ NIXERY_ANONYMOUS_PULL: 'no' }, 'NIXERY_ANONYMOUS_PULL', /expected true or false/);
    refused({ NIXERY_TOKEN_TTL: '0' }, 'NIXERY_TOKEN_TTL', /greater than zero/);
    refused({ NIXERY_TOKEN_TTL: '86401' }, 'NIXERY_TOKEN_TTL', /at most 86400/);
    refused({ NIXERY_HTPASSWD_FILE: 'a,,b' }, 'NIXERY_HTPASSWD_FILE', /an empty entry/);
    refused({ NIXERY_K8S_TOKEN_VERIFICATION: 'jwks', NIXERY_K8S_TOKEN_AUDIENCE: 'x', ...IN_CLUSTER }, 'NIXERY_K8S_TOKEN_VERIFICATION', /tokenreview or oidc/);
    refused({ NIXERY_K8S_TOKEN_VERIFICATION: 'oidc' }, 'NIXERY_K8S_TOKEN_VERIFICATION', /no effect without NIXERY_K8S_TOKEN_AUDIENCE/);
    refused({ NIXERY_K8S_TOKEN_AUDIENCE: 'registry' }, 'NIXERY_K8S_TOKEN_AUDIENCE', /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set/);
  });

  it('round-trip through renderEnvironment', () => {
    const settings: RegistrySettings = {
      anonymousPull: false,
      htpasswdFiles: ['/var/run/secrets/nixery/htpasswd/htpasswd', '/var/run/secrets/nixery/pull-user/htpasswd'],
      authPolicyFile: '/etc/nixery/policy/policy.json',
      tokenKeyFile: '/var/run/secrets/nixery/token-key/key.pem',
      tokenTtlSeconds: 600,
      k8sTokenAudience: 'nixery.dev/team-a/registry',
      k8sTokenVerification: 'tokenreview',
      k8sServiceAccountDir: '/var/run/secrets/kubernetes.io/serviceaccount',
    };
    const env = renderEnvironment(settings);
    assert.deepEqual(env, {
      NIXERY_ANONYMOUS_PULL: 'false',
      NIXERY_HTPASSWD_FILE: '/var/run/secrets/nixery/htpasswd/htpasswd,/var/run/secrets/nixery/pull-user/htpasswd',
      NIXERY_AUTH_POLICY_FILE: '/etc/nixery/policy/policy.json',
      NIXERY_TOKEN_KEY_FILE: '/var/run/secrets/nixery/token-key/key.pem',
      NIXERY_TOKEN_TTL: '600',
      NIXERY_K8S_TOKEN_AUDIENCE: 'nixery.dev/team-a/registry',
      NIXERY_K8S_TOKEN_VERIFICATION: 'tokenreview',
      NIXERY_K8S_SERVICE_ACCOUNT_DIR: '/var/run/secrets/kubernetes.io/serviceaccount',
    });
    assert.deepEqual(loadConfig({ ...env, ...IN_CLUSTER }, '/').auth, {
      anonymousPull: false,
      htpasswdFiles: [...settings.htpasswdFiles!],
      policyFile: settings.authPolicyFile,
      tokenKeyFile: settings.tokenKeyFile,
      tokenTtlSeconds: 600,
      kubernetesTokens: { audience: 'nixery.dev/team-a/registry', verification: 'tokenreview', apiServer: 'https://10.96.0.1:443', serviceAccountDir: '/var/run/secrets/kubernetes.io/serviceaccount' },
    });
  });
});
