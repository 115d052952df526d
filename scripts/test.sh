#!/usr/bin/env bash
# Sets up this machine (see setup.sh) and runs every test: type checks, unit tests and the
# end-to-end suites (real Nix, the registry as a process, skopeo and umoci, the project's images
# built by build-images.sh and run in the test cluster).
set -euo pipefail
"$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$NIXERY_ROOT"
npm run --silent typecheck
# The project's container images, which e2e/images and the chart suite run.
bash scripts/build-images.sh .images
npm test --silent
