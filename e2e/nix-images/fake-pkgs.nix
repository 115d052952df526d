# A stand-in for nixpkgs with just what nix/images uses, so that the image
# expressions evaluate here (no nixpkgs, no network) and the tests can read
# back what the images would be built from:
#
#   - packages are marker derivations: an attribute set with a recognisable
#     outPath (/nix/store/<32 zeros>-fake-<attr>), so string interpolation and
#     --json print where they would be;
#   - builders (stdenv.mkDerivation, runCommand, fetchurl, writeShellScriptBin)
#     return a marker that also keeps its arguments under `fake`, with the
#     passthru attributes on top as nixpkgs does;
#   - dockerTools.buildLayeredImage returns its arguments unchanged.
let
  storeDir = "/nix/store";
  hash = "00000000000000000000000000000000";
  path = name: "${storeDir}/${hash}-${name}";

  package = attr: extra: {
    type = "derivation";
    name = "fake-${attr}";
    outPath = path "fake-${attr}";
    fake = { kind = "package"; inherit attr; };
  } // extra;

  built = kind: name: args: {
    type = "derivation";
    inherit name;
    outPath = path name;
    fake = { inherit kind args; };
  } // (args.passthru or { });
in
rec {
  nodejs_24 = package "nodejs_24" { version = "24.11.1"; };
  nodejs-slim_24 = package "nodejs-slim_24" { version = "24.11.1"; };
  python3 = package "python3" { };
  nix = package "nix" { };
  git = package "git" { };
  openssh = package "openssh" { };
  coreutils = package "coreutils" { };
  bashInteractive = package "bashInteractive" { };
  gnutar = package "gnutar" { };
  gzip = package "gzip" { };
  cacert = package "cacert" { };
  iana-etc = package "iana-etc" { };
  pkgsStatic.busybox = package "busybox-static" { };

  stdenv = {
    hostPlatform.system = "x86_64-linux";
    cc = package "stdenv.cc" { };
    mkDerivation = args: built "mkDerivation" "${args.pname}-${args.version}" args;
  };

  fetchurl = args: built "fetchurl" (baseNameOf args.url) args;

  runCommand = name: env: script: built "runCommand" name (env // { inherit script; });

  writeShellScriptBin = name: text: built "writeShellScriptBin" name { inherit text; };

  dockerTools.buildLayeredImage = args: args;
}
