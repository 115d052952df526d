import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ALLOW_EVERYTHING,
  compilePackagePolicy,
  foldAttributePath,
  globMatches,
  MAX_PACKAGE_PATTERN_LENGTH,
  packagePatternProblem,
  refusedPackages,
  type PackagePolicy,
} from './package-policy.ts';

const refused = (policy: PackagePolicy, names: string[]) => refusedPackages(compilePackagePolicy(policy), names);
const deniedNames = (deny: string[], names: string[]) => refused({ deny }, names).map((r) => r.name);
const notAllowedNames = (allow: string[], names: string[]) => refused({ allow, deny: [] }, names).map((r) => r.name);

describe('package policy: which packages the registry builds on demand', () => {
  it('refuses nothing by default', () => {
    assert.deepEqual(refusedPackages(ALLOW_EVERYTHING, ['hello', 'haskellPackages.pandoc', '7zip', 'X']), []);
    assert.deepEqual(refused({ deny: [] }, ['anything']), []);
  });

  it('denies exact attribute paths, and says which and why', () => {
    assert.deepEqual(refused({ deny: ['htop', 'haskellPackages.pandoc'] }, ['git', 'htop', 'haskellPackages.pandoc', 'hello']), [
      { name: 'htop', reason: 'denied' },
      { name: 'haskellPackages.pandoc', reason: 'denied' },
    ]);
    assert.deepEqual(deniedNames(['htop'], ['htop2', 'xhtop', 'ht']), [], 'a literal entry is no prefix or substring match');
  });

  it('allows only what an allow entry matches as a whole', () => {
    assert.deepEqual(refused({ allow: ['hello', 'git'], deny: [] }, ['hello', 'git', 'htop']), [{ name: 'htop', reason: 'not_allowed' }]);
    assert.deepEqual(notAllowedNames(['hello'], ['hello.bin', 'pkgs.hello', 'hello2']), ['hello.bin', 'pkgs.hello', 'hello2']);
    assert.deepEqual(notAllowedNames(['hello', 'hello.*'], ['hello.bin']), [], 'outputs are allowed by saying so');
  });

  it('lets deny win over allow', () => {
    assert.deepEqual(refused({ allow: ['*'], deny: ['htop'] }, ['htop', 'git']), [{ name: 'htop', reason: 'denied' }]);
    assert.deepEqual(refused({ allow: ['python3Packages.*'], deny: ['python3Packages.requests'] }, ['python3Packages.requests', 'python3Packages.flask']), [
      { name: 'python3Packages.requests', reason: 'denied' },
    ]);
  });

  it('reads * as any characters, dots included', () => {
    assert.deepEqual(notAllowedNames(['python3Packages.*'], ['python3Packages.requests', 'python3Packages.foo.bar', 'python3Packages', 'python3', 'python311Packages.requests']), [
      'python3Packages',
      'python3',
      'python311Packages.requests',
    ]);
    assert.deepEqual(notAllowedNames(['*'], ['a', 'a.b.c']), []);
    assert.deepEqual(notAllowedNames(['py*3'], ['py3', 'python3', 'py.thon3', 'python3.11', 'python4']), ['python3.11', 'python4']);
    assert.deepEqual(notAllowedNames(['*Packages.pandoc'], ['haskellPackages.pandoc', 'pandoc', 'haskellPackages.pandoc.doc']), ['pandoc', 'haskellPackages.pandoc.doc']);
    assert.deepEqual(notAllowedNames(['a**b'], ['ab', 'axxb', 'a.b', 'ba']), ['ba']);
  });

  it('denies a matching run of segments anywhere in a dotted name: outputs, nested package sets', () => {
    assert.deepEqual(deniedNames(['hello'], ['hello', 'hello.bin', 'pkgs.hello', 'pkgsStatic.hello.out', 'hellox', 'xhello.bin', 'pkgs.hellox']), [
      'hello',
      'hello.bin',
      'pkgs.hello',
      'pkgsStatic.hello.out',
    ]);
    assert.deepEqual(deniedNames(['haskellPackages.pandoc'], ['pkgs.haskellPackages.pandoc.doc', 'haskellPackages.pandocx', 'pandoc']), ['pkgs.haskellPackages.pandoc.doc']);
    assert.deepEqual(deniedNames(['python3Packages.*'], ['python3Packages.requests', 'pkgs.python3Packages.requests', 'python3Packages', 'xpython3Packages.a']), [
      'python3Packages.requests',
      'pkgs.python3Packages.requests',
    ]);
    assert.deepEqual(deniedNames(['*zip'], ['7zip', 'gzip', 'zipper', 'tools.gzip.out']), ['7zip', 'gzip', 'tools.gzip.out']);
  });

  it('lets no case variant past a deny entry (the Nix lookup ignores case)', () => {
    assert.deepEqual(deniedNames(['myTool'], ['mytool', 'MYTOOL', 'MyTool', 'myTool', 'pkgs.MYTOOL']), ['mytool', 'MYTOOL', 'MyTool', 'myTool', 'pkgs.MYTOOL']);
    assert.deepEqual(deniedNames(['haskellPackages.*'], ['haskellpackages.pandoc', 'HASKELLPACKAGES.PANDOC']), ['haskellpackages.pandoc', 'HASKELLPACKAGES.PANDOC']);
    assert.deepEqual(deniedNames(['PERLPACKAGES.json'], ['perlPackages.JSON', 'perlPackages.Json']), ['perlPackages.JSON', 'perlPackages.Json']);
    assert.deepEqual(notAllowedNames(['haskellPackages.pandoc'], ['haskellpackages.pandoc']), [], 'image names are lower case: allow entries match them');
  });

  it('lets no leading-digit variant past a deny entry (`7zip` finds the attribute `_7zip`)', () => {
    assert.deepEqual(deniedNames(['_7zip'], ['7zip', '7ZIP', 'tools.7zip']), ['7zip', '7ZIP', 'tools.7zip']);
    assert.deepEqual(deniedNames(['7zip'], ['7zip', '_7zip']), ['7zip', '_7zip']);
    assert.deepEqual(deniedNames(['_7*'], ['7zip', '7z']), ['7zip', '7z']);
    assert.deepEqual(notAllowedNames(['_7zip'], ['7zip']), []);
    assert.equal(foldAttributePath('a._7zip.B_1._x'), 'a.7zip.b_1._x', 'only an underscore before a leading digit goes');
  });

  it('checks every package of a list, in the order given', () => {
    assert.deepEqual(refused({ allow: ['hello', 'bashInteractive', 'coreutils', 'moreutils'], deny: ['nano'] }, ['bashInteractive', 'coreutils', 'hello', 'htop', 'moreutils', 'nano']), [
      { name: 'htop', reason: 'not_allowed' },
      { name: 'nano', reason: 'denied' },
    ]);
  });

  it('matches hostile names in time linear in their length', () => {
    const policy = compilePackagePolicy({ allow: ['a*a*a*a*a*a*a*a*a*b'], deny: ['*a*a*a*a*a*a*a*a*c*', 'a.a.a.a.b'] });
    const hostile = Array.from({ length: 127 }, () => 'a').join('.');
    const started = performance.now();
    for (let i = 0; i < 20; i++) assert.deepEqual(refusedPackages(policy, [hostile, 'a'.repeat(255)]).map((r) => r.reason), ['not_allowed', 'not_allowed']);
    assert.ok(performance.now() - started < 2000, `${performance.now() - started} ms`);
  });
});

