#!/usr/bin/env bash
# Installs the real SPICE peers the interoperability tests drive (see shared PEERS.md):
# QEMU with spice-server, spice-gtk (spicy-screenshot, Python bindings), remote-viewer, Xvfb,
# spice-html5, Chromium and ImageMagick, from Debian's packages.
#
# Idempotent: does nothing when every package is installed and every program is on PATH.
# Needs root (or password-less sudo) only when something is missing.
set -euo pipefail

PACKAGES=(
    qemu-system-x86 qemu-system-gui spice-client-gtk gir1.2-spiceclientglib-2.0
    python3-gi xvfb virt-viewer spice-html5 chromium imagemagick nodejs
)
PROGRAMS=(qemu-system-x86_64 spicy-screenshot remote-viewer Xvfb chromium node npm)

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
            echo "$p"
        fi
    done
}

missing_programs() {
    local p
    for p in "${PROGRAMS[@]}"; do
        command -v "$p" >/dev/null 2>&1 || echo "$p"
    done
}

pkgs="$(missing_packages | tr '\n' ' ')"
progs="$(missing_programs | tr '\n' ' ')"
# playwright-core (npm) drives spice-html5 in headless Chromium; it lives in a per-user cache.
NPM_PREFIX="${HOME:-/root}/.cache/spice-rs/npm"
install_playwright() {
    if [[ ! -f "$NPM_PREFIX/node_modules/playwright-core/package.json" ]]; then
        mkdir -p "$NPM_PREFIX"
        npm install --no-audit --no-fund --prefix "$NPM_PREFIX" playwright-core@1
    fi
}

if [[ -z "${pkgs// /}" && -z "${progs// /}" ]]; then
    install_playwright
    echo "install-peers: all real peers present (${PROGRAMS[*]}, playwright-core)"
    exit 0
fi
echo "install-peers: missing packages: ${pkgs:-none}; missing programs: ${progs:-none}"

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-peers: apt-get not found: install by hand: ${PACKAGES[*]}" >&2
    exit 1
fi

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "install-peers: not root and no password-less sudo; as root run:" >&2
        echo "  apt-get update && apt-get install -y --no-install-recommends ${PACKAGES[*]}" >&2
        exit 1
    fi
fi

# Wait (up to 10 min) for another apt/dpkg run to release its locks instead of failing.
APT_OPTS=(-o DPkg::Lock::Timeout=600)
"${SUDO[@]}" apt-get "${APT_OPTS[@]}" update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y \
    --no-install-recommends "${PACKAGES[@]}"

progs="$(missing_programs | tr '\n' ' ')"
if [[ -n "${progs// /}" ]]; then
    echo "install-peers: still missing after install: $progs" >&2
    exit 1
fi
install_playwright
echo "install-peers: done"
