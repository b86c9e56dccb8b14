#!/usr/bin/env bash
# A protocol-analysis session (not the main job, which is scripts/run.sh):
# QEMU's real spice-server shows the firmware screen on a QXL device, and `spice-dump` — our
# protocol analyser built on spice-proto — listens on 127.0.0.1:5900 in front of it, printing
# every message of every channel, both directions, as spice-proto decodes (and re-encodes) it.
#
#   scripts/analyse-qemu.sh             # then: remote-viewer spice://127.0.0.1:5900
#
# Environment: LISTEN (default 127.0.0.1:5900), QEMU_PORT (default 5930),
# IMAGE_COMPRESSION (default auto_glz). Stop with Ctrl-C.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
LISTEN="${LISTEN:-127.0.0.1:5900}"
QEMU_PORT="${QEMU_PORT:-5930}"
IMAGE_COMPRESSION="${IMAGE_COMPRESSION:-auto_glz}"

command -v qemu-system-x86_64 >/dev/null || bash scripts/install-peers.sh
cargo build --release -q -p spice-testpeers --bin spice-dump
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/spice-dump"

RUN="$(mktemp -d "${TMPDIR:-/tmp}/spice-run.XXXXXX")"
qemu-system-x86_64 -display none -vga qxl -m 128 -monitor none -serial none -no-reboot \
    -spice "port=$QEMU_PORT,addr=127.0.0.1,disable-ticketing=on,image-compression=$IMAGE_COMPRESSION" \
    -device virtio-serial -chardev spicevmc,id=vdagent,name=vdagent \
    -device virtserialport,chardev=vdagent,name=com.redhat.spice.0 \
    -qmp "unix:$RUN/qmp.sock,server=on,wait=off" >"$RUN/qemu.log" 2>&1 &
QEMU_PID=$!
trap 'kill $QEMU_PID 2>/dev/null; rm -rf "$RUN"' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$QEMU_PORT") 2>/dev/null && break
    kill -0 $QEMU_PID 2>/dev/null || { cat "$RUN/qemu.log"; exit 1; }
    sleep 0.2
done
echo "QEMU's spice-server on 127.0.0.1:$QEMU_PORT; open the session through the analyser:"
echo "    remote-viewer spice://$LISTEN"
"$BIN" --listen "$LISTEN" --target "127.0.0.1:$QEMU_PORT"
