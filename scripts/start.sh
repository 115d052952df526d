#!/usr/bin/env bash
# Sets up this machine (see setup.sh) and runs the registry on the embedded defaults:
# port 8080 (PORT), file-system storage in ./.data/storage (STORAGE_PATH), and the bundled
# offline package set unless NIXERY_CHANNEL, NIXERY_PKGS_REPO or NIXERY_PKGS_PATH is set.
set -euo pipefail
"$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$NIXERY_ROOT"
exec node registry/bin/nixery.js serve "$@"
