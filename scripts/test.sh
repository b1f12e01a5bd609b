#!/usr/bin/env bash
# The whole test suite: installs what it needs, checks formatting, clippy and the dependency
# tree, runs every test of every crate, fuzzes and runs schemathesis against the server, and
# closes with one line counting the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
# The store and server tests run on SQLite and on this PostgreSQL (a fresh database per test).
GANTRY_TEST_POSTGRES_URL=$(./scripts/postgres-up.sh | tail -n 1)
export GANTRY_TEST_POSTGRES_URL
# Snapshots are assertions here: a missing or different snapshot fails instead of being written.
export INSTA_UPDATE=no
export CI=true

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Formatting, clippy (-D warnings) and cargo deny; the layering rules are tests (crates/tidy).
./scripts/lint.sh || status=1
cargo test --workspace --locked --no-fail-fast --all-targets 2>&1 | tee "$log" || status=$?
# Hostile input, for a bounded time: the fuzz targets (GANTRY_FUZZ_SECONDS in all), then
# schemathesis against the server binary the tests just built.
./scripts/fuzz.sh || status=1
./scripts/schemathesis.sh || status=1
# Every test binary prints its own `test result:` line; add them up.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) passed += $(i-1); if ($i ~ /^failed;?$/) failed += $(i-1); if ($i ~ /^ignored;?$/) ignored += $(i-1) } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
exit "$status"
