#!/usr/bin/env bash
# Installs what building and testing Gantry needs, when it is missing. Idempotent: safe to run
# again and again; it changes nothing that is already in place. Run as root on Debian.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

# shellcheck source=apt.sh
source "$(dirname "$0")/apt.sh"

# Rust: the toolchain from rustup when present (Gantry needs Rust 1.94 or later for sqlx 0.9),
# otherwise Debian's packages, which are new enough only on Debian 13 (trixie) and later.
if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  log "installing Rust from Debian's packages"
  apt_install cargo rustc
fi
version=$(rustc --version | awk '{print $2}')
if [[ "$(printf '%s\n' 1.94.0 "$version" | sort -V | head -n1)" != 1.94.0 ]]; then
  log "rustc $version is older than 1.94, which Gantry needs (sqlx 0.9, edition 2024)"
  exit 1
fi

# git: `gantry plan` reads the trigger context from the local repository.
command -v git >/dev/null 2>&1 || { log "installing git"; apt_install git ca-certificates; }

# Chromium and its WebDriver: the web UI's tests drive a real browser, headless.
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium and chromium-driver"
  apt_install chromium chromium-driver
fi
# ip: the browser tests give Chromium a network namespace of its own with only loopback up.
command -v ip >/dev/null 2>&1 || [[ -x /usr/sbin/ip ]] || { log "installing iproute2"; apt_install iproute2; }

# A Docker engine and the local test images (`gantry exec` and its tests run on it).
"$(dirname "$0")/docker-up.sh"

# Two image registries on 127.0.0.1 (open on :5000, htpasswd on :5001) that build tests push to.
"$(dirname "$0")/registry-up.sh"

log "ready: $(cargo --version), $(git --version), $(docker version --format 'Docker {{.Server.Version}}')"
