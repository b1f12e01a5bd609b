#!/usr/bin/env bash
# The rules a machine checks besides the tests: formatting, clippy with every warning an error
# (the lints are the workspace's, in Cargo.toml), and cargo-deny's bans, licences and sources
# (deny.toml). Installs cargo-deny at a pinned version when it is missing. `scripts/test.sh`
# runs it; the layering and module-doc rules are tests of their own (`crates/tidy`).
#
# cargo-deny's `advisories` check needs the RustSec database from GitHub, which this machine
# cannot reach: run `cargo deny check advisories` in a CI that can.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"

log() { printf 'lint: %s\n' "$*" >&2; }

CARGO_DENY_VERSION=0.20.2
status=0
if ! cargo fmt --all --check >/dev/null; then
  log "formatting differs from rustfmt.toml; run cargo fmt --all (cargo fmt --all --check shows where)"
  status=1
fi
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings || { log "clippy found warnings"; status=1; }
if [[ "$(cargo deny --version 2>/dev/null || true)" != "cargo-deny $CARGO_DENY_VERSION" ]]; then
  log "installing cargo-deny $CARGO_DENY_VERSION"
  # Built unoptimised: it checks a few hundred crates in seconds either way, and the release
  # profile's optimisation would cost CI ten minutes instead of one.
  CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 \
    CARGO_PROFILE_RELEASE_DEBUG=0 cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION"
fi
cargo deny --log-level error check bans licenses sources || { log "cargo deny refused the dependency tree (deny.toml)"; status=1; }
echo >&2
((status == 0)) && log "fmt, clippy and cargo deny: clean"
exit "$status"
