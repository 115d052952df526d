#!/usr/bin/env bash
# Copies the CRDs from crds/ (the single source of truth) into the Helm chart's crds/ directory.
# `--check` changes nothing and fails when the chart's copies differ (e2e/chart runs it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC="$ROOT/crds"
DEST="$ROOT/charts/nixery-operator/crds"
check=false
case "${1:-}" in
  --check) check=true ;;
  '') ;;
  *) echo "usage: $0 [--check]" >&2; exit 64 ;;
esac

shopt -s nullglob
sources=("$SRC"/*.yaml)
if [ ${#sources[@]} -eq 0 ]; then echo "no CRDs in $SRC" >&2; exit 1; fi

drift=0
for src in "${sources[@]}"; do
  dest="$DEST/$(basename "$src")"
  if ! cmp -s "$src" "$dest"; then
    drift=1
    if $check; then echo "out of date: ${dest#"$ROOT"/} (run scripts/sync-chart-crds.sh)" >&2
    else mkdir -p "$DEST" && cp "$src" "$dest" && echo "copied ${src#"$ROOT"/} -> ${dest#"$ROOT"/}"; fi
  fi
done
# A CRD removed from crds/ must leave the chart too.
for dest in "$DEST"/*.yaml; do
  if [ ! -e "$SRC/$(basename "$dest")" ]; then
    drift=1
    if $check; then echo "not in crds/: ${dest#"$ROOT"/}" >&2
    else rm "$dest" && echo "removed ${dest#"$ROOT"/}"; fi
  fi
done
if $check && [ $drift -ne 0 ]; then exit 1; fi
exit 0