describe('package patterns', () => {
  it('are attribute paths with * as a glob', () => {
    for (const good of ['hello', 'haskellPackages.pandoc', 'python3Packages.*', '*', '_7zip', 'gst_all_1.gstreamer', 'nerd-fonts.*', 'a*b.c*']) {
      assert.equal(packagePatternProblem(good), undefined, good);
    }
    for (const bad of ['', '.hello', 'hello.', 'a..b', 'a b', 'a/b', 'hello,git', "a'", 'a+b', 'ä', '${x}', 'x'.repeat(MAX_PACKAGE_PATTERN_LENGTH + 1)]) {
      assert.equal(typeof packagePatternProblem(bad), 'string', JSON.stringify(bad));
      assert.throws(() => compilePackagePolicy({ deny: [bad] }), /invalid package pattern/);
    }
  });
});

describe('globMatches', () => {
  it('matches whole strings, or with anywhere a run of dot-separated segments', () => {
    assert.equal(globMatches('a*c', 'abc', false), true);
    assert.equal(globMatches('a*c', 'abcd', false), false);
    assert.equal(globMatches('*', '', false), true);
    assert.equal(globMatches('a', '', false), false);
    assert.equal(globMatches('b*', 'a.bc.d', true), true);
    assert.equal(globMatches('b*', 'a.cb.d', true), false, 'runs start at a segment');
    assert.equal(globMatches('*b', 'a.bc.d', true), false, 'runs end at a segment');
    assert.equal(globMatches('c.*', 'a.b.c.d', true), true);
  });
});
