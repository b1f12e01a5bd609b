#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every test of every crate.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
# Snapshots are assertions here: a missing or different snapshot fails instead of being written.
export INSTA_UPDATE=no
export CI=true
cargo test --workspace --locked --no-fail-fast 2>&1
