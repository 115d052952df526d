# ghcr.io/nixery-operator/operator: the controller. Node.js and the operator
# with its run-time node_modules (the registry workspace it imports as
# @nixery/registry included), nothing else: no shell, no Nix. It runs as
# uid/gid 65532 and writes nothing, so it works with a read-only root file
# system (the chart's default); /tmp exists for anything that insists.
{ pkgs
, program      # the operator program (program.nix): lib/nixery/{operator,registry,node_modules}
, version
, nodejs       # the Node.js 24 the program runs on
, name ? "ghcr.io/nixery-operator/operator"
, tag ? version
, uid ? 65532
, gid ? 65532
}:

let
  programPath = "${program}/${program.programDir}";
in
pkgs.dockerTools.buildLayeredImage {
  inherit name tag;
  created = "1970-01-01T00:00:01Z";

  contents = [ program nodejs ];

  extraCommands = ''
    mkdir -p tmp etc
    chmod 1777 tmp
    rm -f etc/passwd etc/group
    cat > etc/passwd <<'EOF'
    root:x:0:0:root:/root:/sbin/nologin
    nonroot:x:${toString uid}:${toString gid}:nonroot:/tmp:/sbin/nologin
    EOF
    cat > etc/group <<'EOF'
    root:x:0:
    nonroot:x:${toString gid}:
    EOF
  '';

  config = {
    Entrypoint = [ "${nodejs}/bin/node" "${programPath}/operator/bin/nixery-operator.js" ];
    User = "${toString uid}:${toString gid}";
    WorkingDir = "/tmp";
    Env = [
      "PATH=${nodejs}/bin"
      "HOME=/tmp"
    ];
    Labels = {
      "org.opencontainers.image.title" = "nixery-operator";
      "org.opencontainers.image.description" = "Kubernetes operator for Nixery registries and pre-built Nix images";
      "org.opencontainers.image.version" = version;
      "org.opencontainers.image.licenses" = "Apache-2.0";
    };
  };
}
