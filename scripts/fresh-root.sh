#!/usr/bin/env bash
# Runs a command of this project on a fresh Debian 12 machine: a new bookworm root file system
# made by mmdebstrap from Debian's packages, with a copy of this checkout in it, entered as the
# root of its own namespaces with a clean environment. Whatever the project needs must then be installed by its own
# scripts, so a missing install step fails here instead of on a new user's machine.
#
#   bash scripts/fresh-root.sh                  # runs the README's test command: bash scripts/test.sh
#   bash scripts/fresh-root.sh bash scripts/start.sh
#
# Run as root (CI does). The root lives in .fresh-root/ and is made anew every run; a pristine
# tarball of what mmdebstrap produced is kept in /var/cache/nixery-operator for up to a week,
# since bootstrapping takes ~40 s. Everything runs in mount and PID namespaces of its own, so /proc,
# /sys and /dev are unmounted when it ends, also on failure, and no process outlives it.
# Carried in from this machine, and nothing else: its DNS configuration and the extra CA
# certificates in /usr/local/share/ca-certificates (this network's trust: without them npm
# cannot reach its registry where HTTPS is intercepted).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT="$REPO/.fresh-root"
CACHE_DIR=/var/cache/nixery-operator
BASE="$CACHE_DIR/bookworm-minbase.tar"
PROJECT_DIR=/root/nixery-operator
if (($# == 0)); then set -- bash scripts/test.sh; fi

log() { printf '[fresh-root %4ds] %s\n' "$SECONDS" "$*" >&2; }

if [ "$(id -u)" != 0 ]; then log 'run as root: it bootstraps a root file system and enters it with chroot'; exit 1; fi
if ! command -v mmdebstrap >/dev/null; then
  log 'installing mmdebstrap'
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

if [ ! -s "$BASE" ] || [ -n "$(find "$BASE" -mtime +7)" ]; then
  log "bootstrapping a Debian bookworm root (mmdebstrap --variant=minbase) into $BASE"
  mkdir -p "$CACHE_DIR"
  # mmdebstrap writes a tarball when the target's name ends in .tar.
  mmdebstrap --quiet --variant=minbase bookworm "$CACHE_DIR/incomplete.tar"
  mv "$CACHE_DIR/incomplete.tar" "$BASE"
fi


# A root left by an earlier run: nothing may still be mounted below it.
if [ -e "$ROOT" ]; then
  if findmnt -rn -o TARGET | grep -q "^$ROOT/"; then log "something is still mounted below $ROOT"; exit 1; fi
  rm -rf "$ROOT"
fi
mkdir -p "$ROOT"
tar -xf "$BASE" -C "$ROOT"

# This machine's part: name resolution and this network's certificate authorities (the
# ca-certificates package, which setup.sh installs, adds them to the system's bundle). A new
# Debian machine has /etc/hosts; a bootstrapped root has none. policy-rc.d keeps package
# scripts from starting services (nginx, docker-registry) during the setup.
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
mkdir -p "$ROOT/usr/local/share/ca-certificates"
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
fi
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"

# The checkout as git sees it: tracked and new files, nothing ignored (no node_modules, .tools
# or dist, which the project's scripts must make themselves).
mkdir -p "$ROOT$PROJECT_DIR"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
  | tar --null -T - -cf -) | tar -xf - -C "$ROOT$PROJECT_DIR"

log "running in the fresh root: $*"
status=0
# Namespaces of its own: mounts and processes vanish with the command, however it ends (PID 1 of
# the PID namespace is killed with unshare, and takes every process left in the root with it).
# pivot_root, not chroot: Nix re-enters its mount namespace (setns) for the programs it runs, such
# as git for fetchGit, and that puts a chrooted process back at the namespace's real root.
unshare --mount --pid --fork --kill-child --propagation private -- /bin/bash -c '
  set -e
  root=$1; dir=$2; shift 2
  # A mount point as its root, as on a real machine (pivot_root needs one, and so does
  # `unshare --propagation`, which the test cluster runs pods with).
  mount --bind "$root" "$root"
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs -o mode=0755 tmpfs "$root/run"
  cd "$root"
  mkdir -p .host-root
  pivot_root . .host-root
  umount -l /.host-root
  rmdir /.host-root
  exec /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 TERM=dumb ${CI:+CI=$CI} /bin/bash -c "cd \"\$0\" && exec \"\$@\"" "$dir" "$@"
' fresh-root "$ROOT" "$PROJECT_DIR" "$@" || status=$?
log "exit status $status"
exit "$status"
