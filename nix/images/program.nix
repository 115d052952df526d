# The project's programs as store paths, built from the repository's sources
# and package-lock.json:
#
#   workspace  one build of the TypeScript workspaces (tsc -b registry operator)
#              over a node_modules laid out from the lockfile, devDependencies
#              included; native addons (fs-xattr) compiled with node-gyp
#   program    what an image runs: $out/lib/nixery/ with the given workspaces'
#              bin/, dist/ and package.json, only the node_modules entries they
#              need at run time (see npm-lock.nix), the workspace links, and for
#              the registry the nix/ folder
#
# The layout under lib/nixery/ is the repository's own, so the code finds
# nix/ by walking up from registry/dist (registry/src/nix/nix-dir.ts) and the
# offline package set at registry/dist/config/../../../nix/offline
# (bundledPackageSetPath in registry/src/config/config.ts).
{ pkgs
, src        # the filtered repository (default.nix)
, lock       # its package-lock.json, parsed (read from the working tree, not the store copy)
, version
, nodejs     # builds: npm and node-gyp come with it
, runtimeNodejs ? nodejs
}:

let
  inherit (builtins)
    concatStringsSep elem filter head map split;

  system = pkgs.stdenv.hostPlatform.system or builtins.currentSystem;
  npmCpu = {
    "x86_64-linux" = "x64";
    "aarch64-linux" = "arm64";
  }.${system} or (throw "nix/images: no npm cpu name for ${system}");

  npmLock = import ./npm-lock.nix { inherit lock; cpu = npmCpu; };

  lines = f: xs: concatStringsSep "\n" (map f xs);

  # Same major version and ABI: native addons are compiled with `nodejs`.
  nodeVersionsAgree =
    (runtimeNodejs.version or "") == (nodejs.version or "")
    && head (split "\\." (nodejs.version or "0")) == "24";

  buildWorkspaces = [ "registry" "operator" ];
  buildSet = npmLock.build buildWorkspaces;

  fetchTarball = t: pkgs.fetchurl { inherit (t) url; hash = t.integrity; };

  addons = filter (t: t.hasInstallScript) buildSet.tarballs;

  workspace = pkgs.stdenv.mkDerivation {
    pname = "nixery-operator-workspace";
    inherit version src;

    nativeBuildInputs = [ nodejs pkgs.python3 ];

    dontConfigure = true;
    # Shebangs stay as they are: patched ones would point at the build's
    # nodejs (with npm and bash) and pull it into the images.
    dontFixup = true;

    buildPhase = ''
      runHook preBuild
      export HOME=$TMPDIR
      export npm_config_cache=$TMPDIR/npm-cache npm_config_offline=true npm_config_audit=false \
        npm_config_fund=false npm_config_update_notifier=false npm_config_nodedir=${nodejs}

      # Each entry of package-lock.json at its path, as npm ci would put it.
      unpackTarball() {
        mkdir -p "$2"
        tar -xzf "$1" -C "$2" --strip-components=1 --no-same-owner --no-same-permissions
        chmod -R u+rwX,go+rX "$2"
      }
      ${lines (t: "unpackTarball ${fetchTarball t} '${t.path}'") buildSet.tarballs}
      ${lines (l: "mkdir -p \"$(dirname '${l.path}')\" && ln -sr '${l.target}' '${l.path}'")
        (filter (l: elem l.target buildWorkspaces) buildSet.links)}

      # Install scripts: npm's own rebuild, offline (binding.gyp -> node-gyp rebuild).
      ${if addons == [ ] then "" else ''
        npm rebuild --foreground-scripts ${concatStringsSep " " (map (t: t.name) addons)}
        for dir in ${concatStringsSep " " (map (t: "'${t.path}'") addons)}; do
          # Only the compiled addons stay: the rest of build/ names compilers and build directories.
          if [ -f "$dir/binding.gyp" ]; then
            find "$dir/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
            find "$dir/build/Release" -mindepth 1 -maxdepth 1 ! -name '*.node' -exec rm -rf {} +
            ls "$dir"/build/Release/*.node >/dev/null
          fi
        done
      ''}

      node node_modules/typescript/bin/tsc -b ${concatStringsSep " " buildWorkspaces}
      runHook postBuild
    '';

    installPhase = ''
      runHook preInstall
      mkdir -p $out
      cp -R package.json node_modules nix $out/
      for ws in ${concatStringsSep " " buildWorkspaces}; do
        mkdir -p $out/$ws
        cp -R $ws/package.json $ws/dist $out/$ws/
        if [ -d $ws/bin ]; then cp -R $ws/bin $out/$ws/; fi
      done
      find $out -name '*.tsbuildinfo' -delete
      runHook postInstall
    '';
  };

  programDir = "lib/nixery";

  # One program: `workspaces` with their run-time node_modules under lib/nixery.
  program = { name, workspaces, withNixDir ? false }:
    let
      set = npmLock.runtime workspaces;
      files = [ "package.json" "bin" "dist" ];
    in
    assert nodeVersionsAgree
      || throw "nix/images: runtimeNodejs (${runtimeNodejs.version or "?"}) must be the Node.js 24 release the addons are built for (${nodejs.version or "?"})";
    pkgs.runCommand "${name}-${version}"
      {
        # Build tools must not leak into an image through a stray reference.
        disallowedRequisites = [ pkgs.python3 pkgs.stdenv.cc ]
          ++ (if runtimeNodejs.outPath != nodejs.outPath then [ nodejs ] else [ ]);
        passthru = {
          inherit programDir workspace;
          # Read by e2e/nix-images: what lands where, relative to programDir.
          layout = {
            inherit (set) workspaces;
            workspaceFiles = files;
            nodeModules = map (t: t.path) set.tarballs;
            inherit (set) links;
            nixDir = withNixDir;
          };
        };
      }
      ''
        dest=$out/${programDir}
        mkdir -p $dest
        shopt -s dotglob nullglob

        # A package directory without its node_modules: nested entries are listed on their own.
        copyPackage() {
          mkdir -p "$dest/$1"
          for f in "${workspace}/$1"/*; do
            if [ "''${f##*/}" != node_modules ]; then cp -R "$f" "$dest/$1/"; fi
          done
        }

        ${lines (ws: ''
          mkdir -p $dest/${ws}
          for f in ${concatStringsSep " " files}; do
            if [ -e "${workspace}/${ws}/$f" ]; then cp -R "${workspace}/${ws}/$f" $dest/${ws}/; fi
          done
        '') set.workspaces}
        ${lines (p: "copyPackage '${p}'") (map (t: t.path) set.tarballs)}
        ${lines (l: "mkdir -p \"$(dirname \"$dest/${l.path}\")\" && ln -sr \"$dest/${l.target}\" \"$dest/${l.path}\"") set.links}
        ${if withNixDir then "cp -R ${workspace}/nix $dest/nix" else ""}
        chmod -R u+w $dest
      '';
in
{
  inherit workspace program programDir;
}
