#!/usr/bin/env bash
# Builds the project's two container images from this checkout, with Debian's packages and the
# npm registry only (no Docker, no nixpkgs):
#
#   bash scripts/build-images.sh DIR
#
# writes DIR/nixery.oci.tar (the registry: `serve`, and `build` for NixImage Jobs, `forward` for
# the node-local DaemonSet) and DIR/operator.oci.tar, OCI archives that
# `skopeo copy oci-archive:DIR/nixery.oci.tar docker://REGISTRY/NAME:TAG` pushes anywhere.
# Run as root on Debian (it bootstraps root file systems with mmdebstrap).
#
# Each image is two layers: a Debian bookworm root made by mmdebstrap (the registry's with Nix,
# git, CA certificates and a static busybox for the bundled package set; the operator's with only
# the C and C++ runtime Node needs), then the project's layer (Node 24 from the npm registry,
# stripped; the built programs with their production npm dependencies; for the registry, nix/ and
# its Nix settings). The registry runs as `nixery` (10000:10000), which owns /nix and
# /var/lib/nixery, so Nix runs single-user; the operator as 65532:65532.
#
# Reproducible: every time in the layers is SOURCE_DATE_EPOCH (default: the time of the last
# commit), entries are sorted, owners numeric, gzip has no name or time. Two builds of one commit
# give the same digests as long as Debian's bookworm archive serves the same package versions
# (security and point-release updates change the Debian layer) and npm resolves the lockfile to
# the same tarballs (it does: integrity hashes).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if (($# != 1)); then echo "usage: bash scripts/build-images.sh DIR" >&2; exit 2; fi
OUT=$(realpath -m "$1")

log() { printf '[build-images %4ds] %s\n' "$SECONDS" "$*" >&2; }
if [ "$(id -u)" != 0 ]; then log 'run as root: mmdebstrap needs it to bootstrap the Debian roots'; exit 1; fi

"$REPO/scripts/setup.sh"
source "$REPO/scripts/env.sh"
cd "$REPO"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  if ! SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null); then
    # A copy without .git (the fresh root CI runs in): the newest file of the sources.
    SOURCE_DATE_EPOCH=$(find package-lock.json registry/src operator/src nix scripts -type f -printf '%T@\n' | sort -n | tail -1 | cut -d. -f1)
    log "not a git checkout: SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, the newest source file's time"
  fi
fi
export SOURCE_DATE_EPOCH
VERSION=$(node -p 'require("./package.json").version')
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then REVISION="$REVISION-dirty"; fi
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
NODE_BIN="$NODE_HOME/bin/node"
REGISTRY_UID=10000
OPERATOR_UID=65532

