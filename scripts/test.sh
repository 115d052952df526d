#!/usr/bin/env bash
# Sets up this machine (see setup.sh) and runs every test: type checks, unit tests and the
# end-to-end suites (real Nix, the registry as a process, skopeo and umoci).
set -euo pipefail
"$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$NIXERY_ROOT"
npm run --silent typecheck
npm test --silent
