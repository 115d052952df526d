# The project's container images:
#
#   nix-build nix/images -A registry   # ghcr.io/nixery-operator/nixery:<version>
#   nix-build nix/images -A operator   # ghcr.io/nixery-operator/operator:<version>
#
# Each result is a docker-archive tarball (docker load, skopeo copy
# docker-archive:...). See README.md next to this file.
{ pkgs ? import <nixpkgs> { }
, src ? ../..
, version ? (builtins.fromJSON (builtins.readFile (src + "/package.json"))).version
  # Builds the TypeScript and the native addons (npm and node-gyp come with it).
, nodejs ? pkgs.nodejs_24
  # What the images run: the same release without npm (and so without the
  # shell and Python npm's scripts refer to), where nixpkgs has it.
, runtimeNodejs ? pkgs.nodejs-slim_24 or nodejs
  # The Nix the registry image runs (see README.md: `nix path-info --json`).
, nix ? pkgs.nix
}:

let
  inherit (builtins) any filter match stringLength substring;

  root = toString src;
  relative = path: substring (stringLength root + 1) (-1) (toString path);
  hasPrefix = p: s: substring 0 (stringLength p) s == p;

  # What the build reads, and nothing else: no node_modules, dist or .tools
  # of a working tree, no tests, and not this folder (editing these
  # expressions does not change the programs).
  wanted = [
    "package.json"
    "package-lock.json"
    "tsconfig.json"
    "tsconfig.base.json"
    "registry/package.json"
    "registry/tsconfig.json"
    "registry/bin"
    "registry/src"
    "operator/package.json"
    "operator/tsconfig.json"
    "operator/bin"
    "operator/src"
    "nix/resolve.nix"
    "nix/load-source.nix"
    "nix/offline"
  ];
  isTest = rel: match ".*\\.test\\.ts" rel != null || match "(.*/)?test-support(/.*)?" rel != null;
  keep = path: type:
    let rel = relative path; in
    !(isTest rel)
    && any (w: rel == w || hasPrefix "${w}/" rel || (type == "directory" && hasPrefix "${rel}/" w)) wanted;

  source = builtins.path {
    path = src;
    name = "nixery-operator-source";
    filter = keep;
  };

  programs = import ./program.nix {
    inherit pkgs version nodejs runtimeNodejs;
    src = source;
    lock = builtins.fromJSON (builtins.readFile (src + "/package-lock.json"));
  };

  registryProgram = programs.program {
    name = "nixery-registry";
    workspaces = [ "registry" ];
    withNixDir = true;
  };

  operatorProgram = programs.program {
    name = "nixery-operator";
    workspaces = [ "operator" ];
  };
in
{
  registry = import ./registry.nix {
    inherit pkgs version nix;
    program = registryProgram;
    nodejs = runtimeNodejs;
  };

  operator = import ./operator.nix {
    inherit pkgs version;
    program = operatorProgram;
    nodejs = runtimeNodejs;
  };

  # What the images run, on their own (nix-build nix/images -A registryProgram;
  # result/lib/nixery/registry/bin/nixery.js), and the TypeScript build they
  # are copied from.
  inherit registryProgram operatorProgram source;
  inherit (programs) workspace;
}
