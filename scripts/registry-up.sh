#!/usr/bin/env bash
# Starts the two image registries Gantry's tests push to, doing only what is missing: installs
# Debian's docker-registry (distribution 2.8) and apache2-utils (`htpasswd -B`: bcrypt is the
# only format the registry reads) when absent, and starts each registry when its /v2/ does not
# answer. Both listen on 127.0.0.1 only, in plain HTTP, which the Docker engine allows for
# 127.0.0.0/8 without configuration. Idempotent; run as root on Debian.
#
# Registries:
#   127.0.0.1:5000  no authentication.
#   127.0.0.1:5001  htpasswd basic authentication. The one user and its password are fixed; the
#                   script writes them as `user:password` to
#                   /var/lib/gantry-test/registry-auth/credentials (0600), which tests read.
# Each keeps its storage, configuration and htpasswd file under /var/lib/gantry-test/registry-{open,auth},
# allows deletes, and logs to /var/log/gantry-registry-{open,auth}.log.
#
# The package's own service (`docker-registry`, :5000 on every interface) is stopped and
# disabled: it would take the open registry's port.
set -euo pipefail

log() { printf 'registry-up: %s\n' "$*" >&2; }

state_root=/var/lib/gantry-test
auth_user=gantry-test
auth_password=gantry-test-registry-password
readiness_seconds=30

# shellcheck source=apt.sh
source "$(dirname "$0")/apt.sh"

missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
command -v curl >/dev/null 2>&1 || missing+=(curl ca-certificates)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

# The package starts its service on install where an init system lets it (policy-rc.d forbids it
# in containers). Stop it and keep it from coming back at boot.
if [[ -d /run/systemd/system ]]; then
  if systemctl is-active --quiet docker-registry.service || systemctl is-enabled --quiet docker-registry.service 2>/dev/null; then
    log "stopping and disabling the docker-registry package's own service"
    systemctl disable --now docker-registry.service >/dev/null 2>&1
  fi
elif [[ -f /var/run/docker-registry.pid ]] && kill -0 "$(cat /var/run/docker-registry.pid)" 2>/dev/null; then
  log "stopping the docker-registry package's own service"
  /etc/init.d/docker-registry stop >/dev/null
  update-rc.d docker-registry disable >/dev/null 2>&1 || true
fi

# The HTTP status of GET /v2/ at `address`, or 000 when nothing answers.
v2_status() {
  curl --silent --output /dev/null --max-time 2 --write-out '%{http_code}' "http://$1/v2/" || true
}

# start_registry NAME ADDRESS EXPECTED_STATUS [HTPASSWD_FILE]
start_registry() {
  local name=$1 address=$2 expected=$3 htpasswd_file=${4:-}
  local dir=$state_root/registry-$name
  local log_file=/var/log/gantry-registry-$name.log
  local status
  status=$(v2_status "$address")
  if [[ "$status" == "$expected" ]]; then
    return
  fi
  if [[ "$status" != 000 ]]; then
    log "something else answers at $address (/v2/ gave HTTP $status, expected $expected); free the port and run again"
    exit 1
  fi
  mkdir -p "$dir/storage"
  {
    printf 'version: 0.1\n'
    printf 'log:\n  level: info\n  fields:\n    service: gantry-registry-%s\n' "$name"
    printf 'storage:\n  filesystem:\n    rootdirectory: %s/storage\n  delete:\n    enabled: true\n' "$dir"
    printf 'http:\n  addr: %s\n  headers:\n    X-Content-Type-Options: [nosniff]\n' "$address"
    if [[ -n "$htpasswd_file" ]]; then
      printf 'auth:\n  htpasswd:\n    realm: gantry-test-%s\n    path: %s\n' "$name" "$htpasswd_file"
    fi
  } >"$dir/config.yml"
  # The registry runs as the package's unprivileged user: it owns its storage and reads the
  # configuration (no secret in it).
  chown -R docker-registry:docker-registry "$dir/storage"
  chmod 0700 "$dir/storage"
  chmod 0644 "$dir/config.yml"
  log "starting the $name registry at $address (log: $log_file)"
  setsid nohup setpriv --reuid=docker-registry --regid=docker-registry --init-groups \
    docker-registry serve "$dir/config.yml" >>"$log_file" 2>&1 </dev/null &
  for _ in $(seq "$readiness_seconds"); do
    [[ "$(v2_status "$address")" == "$expected" ]] && return
    sleep 1
  done
  log "the $name registry did not answer at $address within $readiness_seconds s; the end of its log:"
  tail -n 20 "$log_file" >&2 || true
  exit 1
}

start_registry open 127.0.0.1:5000 200

auth_dir=$state_root/registry-auth
mkdir -p "$auth_dir"
# The credentials file is root's (tests read it); the htpasswd file the registry's user's.
if [[ "$(cat "$auth_dir/credentials" 2>/dev/null || true)" != "$auth_user:$auth_password" ]]; then
  (umask 077 && printf '%s:%s\n' "$auth_user" "$auth_password" >"$auth_dir/credentials")
fi
chmod 0600 "$auth_dir/credentials"
if ! htpasswd -vb "$auth_dir/htpasswd" "$auth_user" "$auth_password" >/dev/null 2>&1; then
  (umask 077 && htpasswd -Bbn "$auth_user" "$auth_password" >"$auth_dir/htpasswd")
fi
chown docker-registry:docker-registry "$auth_dir/htpasswd"
chmod 0600 "$auth_dir/htpasswd"
start_registry auth 127.0.0.1:5001 401 "$auth_dir/htpasswd"

log "ready: 127.0.0.1:5000 (open), 127.0.0.1:5001 (htpasswd; credentials in $auth_dir/credentials)"
