# The bundled offline package set: nixpkgs-shaped (a function of `system`
# returning an attribute set of derivations), built from nothing but the
# host's static busybox, so the registry and its tests work without network
# access to nixpkgs or a binary cache. See README.md next to this file.
{ system ? builtins.currentSystem
  # A directory holding a static `busybox` for `system`. Taken as a
  # directory, not a file, because busybox dispatches on argv[0] and Nix runs
  # a builder with argv[0] set to the builder's file name: the imported file
  # has to be called `busybox`, not `<hash>-busybox-static`. For
  # aarch64-linux, Debian's busybox-static:arm64 as scripts/setup.sh unpacks
  # it (Nix runs it through qemu-user-static and binfmt_misc on an amd64
  # machine); otherwise the host's own.
, busyboxDir ?
    (if system == "aarch64-linux" && builtins.pathExists /usr/local/lib/busybox-static-arm64/bin/busybox
     then /usr/local/lib/busybox-static-arm64/bin
     else if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin)
  # Debian's bundle, so that TLS clients in demo images can verify servers.
, caBundle ? /etc/ssl/certs/ca-certificates.crt
  # nixpkgs takes `config`, `overlays`, `crossSystem`, ...; callers may pass them.
, ...
}:

let
  inherit (builtins) attrNames concatStringsSep genList listToAttrs length elemAt;

  busyboxStatic = builtins.path {
    path = busyboxDir;
    name = "busybox-static";
    filter = p: _type: baseNameOf p == "busybox";
  };

  # Builds run busybox's ash directly. Debian's busybox is built with the
  # standalone shell, so applets (mkdir, cp, ln, ...) work without a PATH.
  build = name: script: env: derivation ({
    inherit name system;
    builder = "${busyboxStatic}/busybox";
    args = [ "sh" "-e" "-c" script ];
  } // env);

  pad3 = i: let s = toString i; l = builtins.stringLength s; in
    if l >= 3 then s else if l == 2 then "0${s}" else "00${s}";

  # Writes each entry of `files` (relative path -> text) into $out. The texts
  # travel as files (passAsFile) rather than in the script, so no shell quoting
  # is needed, and not as plain environment variables, which the kernel caps
  # at 128 KiB each (a CA bundle is larger).
  writeFiles = name: { files, mode ? "0444", extra ? "" }:
    let names = attrNames files; in
    build name ''
      mkdir -p $out
      ${concatStringsSep "\n" (genList (i: ''
        f="$out/${elemAt names i}"
        mkdir -p "$(dirname "$f")"
        cp "$file${toString i}Path" "$f"
        chmod ${mode} "$f"
      '') (length names))}
      ${extra}
    '' (listToAttrs (genList (i: { name = "file${toString i}"; value = files.${elemAt names i}; }) (length names))
      // { passAsFile = genList (i: "file${toString i}") (length names); });

  # Shebangs point into the store so scripts also run inside an image, where
  # nothing but the image's /nix/store paths exists.
  scriptsBin = name: scripts: writeFiles name {
    mode = "0555";
    files = listToAttrs (map (n: {
      name = "bin/${n}";
      value = "#!${busybox}/bin/sh\n" + scripts.${n};
    }) (attrNames scripts));
  };

  busybox = build "busybox-1.35" ''
    mkdir -p $out/bin
    cp ${busyboxStatic}/busybox $out/bin/busybox
    cd $out/bin
    for applet in $(./busybox --list); do
      [ "$applet" = busybox ] || ln -s busybox "$applet"
    done
  '' { };

  # Symlinks into the busybox binary named after an applet; busybox picks the
  # applet from argv[0], which keeps the symlink's name.
  appletLinks = name: applets: build name ''
    mkdir -p $out/bin
    for applet in ${concatStringsSep " " applets}; do
      ln -s ${busybox}/bin/busybox $out/bin/$applet
    done
  '' { };

  # One tiny, distinct store path per index; `bigSet n` depends on n of them.
  tiny = i: build "tiny-${pad3 i}" ''
    mkdir -p $out/share/tiny
    echo "tiny package number ${toString i}" > $out/share/tiny/${pad3 i}
  '' { };

  bigSet = n: build "many-deps-${toString n}" ''
    mkdir -p $out/share/many-deps
    for d in $deps; do echo "$d"; done > $out/share/many-deps/paths
  '' { deps = genList (i: tiny (i + 1)) n; };

  libshared = build "libshared-1.0" ''
    mkdir -p $out/lib $out/share/libshared
    i=0
    while [ $i -lt 96 ]; do
      echo "libshared 1.0 data record $i: the quick brown fox jumps over the lazy dog"
      i=$((i + 1))
    done > $out/lib/libshared.so.1
    echo 1.0 > $out/share/libshared/VERSION
  '' { };

  broken = build "broken-1.0" ''
    echo "broken-1.0: this package fails to build on purpose (offline demo)" >&2
    exit 1
  '' { };

  usesLibshared = name: scriptsBin "${name}-1.0" {
    ${name} = ''
      lib=${libshared}/lib/libshared.so.1
      echo "${name} 1.0 using $lib ($(${busybox}/bin/wc -c < "$lib") bytes)"
    '';
  };

  tinyTool = name: version: bin: scriptsBin "${name}-${version}" {
    ${bin} = ''echo "${name} ${version} (offline demo)"'';
  };

  # `meta` cannot go through `derivation`: the builder's environment only
  # takes strings, so it is attached afterwards as in nixpkgs.
  withMeta = meta: drv: drv // { inherit meta; };

in
{
  inherit busybox bigSet broken;

  # The helpers that nixpkgs-shaped expressions (like a package set kept in a
  # git repository for NIXERY_PKGS_REPO) expect to find.
  runCommand = name: env: script: build name script env;
  writeText = name: text: build name ''printf '%s' "$text" > $out'' { inherit text; };
  writeShellScriptBin = name: text: scriptsBin name { ${name} = text; };

  # busybox has no `bash` applet, so bin/bash is a wrapper script that runs
  # ash; bin/sh is an applet link.
  bashInteractive = build "bash-interactive-5.2" ''
    mkdir -p $out/bin
    ln -s ${busybox}/bin/busybox $out/bin/sh
    printf '#!%s\nexec %s "$@"\n' ${busybox}/bin/sh ${busybox}/bin/sh > $out/bin/bash
    chmod 0555 $out/bin/bash
  '' { };

  coreutils = appletLinks "coreutils-9.1" [
    "basename" "cat" "chmod" "chown" "cp" "cut" "date" "dd" "df" "dirname" "du"
    "echo" "env" "false" "head" "id" "ln" "ls" "mkdir" "mktemp" "mv" "printf"
    "pwd" "readlink" "rm" "rmdir" "seq" "sleep" "sort" "stat" "tail" "tee"
    "touch" "tr" "true" "uname" "uniq" "wc" "whoami"
  ];

  moreutils = scriptsBin "moreutils-0.67" {
    sponge = ''
      # Soak up all of stdin before writing the file, so `sort f | sponge f` works.
      set -e
      append=
      if [ "$1" = -a ]; then append=1; shift; fi
      tmp=$(${busybox}/bin/mktemp)
      ${busybox}/bin/cat > "$tmp"
      if [ -z "$1" ]; then ${busybox}/bin/cat "$tmp"
      elif [ -n "$append" ]; then ${busybox}/bin/cat "$tmp" >> "$1"
      else ${busybox}/bin/cat "$tmp" > "$1"
      fi
      ${busybox}/bin/rm -f "$tmp"
    '';
    ts = ''
      fmt=''${1:-%b %d %H:%M:%S}
      while IFS= read -r line; do
        printf '%s %s\n' "$(${busybox}/bin/date +"$fmt")" "$line"
      done
    '';
    chronic = ''
      # Run a command quietly; show its output only if it fails.
      out=$(${busybox}/bin/mktemp)
      "$@" > "$out" 2>&1
      rc=$?
      [ $rc -eq 0 ] || ${busybox}/bin/cat "$out"
      ${busybox}/bin/rm -f "$out"
      exit $rc
    '';
  };

  # Not GNU nano: busybox has no nano applet, so this is busybox vi under
  # nano's name, enough for an image named `.../nano` to have an editor.
  nano = scriptsBin "nano-7.2" {
    nano = ''exec ${busybox}/bin/vi "$@"'';
  };

  hello = withMeta { description = "Prints a friendly greeting"; mainProgram = "hello"; }
    (scriptsBin "hello-2.12" { hello = "echo 'Hello, world!'"; });

  # A multi-output package, as nixpkgs has many: an environment (and so an
  # image) gets `meta.outputsToInstall`, not every output.
  cowsay =
    let
      drv = build "cowsay-3.7" ''
        mkdir -p $out/bin $man/share/man/man1 $doc/share/doc/cowsay
        printf '#!%s\necho " < $* >"\necho "    (oo)"\n' ${busybox}/bin/sh > $out/bin/cowsay
        chmod 0555 $out/bin/cowsay
        echo ".TH COWSAY 1" > $man/share/man/man1/cowsay.1
        echo "cowsay documentation" > $doc/share/doc/cowsay/README
      '' { outputs = [ "out" "man" "doc" ]; };
    in
    withMeta { outputsToInstall = [ "out" "man" ]; } drv;

  # Taken from the host when it has one (Debian's bundle), because the set
  # must build offline and cannot download Mozilla's list; otherwise an empty
  # bundle, which keeps the package (and images naming it) buildable.
  cacert = writeFiles "nss-cacert-3.92" {
    files."etc/ssl/certs/ca-bundle.crt" =
      if builtins.pathExists caBundle then builtins.readFile caBundle else "";
    extra = "ln -s ca-bundle.crt $out/etc/ssl/certs/ca-certificates.crt";
  };

  iana-etc = writeFiles "iana-etc-20230316" {
    files."etc/protocols" = ''
      ip	0	IP		# internet protocol, pseudo protocol number
      icmp	1	ICMP		# internet control message protocol
      tcp	6	TCP		# transmission control protocol
      udp	17	UDP		# user datagram protocol
      ipv6	41	IPv6		# Internet Protocol, version 6
      ipv6-icmp	58	IPv6-ICMP	# ICMP for IPv6
    '';
    files."etc/services" = ''
      ftp		21/tcp
      ssh		22/tcp
      smtp		25/tcp		mail
      domain		53/tcp
      domain		53/udp
      http		80/tcp		www
      https		443/tcp
      https		443/udp
      git		9418/tcp
    '';
  };

  # A library shared by two tools, so that layering has a common dependency.
  inherit libshared;
  alpha = usesLibshared "alpha";
  beta = usesLibshared "beta";

  git = scriptsBin "git-2.40.1" {
    git = ''
      case "$1" in
        --version|version) echo "git version 2.40.1 (offline demo)" ;;
        *) echo "git (offline demo): '$1' is not implemented" >&2; exit 1 ;;
      esac
    '';
  };

  htop = scriptsBin "htop-3.2.2" {
    htop = ''exec ${busybox}/bin/top "$@"'';
  };

  # Image names are lower case, so `mytool` must find this by case folding.
  myTool = tinyTool "my-tool" "0.3" "my-tool";

  # Nix identifiers cannot start with a digit; nixpkgs prefixes an underscore.
  _7zip = tinyTool "7zip" "23.01" "7z";

  haskellPackages = {
    recurseForDerivations = true;
    pandoc = tinyTool "pandoc" "3.1" "pandoc";
  };

  # Two attributes differing only in case, for the lookup's tie-breaking.
  perlPackages = {
    JSON = tinyTool "perl-JSON" "4.10" "json_pp";
    Json = tinyTool "perl-Json" "0.1" "json-tiny";
  };


  # Needs `broken` at run time, so it fails because a dependency does.
  needsBroken = scriptsBin "needs-broken-1.0" {
    needs-broken = "exec ${broken}/bin/broken";
  };

  # Like a nixpkgs alias of a removed package: evaluating it throws.
  removedTool = throw "removedTool has been removed from the offline set; use myTool";

  # Builds for a long time, for timeouts. The evaluation time is part of the
  # derivation so that it is never already built: one run that waited for it
  # must not turn later timeout tests into cache hits.
  slow = build "slow-1.0" ''
    echo "slow-1.0: sleeping for 30 seconds" >&2
    sleep 30
    mkdir -p $out
  '' { nonce = toString builtins.currentTime; };

  # 120 tiny derivations in one runtime closure, for the layer budget.
  manyDeps = bigSet 120;

  # Tens of MB that gzip cannot shrink, so packing its layer takes long enough
  # for a test to kill the registry in the middle of it. Random bytes make the
  # output differ between machines; nothing depends on its exact content.
  bigdata = build "bigdata-1.0" ''
    mkdir -p $out/share/bigdata
    head -c 50331648 /dev/urandom > $out/share/bigdata/blob
  '' { };
}
