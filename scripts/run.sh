#!/usr/bin/env bash
# THE project's main job: our reference `spice-server` serving its built-in demo desktop
# (windows with text and gradients, a moving cursor, a region animating like video), driven
# through spice-qxl's guest side, on 127.0.0.1:5900 (plain SPICE and WebSocket on one port).
#
#   scripts/run.sh                      # then: remote-viewer spice://127.0.0.1:5900
#   scripts/run.sh --password secret    # any further spice-server option is passed through
#
# Environment: LISTEN (default 127.0.0.1:5900). Stop with Ctrl-C.
# spice-html5 works too: serve /usr/share/spice-html5 and open spice_auto.html?host=127.0.0.1&port=5900.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
LISTEN="${LISTEN:-127.0.0.1:5900}"
cargo build --release -q -p spice-server --bin spice-server
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/spice-server"
echo "spice-server demo on $LISTEN; open it with:  remote-viewer spice://$LISTEN"
exec "$BIN" --listen "$LISTEN" --demo "$@"
