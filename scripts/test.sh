#!/usr/bin/env bash
# THE project test command. On a fresh Debian machine (as root) it installs what is missing
# (the real SPICE peers, rustfmt/clippy, cargo-fuzz), then runs, in order:
#   fmt      cargo fmt --all -- --check
#   clippy   cargo clippy --workspace --all-targets -- -D warnings
#   test     cargo test --workspace --all-features   (includes the real-peer tests)
#   fuzz     every [[bin]] of fuzz/Cargo.toml: built once, then run FUZZ_SECONDS (default 5) each
# Every step runs even when an earlier one failed; the summary at the end lists each step's
# result and time, and the exit status is non-zero when anything failed.
# Idempotent: installs only what is missing; fuzzing works on temp copies of fuzz/corpus.
#
# Environment: FUZZ_SECONDS (per target, default 5), CARGO_TARGET_DIR (honoured).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FUZZ_SECONDS="${FUZZ_SECONDS:-5}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/spice-test.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Cargo installed by rustup lives here; CI's environment may not have it on PATH.
if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

STEPS=()
RESULTS=()
TIMES=()
FAILED=0
TOTAL_START=$SECONDS

# run_step NAME COMMAND...: runs the command, records pass/fail and the time it took.
run_step() {
    local name="$1"
    shift
    echo
    echo "=== [$name] $*"
    local start=$SECONDS rc=0
    "$@" || rc=$?
    local took=$((SECONDS - start))
    STEPS+=("$name")
    TIMES+=("$took")
    if [[ $rc -eq 0 ]]; then
        RESULTS+=("ok")
        echo "=== [$name] ok (${took}s)"
    else
        RESULTS+=("FAILED (exit $rc)")
        FAILED=$((FAILED + 1))
        echo "=== [$name] FAILED with exit $rc (${took}s)"
    fi
    return 0
}

install_rust_tools() {
    local rc=0
    if ! cargo fmt --version >/dev/null 2>&1; then
        rustup component add rustfmt || rc=1
    fi
    if ! cargo clippy --version >/dev/null 2>&1; then
        rustup component add clippy || rc=1
    fi
    if ! cargo fuzz --help >/dev/null 2>&1; then
        cargo install cargo-fuzz --locked || rc=1
    fi
    return $rc
}

# The [[bin]] names of fuzz/Cargo.toml, one per line.
fuzz_targets() {
    awk '
        /^[[:space:]]*\[\[bin\]\]/ { inbin = 1; next }
        /^[[:space:]]*\[/ { inbin = 0 }
        inbin && /^[[:space:]]*name[[:space:]]*=/ {
            if (match($0, /"[^"]+"/)) print substr($0, RSTART + 1, RLENGTH - 2)
            inbin = 0
        }
    ' fuzz/Cargo.toml
}

TEST_LOG="$WORK/cargo-test.log"
cargo_test() {
    cargo test --workspace --all-features 2>&1 | tee "$TEST_LOG"
    return "${PIPESTATUS[0]}"
}

fuzz_build() {
    if [[ -z "$(fuzz_targets)" ]]; then
        echo "no [[bin]] fuzz targets in fuzz/Cargo.toml"
        return 0
    fi
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build)
}

FUZZ_FAILED=()
fuzz_run_all() {
    local t rc=0 n=0
    for t in $(fuzz_targets); do
        n=$((n + 1))
        # Work on a copy of the seed corpus so the repository stays untouched.
        mkdir -p "$WORK/corpus/$t"
        if [[ -d "fuzz/corpus/$t" ]]; then
            cp -R "fuzz/corpus/$t/." "$WORK/corpus/$t/"
        fi
        echo "--- fuzz $t (${FUZZ_SECONDS}s)"
        local start=$SECONDS
        if (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "$WORK/corpus/$t" -- \
            -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -timeout=10 \
            >"$WORK/fuzz-$t.log" 2>&1); then
            echo "--- fuzz $t ok ($((SECONDS - start))s, $(grep -Eo '#[0-9]+' "$WORK/fuzz-$t.log" | tail -n 1 | tr -d '#') execs)"
        else
            rc=1
            FUZZ_FAILED+=("$t")
            echo "--- fuzz $t FAILED; last lines of its log:"
            tail -n 40 "$WORK/fuzz-$t.log"
        fi
    done
    echo "fuzz targets run: $n, failed: ${#FUZZ_FAILED[@]} ${FUZZ_FAILED[*]:-}"
    return $rc
}

run_step peers bash "$ROOT/scripts/install-peers.sh"
run_step rust-tools install_rust_tools
run_step fmt cargo fmt --all -- --check
run_step clippy cargo clippy --workspace --all-targets -- -D warnings
run_step test cargo_test
run_step fuzz-build fuzz_build
run_step fuzz-run fuzz_run_all

echo
echo "================ summary ================"
for i in "${!STEPS[@]}"; do
    printf '%-12s %-22s %5ss\n' "${STEPS[$i]}" "${RESULTS[$i]}" "${TIMES[$i]}"
done
printf '%-12s %-22s %5ss\n' total "" "$((SECONDS - TOTAL_START))"
if [[ ${#FUZZ_FAILED[@]} -gt 0 ]]; then
    echo "fuzz targets that failed: ${FUZZ_FAILED[*]} (crash inputs under fuzz/artifacts/)"
fi
passed=0
failed=0
if [[ -f "$TEST_LOG" ]]; then
    passed=$(grep -Eo '^test result: [A-Za-z]+\. [0-9]+ passed' "$TEST_LOG" | awk '{s += $4} END {print s + 0}')
    failed=$(grep -Eo '[0-9]+ failed;' "$TEST_LOG" | awk '{s += $1} END {print s + 0}')
fi
if [[ $FAILED -ne 0 ]]; then
    echo "RESULT: FAILED ($FAILED step(s) failed)"
else
    echo "RESULT: all steps passed"
fi
echo "tests: $passed passed, $failed failed"
[[ $FAILED -eq 0 ]]
