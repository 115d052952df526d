# ghcr.io/nixery-operator/nixery: the registry (`serve`), the one-shot builder
# (`build`, run by NixImage Jobs) and the node-local forwarder (`forward`).
#
# The registry runs nix-instantiate, nix-store and nix (path-info) and, for git
# package sources, git, inside the container with a single-user Nix store, as
# Nixery's own image does, but not as root: it runs as `nixery` (uid/gid 10000,
# as scripts/build-images.sh makes it and the operator's pods ask for), which
# owns every file of the image (the layers are packed with that owner), so Nix
# can add to /nix/store and its database. Unlike Nixery's image (Nix in
# `contents`, no database) the store here comes with a Nix database
# (dockerTools' includeNixDB): the image's own store paths are registered as
# valid, so Nix neither refetches nor garbage-collects them, and what the
# registry builds is added to the same writable /nix/store. The database covers
# the closure of `contents`, which is why everything the configuration refers
# to is listed there as well.
{ pkgs
, program      # the registry program (program.nix): lib/nixery/{registry,nix,node_modules}
, version
, nodejs       # the Node.js 24 the program runs on
, nix ? pkgs.nix
, name ? "ghcr.io/nixery-operator/nixery"
, tag ? version
, uid ? 10000
, gid ? 10000
, substituters ? [ "https://cache.nixos.org" ]
, trustedPublicKeys ? [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ]
}:

let
  inherit (builtins) concatStringsSep map;

  programPath = "${program}/${program.programDir}";

  # Tools the registry and Nix's builders (no sandbox) find on PATH.
  tools = [
    nix               # nix-instantiate, nix-store, nix
    pkgs.git          # git ls-remote; builtins.fetchGit
    pkgs.openssh      # git over ssh
    pkgs.coreutils
    pkgs.bashInteractive
    pkgs.gnutar
    pkgs.gzip
  ];

  certFile = "${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt";

  # The product's own Nix settings (../nix.conf: single-user, no build users,
  # no sandbox, local builds), which the registry also passes on every Nix
  # call, so that Nix run by hand in the container (`kubectl exec`) behaves the
  # same; plus the binary cache, which is this image's choice.
  productSettings = concatStringsSep "\n" (builtins.filter
    (line: builtins.isString line && line != "" && builtins.match "[[:space:]]*(#.*)?" line == null)
    (builtins.split "\n" (builtins.readFile ../nix.conf)));
  nixConf = ''
    ${productSettings}
    substituters = ${concatStringsSep " " substituters}
    trusted-public-keys = ${concatStringsSep " " trustedPublicKeys}
  '';

  # `nixery` on PATH, for `kubectl exec` and `docker run --entrypoint nixery`.
  launcher = pkgs.writeShellScriptBin "nixery" ''
    exec ${nodejs}/bin/node ${programPath}/registry/bin/nixery.js "$@"
  '';
in
pkgs.dockerTools.buildLayeredImage {
  inherit name tag;
  # Reproducible: a fixed creation time (and file times), no build-host state.
  created = "1970-01-01T00:00:01Z";
  # Every file of every layer (the store, the Nix database, the customisation layer) belongs to
  # the user the registry runs as: single-user Nix writes where it owns the store.
  inherit uid gid;
  uname = "nixery";
  gname = "nixery";

  # The static busybox is what the bundled offline package set (nix/offline) builds from; it looks
  # for it at /usr/bin/busybox, so an instance without a package source works out of the box.
  contents = [ program nodejs launcher pkgs.cacert pkgs.iana-etc pkgs.pkgsStatic.busybox ] ++ tools;
  includeNixDB = true;

  # Runs in the customisation layer's root, after the Nix database is written.
  extraCommands = ''
    mkdir -p tmp var/tmp root etc/nix usr/bin var/lib/nixery nix/var/nix/gcroots nix/var/nix/profiles
    chmod 1777 tmp var/tmp
    ln -sf ${pkgs.coreutils}/bin/env usr/bin/env
    ln -sf ${pkgs.pkgsStatic.busybox}/bin/busybox usr/bin/busybox
    # contents are symlinked in; these files are the image's own.
    rm -f etc/nix/nix.conf etc/passwd etc/group etc/nsswitch.conf
    cat > etc/nix/nix.conf <<'EOF'
    ${nixConf}
    EOF
    cat > etc/passwd <<'EOF'
    root:x:0:0:root:/root:${pkgs.bashInteractive}/bin/bash
    nixery:x:${toString uid}:${toString gid}:nixery registry:/var/lib/nixery:${pkgs.bashInteractive}/bin/bash
    nobody:x:65534:65534:nobody:/var/empty:/bin/false
    EOF
    cat > etc/group <<'EOF'
    root:x:0:
    nixery:x:${toString gid}:
    nixbld:x:30000:
    nogroup:x:65534:
    EOF
    echo 'hosts: files dns' > etc/nsswitch.conf
  '';

  config = {
    Entrypoint = [ "${nodejs}/bin/node" "${programPath}/registry/bin/nixery.js" ];
    Cmd = [ "serve" ];
    User = "${toString uid}:${toString gid}";
    WorkingDir = "/var/lib/nixery";
    ExposedPorts = { "8080/tcp" = { }; };
    Env = [
      "PATH=${concatStringsSep ":" (map (p: "${p}/bin") ([ launcher nodejs ] ++ tools))}:/bin:/usr/bin"
      "NIX_CONFIG=${nixConf}"
      "SSL_CERT_FILE=${certFile}"
      "NIX_SSL_CERT_FILE=${certFile}"
      "GIT_SSL_CAINFO=${certFile}"
      "HOME=/var/lib/nixery"
      "USER=nixery"
    ];
    Labels = {
      "org.opencontainers.image.title" = "nixery";
      "org.opencontainers.image.description" = "A container registry that builds images from Nix package lists on demand";
      "org.opencontainers.image.version" = version;
      "org.opencontainers.image.licenses" = "Apache-2.0";
    };
  };
}
