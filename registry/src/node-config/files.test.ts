import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkConfigPath, crioDropInName, desiredFiles, marker, ownership, parseInstance, parseRegistryHost, parseServer } from './files.ts';

const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const base = {
  instance: 'team-a/nixery',
  hosts: ['nixery.team-a.svc.cluster.local:5000', 'nixery.team-a.svc:5000'],
  containerdDir: '/host/etc/containerd/certs.d',
  containerdHostDir: '/etc/containerd/certs.d',
  crioDir: '/host/etc/containers/registries.conf.d',
  crioCertsDir: '/host/etc/containers/certs.d',
};

describe('node-config files', () => {
  it('plain HTTP: a hosts.toml per name pointing at the ClusterIP, and one CRI-O drop-in marking it insecure', () => {
    const files = desiredFiles({ ...base, server: 'http://10.96.0.12:5000' });
    assert.deepEqual(
      files.map((f) => f.path),
      [
        '/host/etc/containerd/certs.d/nixery.team-a.svc.cluster.local:5000/hosts.toml',
        '/host/etc/containerd/certs.d/nixery.team-a.svc:5000/hosts.toml',
        '/host/etc/containers/registries.conf.d/50-nixery-team-a-nixery.conf',
      ],
    );
    assert.equal(
      files[0]!.content,
      '# written by nixery node-config for team-a/nixery\n' +
        "# pods pull nixery.team-a.svc.cluster.local:5000/…; the node's runtime connects to the Service's ClusterIP instead\n" +
        'server = "http://10.96.0.12:5000"\n' +
        '\n[host."http://10.96.0.12:5000"]\n' +
        '  capabilities = ["pull", "resolve"]\n',
    );
    assert.equal(
      files[2]!.content,
      '# written by nixery node-config for team-a/nixery\n\n' +
        '[[registry]]\nprefix = "nixery.team-a.svc.cluster.local:5000"\nlocation = "10.96.0.12:5000"\ninsecure = true\n\n' +
        '[[registry]]\nprefix = "nixery.team-a.svc:5000"\nlocation = "10.96.0.12:5000"\ninsecure = true\n',
    );
  });

  it('HTTPS: the CA beside each hosts.toml (named by its path on the node), in CRI-O certs.d by the ClusterIP, TLS verified', () => {
    const files = desiredFiles({ ...base, server: 'https://10.96.0.12:5000', ca: CA });
    const byPath = new Map(files.map((f) => [f.path, f.content]));
    const hostsToml = byPath.get('/host/etc/containerd/certs.d/nixery.team-a.svc:5000/hosts.toml')!;
    assert.match(hostsToml, /^server = "https:\/\/10\.96\.0\.12:5000"\nca = "\/etc\/containerd\/certs\.d\/nixery\.team-a\.svc:5000\/ca\.crt"\n/m);
    assert.match(hostsToml, /\[host\."https:\/\/10\.96\.0\.12:5000"\]\n {2}capabilities = \["pull", "resolve"\]\n {2}ca = "\/etc\/containerd\/certs\.d\/nixery\.team-a\.svc:5000\/ca\.crt"\n$/);
    assert.equal(byPath.get('/host/etc/containerd/certs.d/nixery.team-a.svc:5000/ca.crt'), `${marker('team-a/nixery')}\n${CA}`);
    assert.equal(byPath.get('/host/etc/containers/certs.d/10.96.0.12:5000/ca.crt'), `${marker('team-a/nixery')}\n${CA}`);
    assert.match(byPath.get('/host/etc/containers/registries.conf.d/50-nixery-team-a-nixery.conf')!, /insecure = false/);
    assert.doesNotMatch(byPath.get('/host/etc/containers/registries.conf.d/50-nixery-team-a-nixery.conf')!, /insecure = true/);
    assert.equal(files.length, 6);
  });

  it('HTTPS without the CA yet: nothing; only the runtimes asked for; IPv6 ClusterIPs bracketed', () => {
    assert.deepEqual(desiredFiles({ ...base, server: 'https://10.96.0.12:5000' }), []);
    const crioOnly = desiredFiles({ instance: 'a/b', hosts: ['b.a.svc:80'], server: 'http://[fd00::12]:80', crioDir: '/d' });
    assert.deepEqual(crioOnly.map((f) => f.path), ['/d/50-nixery-a-b.conf']);
    assert.match(crioOnly[0]!.content, /location = "\[fd00::12\]:80"/);
    assert.equal(crioDropInName('ns/name'), '50-nixery-ns-name.conf');
  });

  it('a file is ours only when its first line is our marker', () => {
    assert.equal(ownership(undefined, 'team-a/nixery'), 'absent');
    assert.equal(ownership(`${marker('team-a/nixery')}\nserver = "x"\n`, 'team-a/nixery'), 'ours');
    assert.equal(ownership('server = "https://mirror.example"\n', 'team-a/nixery'), 'foreign');
    assert.equal(ownership(`${marker('team-a/nixery-2')}\n`, 'team-a/nixery'), 'foreign');
    assert.equal(ownership(`\n${marker('team-a/nixery')}\n`, 'team-a/nixery'), 'foreign');
  });

  it('refuses malformed names, servers and instances', () => {
    assert.equal(parseRegistryHost('nixery.team-a.svc:5000'), 'nixery.team-a.svc:5000');
    for (const bad of ['nixery', 'a/b:5000', '../x:1', 'a:', 'a b:1']) assert.throws(() => parseRegistryHost(bad), /expected host:port/, bad);
    assert.deepEqual(parseServer('https://10.0.0.1:443'), { scheme: 'https', hostPort: '10.0.0.1:443' });
    for (const bad of ['10.0.0.1:5000', 'ftp://a:1', 'http://a:1/path']) assert.throws(() => parseServer(bad), /expected http\(s\)/, bad);
    assert.throws(() => parseInstance('nixery'), /namespace/);
  });
});

describe("containerd's config_path", () => {
  const dir = '/etc/containerd/certs.d';
  it('set to the directory, or a list including it: ok', () => {
    assert.equal(checkConfigPath('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n', dir).ok, true);
    assert.equal(checkConfigPath('version = 3\n[plugins."io.containerd.cri.v1.images".registry]\n  config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"\n', dir).ok, true);
    assert.equal(checkConfigPath("config_path = '/etc/containerd/certs.d/'\n", dir).ok, true);
  });
  it('version 3 without it: containerd 2.x default, ok', () => {
    assert.equal(checkConfigPath('version = 3\n[plugins."io.containerd.cri.v1.images"]\n', dir).ok, true);
  });
  it('unset in version 2 (containerd 1.x), or set elsewhere: not ok, saying what to set', () => {
    const unset = checkConfigPath('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors]\n', dir);
    assert.equal(unset.ok, false);
    assert.match(unset.message, /sets no config_path \(version 2\).*config_path = "\/etc\/containerd\/certs\.d"/);
    const elsewhere = checkConfigPath('version = 2\n  config_path = "/etc/containerd/hosts.d"\n', dir);
    assert.equal(elsewhere.ok, false);
    assert.match(elsewhere.message, /"\/etc\/containerd\/hosts\.d", which does not include \/etc\/containerd\/certs\.d/);
    assert.equal(checkConfigPath('version = 2\n# config_path = "/etc/containerd/certs.d"\n', dir).ok, false);
    assert.match(checkConfigPath('imports = ["/etc/containerd/conf.d/*.toml"]\nversion = 2\n', dir).message, /imports were not read/);
  });
});
