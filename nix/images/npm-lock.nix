# Reads the repository's package-lock.json (lockfile version 2 or 3, npm
# workspaces) and says which registry tarballs go where, so that node_modules
# can be laid out in a Nix build without npm and without network access.
#
# Only builtins are used: it evaluates without nixpkgs, and the tests in
# e2e/nix-images evaluate it against the real lockfile.
#
# Why not fetchNpmDeps or importNpmLock from nixpkgs: this lockfile is written
# with omit-lockfile-registry-resolved, so its registry packages have an
# `integrity` but no `resolved` URL. fetchNpmDeps skips such entries (the
# offline `npm ci` then fails), and importNpmLock cannot fetch them and turns
# the workspace links (@nixery/registry) into copies of unbuilt sources. The
# URL of a registry tarball follows from name and version, so it is computed
# here; the integrity hash pins the content either way.
#
#   lock      the parsed lockfile
#   registry  where tarballs without a `resolved` URL are fetched from
#   os, cpu   npm's names for the target platform (os/cpu fields of packages)
{ lock
, registry ? "https://registry.npmjs.org"
, os ? "linux"
, cpu ? "x64"
}:

let
  inherit (builtins)
    attrNames elem elemAt filter genericClosure head isString map match sort split substring;

  lockVersion = lock.lockfileVersion or 1;
  packages =
    if lockVersion >= 2 then lock.packages
    else throw "npm-lock.nix: lockfile version ${toString lockVersion} has no `packages`; run npm 7 or later";

  # "node_modules/x", "node_modules/a/node_modules/@s/b", "registry/node_modules/x"
  isInstalled = loc: match "(.*/)?node_modules/.+" loc != null;
  isLink = loc: packages.${loc}.link or false;
  # The name a location is installed under (the package's own name may differ: npm aliases).
  installedName = loc: elemAt (match "(.*/)?node_modules/((@[^/]+/)?[^/]+)" loc) 1;
  # Where Node looks next: the directory holding the node_modules a location sits in ("" is the root).
  parentOf = loc:
    let m = match "(.*)/node_modules/(@[^/]+/)?[^/]+" loc; in
    if m == null then "" else head m;
  prefix = loc: if loc == "" then "" else "${loc}/";

  describe = loc: if loc == "" then "the root package" else loc;

  # npm's os/cpu fields: a list of allowed values, or of "!value" exclusions.
  platformOk = list: value:
    let
      negated = filter (x: substring 0 1 x == "!") list;
      allowed = filter (x: substring 0 1 x != "!") list;
    in
    !(elem "!${value}" negated) && (allowed == [ ] || elem value allowed);
  fitsPlatform = loc:
    let e = packages.${loc}; in
    platformOk (e.os or [ ]) os && platformOk (e.cpu or [ ]) cpu;

  # Node's lookup of `name` from a location: its own node_modules, then each enclosing one.
  candidates = loc: name:
    [ "${prefix loc}node_modules/${name}" ] ++ (if loc == "" then [ ] else candidates (parentOf loc) name);
  resolveDep = loc: name:
    let found = filter (c: packages ? ${c}) (candidates loc name); in
    if found == [ ] then null else head found;

  optionalPeer = e: n: e.peerDependenciesMeta.${n}.optional or false;
  requiredNames = dev: e:
    attrNames (e.dependencies or { })
    ++ filter (n: !(optionalPeer e n)) (attrNames (e.peerDependencies or { }))
    ++ (if dev then attrNames (e.devDependencies or { }) else [ ]);
  optionalNames = e:
    attrNames (e.optionalDependencies or { })
    ++ filter (n: optionalPeer e n) (attrNames (e.peerDependencies or { }));

  # The locations a location needs at run time. A link (a workspace package in
  # node_modules) leads to its target, whose dependencies are looked up from
  # the target's own directory, as Node does after resolving the symlink.
  # devDependencies count only for the starting points (the root and the
  # workspaces), as with npm.
  edges = dev: loc:
    let e = packages.${loc}; in
    if isLink loc then [ e.resolved ]
    else
      map
        (n:
          let r = resolveDep loc n; in
          if r == null then throw "npm-lock.nix: ${describe loc} needs ${n}, which the lockfile does not install"
          else if !(fitsPlatform r) then throw "npm-lock.nix: ${describe loc} needs ${n} (${r}), which does not run on ${os}/${cpu}"
          else r)
        (requiredNames dev e)
      ++ filter (r: r != null && fitsPlatform r) (map (resolveDep loc) (optionalNames e));

  closure = { starts, dev }:
    map (x: x.key) (genericClosure {
      startSet = map
        (s:
          if packages ? ${s} then { key = s; start = true; }
          else throw "npm-lock.nix: no package at '${s}' in the lockfile")
        starts;
      operator = x: map (k: { key = k; start = false; }) (edges (dev && x.start) x.key);
    });

  # The strongest hash of an integrity field ("sha512-... sha1-..." lists several).
  bestHash = loc: integrity:
    let
      hashes = filter (h: isString h && h != "") (split " +" integrity);
      sha512 = filter (h: substring 0 7 h == "sha512-") hashes;
    in
    if sha512 != [ ] then head sha512
    else if hashes != [ ] then head hashes
    else throw "npm-lock.nix: ${loc} has an empty integrity field";

  tarballUrl = loc: e:
    let
      name = e.name or (installedName loc);
      baseName = elemAt (match "(@[^/]+/)?([^/]+)" name) 1;
    in
    if !(e ? resolved) then "${registry}/${name}/-/${baseName}-${e.version}.tgz"
    else if match "https?://.+" e.resolved != null then e.resolved
    else throw "npm-lock.nix: ${loc} comes from '${e.resolved}'; only registry tarballs are supported";

  tarball = loc:
    let e = packages.${loc}; in
    if !(e ? integrity) then throw "npm-lock.nix: ${loc} has no integrity hash in the lockfile"
    else {
      path = loc;
      name = e.name or (installedName loc);
      inherit (e) version;
      url = tarballUrl loc e;
      integrity = bestHash loc e.integrity;
      # A binding.gyp or an install script: built after unpacking (see program.nix).
      hasInstallScript = e.hasInstallScript or false;
    };

  link = loc: { path = loc; target = packages.${loc}.resolved; };

  # Bundled dependencies arrive inside their parent's tarball.
  isTarball = loc: isInstalled loc && !(isLink loc) && !(packages.${loc}.inBundle or false);

  layout = unsorted:
    let locs = sort (a: b: a < b) unsorted; in
    {
      # Workspace directories (e.g. "registry"): copied from the build, not fetched.
      workspaces = filter (l: l != "" && !(isInstalled l)) locs;
      tarballs = map tarball (filter isTarball locs);
      links = map link (filter isLink locs);
    };

  checkNotDev = locs:
    let wrong = filter (l: packages.${l}.dev or false) locs; in
    if wrong == [ ] then locs
    else throw "npm-lock.nix: the lockfile marks ${head wrong} as a development dependency, but the run-time closure reaches it";

in
{
  inherit packages;

  # Everything the TypeScript build needs: the root's and the workspaces'
  # dependencies, devDependencies included.
  build = workspaces: layout (closure { starts = [ "" ] ++ workspaces; dev = true; });

  # What the given workspaces need at run time (no devDependencies), e.g.
  # runtime [ "operator" ] = the operator, the registry workspace it links,
  # and both their production dependencies.
  runtime = workspaces: layout (checkNotDev (closure { starts = workspaces; dev = false; }));
}