WORK=$(mktemp -d /var/tmp/nixery-images.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

log "building the programs (tsc -b)"
npm run --silent build

# The production dependencies of one workspace, as `npm ci` lays them out for it: node_modules
# beside the workspace folders, with @nixery/registry a link to ../../registry.
production_modules() { # WORKSPACE TARGET_DIR
  local stage="$WORK/npm-$1"
  mkdir -p "$stage"
  cp package.json package-lock.json "$stage/"
  for w in $(node -p 'require("./package.json").workspaces.join(" ")'); do
    mkdir -p "$stage/$w"
    cp "$w/package.json" "$stage/$w/"
  done
  (cd "$stage" && npm ci --silent --omit=dev --workspace="$1" --no-audit --no-fund)
  # Links to the other workspaces (test-support: a dev dependency npm still links) and npm's
  # bookkeeping have no place in an image; of the native addon, only the addon itself.
  find "$stage/node_modules/@nixery" -maxdepth 1 -type l ! -name registry -delete
  rm -rf "$stage/node_modules/.bin" "$stage/node_modules/.package-lock.json"
  # What Node never loads from node_modules: source maps, TypeScript sources and declarations
  # (half of the operator's dependencies by size).
  find "$stage/node_modules" -type f \( -name '*.map' -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' \) -delete
  local gyp
  while IFS= read -r -d '' gyp; do
    find "$(dirname "$gyp")/build" -type f ! -path '*/build/Release/*.node' -delete
    find "$(dirname "$gyp")/build" -depth -type d -empty -delete
    find "$(dirname "$gyp")/build/Release" -mindepth 2 -delete 2>/dev/null || true
  done < <(find "$stage/node_modules" -name binding.gyp -print0)
  mv "$stage/node_modules" "$2/node_modules"
}

# A layer tar of a staged directory: sorted, numeric root owners, every time SOURCE_DATE_EPOCH.
layer_tar() { # DIR TAR
  tar --create --file="$2" --directory="$1" --sort=name --format=gnu --numeric-owner --owner=0 --group=0 \
    --mtime="@$SOURCE_DATE_EPOCH" .
}

# A Debian bookworm root as a layer tar. mmdebstrap makes tarballs reproducible under
# SOURCE_DATE_EPOCH; /dev stays empty (the runtime mounts it); no documentation or translations.
# Packages this machine's apt has downloaded already (setup.sh installed most of the registry's)
# are taken from its cache instead of being downloaded again; apt checks their hashes.
debian_layer() { # VARIANT PACKAGES TAR CUSTOMIZE_SCRIPT
  mmdebstrap --quiet --variant="$1" --include="$2" \
    --aptopt='Apt::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --skip=download/empty --setup-hook="$WORK/reuse-apt-cache.sh" \
    --skip=output/dev --customize-hook="$4" bookworm "$3"
}
# Hooks are scripts (mmdebstrap runs them with the root's path as $1).
hook() { # NAME, script on stdin
  cat > "$WORK/$1"
  chmod +x "$WORK/$1"
}
hook reuse-apt-cache.sh <<'EOF'
#!/bin/sh
set -e
mkdir -p "$1/var/cache/apt/archives"
find /var/cache/apt/archives -maxdepth 1 -name '*.deb' -exec cp -l -t "$1/var/cache/apt/archives" {} + 2>/dev/null ||
  find /var/cache/apt/archives -maxdepth 1 -name '*.deb' -exec cp -t "$1/var/cache/apt/archives" {} +
EOF

image_json() { # FILE JSON: checked and written compactly
  node -e '
    const [file, json] = process.argv.slice(1);
    require("fs").writeFileSync(file, JSON.stringify(JSON.parse(json)));
  ' "$@"
}

labels() { # TITLE DESCRIPTION
  printf '{"org.opencontainers.image.title":"%s","org.opencontainers.image.description":"%s","org.opencontainers.image.version":"%s","org.opencontainers.image.revision":"%s","org.opencontainers.image.created":"%s","org.opencontainers.image.licenses":"Apache-2.0","org.opencontainers.image.source":"https://github.com/nixery-operator/nixery-operator"}' \
    "$1" "$2" "$VERSION" "$REVISION" "$CREATED"
}

build_registry() {
# ---- the registry image ----------------------------------------------------------------------
log "registry: Debian root with Nix, git, CA certificates and busybox"
hook registry-root.sh <<EOF
#!/bin/sh
set -e
echo 'nixery:x:$REGISTRY_UID:$REGISTRY_UID:nixery registry:/var/lib/nixery:/bin/sh' >> "\$1/etc/passwd"
echo 'nixery:x:$REGISTRY_UID:' >> "\$1/etc/group"
echo 'nixery:!:0::::::' >> "\$1/etc/shadow"
# Single-user Nix: the registry's user owns the store and the database; its home holds Nix's
# caches (fetchGit) and, unless STORAGE_PATH says otherwise, the registry's storage.
mkdir -p "\$1/nix/store" "\$1/nix/var/nix" "\$1/var/lib/nixery" "\$1/dev"
chown -R $REGISTRY_UID:$REGISTRY_UID "\$1/nix" "\$1/var/lib/nixery"
chmod 0755 "\$1/nix" "\$1/nix/store" "\$1/var/lib/nixery"
rm -rf "\$1/var/log"/*
EOF
debian_layer essential nix-bin,git,ca-certificates,busybox-static "$WORK/registry-debian.tar" "$WORK/registry-root.sh"

log "registry: the program, Node and the Nix files"
APP="$WORK/registry-app"
mkdir -p "$APP/usr/local/bin" "$APP/opt/nixery/registry" "$APP/opt/nixery/nix" "$APP/etc/nix" "$APP/dev"
strip --strip-all -o "$APP/usr/local/bin/node" "$NODE_BIN"
cp -r registry/bin registry/dist registry/package.json "$APP/opt/nixery/registry/"
cp -r nix/resolve.nix nix/load-source.nix nix/nix.conf nix/offline "$APP/opt/nixery/nix/"
production_modules registry "$APP/opt/nixery"
printf '#!/bin/sh\nexec /usr/local/bin/node /opt/nixery/registry/bin/nixery.js "$@"\n' > "$APP/usr/local/bin/nixery"
# Nix run by hand in the container (kubectl exec) gets the settings the registry passes itself.
sed -e 's/#.*//' -e '/^[[:space:]]*$/d' nix/nix.conf > "$APP/etc/nix/nix.conf"
chmod -R u=rwX,go=rX "$APP"
chmod 0755 "$APP/usr/local/bin/node" "$APP/usr/local/bin/nixery"
layer_tar "$APP" "$WORK/registry-app.tar"

image_json "$WORK/registry-config.json" "{
  \"User\": \"$REGISTRY_UID:$REGISTRY_UID\",
  \"Entrypoint\": [\"/usr/local/bin/node\", \"/opt/nixery/registry/bin/nixery.js\"],
  \"Cmd\": [\"serve\"],
  \"Env\": [\"PATH=/usr/local/bin:/usr/bin:/bin\", \"HOME=/var/lib/nixery\", \"USER=nixery\", \"LANG=C.UTF-8\"],
  \"WorkingDir\": \"/var/lib/nixery\",
  \"ExposedPorts\": {\"8080/tcp\": {}},
  \"Labels\": $(labels nixery 'A container registry that builds images from Nix package lists on demand')
}"
node scripts/images/oci-archive.ts --out "$OUT/nixery.oci.tar" --ref "$VERSION" --created "$SOURCE_DATE_EPOCH" \
  --config "$WORK/registry-config.json" "$WORK/registry-debian.tar" "$WORK/registry-app.tar" > "$WORK/registry.digest"

}

build_operator() {
# ---- the operator image ----------------------------------------------------------------------
# No shell, no package manager: the packages are only unpacked (no maintainer scripts), and the
# users are written here.
log "operator: Debian root with the C and C++ runtime"
hook operator-root.sh <<EOF
#!/bin/sh
set -e
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:$OPERATOR_UID:$OPERATOR_UID:nonroot:/home/nonroot:/sbin/nologin\n' > "\$1/etc/passwd"
printf 'root:x:0:\nnonroot:x:$OPERATOR_UID:\n' > "\$1/etc/group"
mkdir -p "\$1/home/nonroot" "\$1/tmp" "\$1/dev"
chown $OPERATOR_UID:$OPERATOR_UID "\$1/home/nonroot"
chmod 1777 "\$1/tmp"
rm -rf "\$1/etc/apt" "\$1/var/lib/apt" "\$1/var/cache/apt" "\$1/var/log"/*
EOF
debian_layer extract base-files,netbase,tzdata,libc6,libstdc++6,libgcc-s1 "$WORK/operator-debian.tar" "$WORK/operator-root.sh"

log "operator: the program and Node"
APP="$WORK/operator-app"
mkdir -p "$APP/usr/local/bin" "$APP/opt/nixery/operator" "$APP/opt/nixery/registry" "$APP/dev"
strip --strip-all -o "$APP/usr/local/bin/node" "$NODE_BIN"
cp -r operator/bin operator/dist operator/package.json "$APP/opt/nixery/operator/"
cp -r registry/dist registry/package.json "$APP/opt/nixery/registry/"
production_modules operator "$APP/opt/nixery"
chmod -R u=rwX,go=rX "$APP"
chmod 0755 "$APP/usr/local/bin/node"
layer_tar "$APP" "$WORK/operator-app.tar"

image_json "$WORK/operator-config.json" "{
  \"User\": \"$OPERATOR_UID:$OPERATOR_UID\",
  \"Entrypoint\": [\"/usr/local/bin/node\", \"/opt/nixery/operator/bin/nixery-operator.js\"],
  \"Env\": [\"PATH=/usr/local/bin:/usr/bin:/bin\", \"HOME=/home/nonroot\"],
  \"WorkingDir\": \"/\",
  \"Labels\": $(labels nixery-operator 'The Kubernetes operator of Nixery: NixeryInstance and NixImage')
}"
node scripts/images/oci-archive.ts --out "$OUT/operator.oci.tar" --ref "$VERSION" --created "$SOURCE_DATE_EPOCH" \
  --config "$WORK/operator-config.json" "$WORK/operator-debian.tar" "$WORK/operator-app.tar" > "$WORK/operator.digest"

}

# The two images have nothing in common: build them side by side (mmdebstrap and dpkg are mostly
# single-threaded; so is gzip).
build_registry & registry_pid=$!
build_operator & operator_pid=$!
status=0
wait "$registry_pid" || { log "the registry image failed"; status=1; }
wait "$operator_pid" || { log "the operator image failed"; status=1; }
if ((status)); then exit 1; fi

size() { du -m "$1" | cut -f1; }
log "done: $OUT/nixery.oci.tar ($(size "$OUT/nixery.oci.tar") MiB, $(cat "$WORK/registry.digest")), $OUT/operator.oci.tar ($(size "$OUT/operator.oci.tar") MiB, $(cat "$WORK/operator.digest"))"
