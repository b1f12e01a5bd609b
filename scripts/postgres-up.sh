#!/usr/bin/env bash
# Makes a PostgreSQL server ready for Gantry's tests, doing only what is missing: installs
# Debian's postgresql when no server is installed, creates the `main` cluster of the newest
# installed version when it has none, makes it listen on 127.0.0.1 only, starts it, and creates
# the test role and database. Idempotent; run as root on Debian.
#
# The tests' role may create databases (each store test makes a fresh one and drops it). The
# last line on stdout is the URL to export for them:
#   export GANTRY_TEST_POSTGRES_URL=$(scripts/postgres-up.sh | tail -n 1)
set -euo pipefail

log() { printf 'postgres-up: %s\n' "$*" >&2; }

role=gantry
password=gantry
database=gantry_test
cluster=main

# shellcheck source=apt.sh
source "$(dirname "$0")/apt.sh"

newest_version() {
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
  if [[ -n "$dir" && -x "/usr/lib/postgresql/$dir/bin/postgres" ]]; then
    printf '%s\n' "$dir"
  fi
}

# The server.
version=$(newest_version)
if [[ -z "$version" ]] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
  log "installing postgresql"
  apt_install postgresql
  version=$(newest_version)
fi
if [[ -z "$version" ]]; then
  log "no PostgreSQL server found under /usr/lib/postgresql after installing postgresql"
  exit 1
fi

# The cluster. Debian's package creates `main` unless its configuration says not to.
if ! pg_lsclusters -h | awk -v version="$version" -v cluster="$cluster" '$1 == version && $2 == cluster { found = 1 } END { exit !found }'; then
  log "creating the cluster $version/$cluster"
  pg_createcluster "$version" "$cluster" >/dev/null
fi

# Listen on loopback only, over IPv4 (the URL below names 127.0.0.1).
config_dir=/etc/postgresql/$version/$cluster/conf.d
config_file=$config_dir/gantry.conf
wanted_config="# Written by Gantry's scripts/postgres-up.sh.
listen_addresses = '127.0.0.1'"
config_changed=
mkdir -p "$config_dir"
if [[ ! -f "$config_file" || "$(cat "$config_file")" != "$wanted_config" ]]; then
  printf '%s\n' "$wanted_config" >"$config_file"
  config_changed=1
fi

# The socket folder lives on a tmpfs on many machines and containers: gone after a reboot.
install -d -o postgres -g postgres -m 2775 /var/run/postgresql

status=$(pg_lsclusters -h | awk -v version="$version" -v cluster="$cluster" '$1 == version && $2 == cluster { print $4 }')
if [[ "$status" == online* ]]; then
  if [[ -n "$config_changed" ]]; then
    log "restarting $version/$cluster to listen on 127.0.0.1 only"
    pg_ctlcluster "$version" "$cluster" restart
  fi
else
  log "starting $version/$cluster"
  pg_ctlcluster "$version" "$cluster" start
fi

port=$(pg_lsclusters -h | awk -v version="$version" -v cluster="$cluster" '$1 == version && $2 == cluster { print $3 }')
for _ in $(seq 30); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 1
done
if ! pg_isready -q -h 127.0.0.1 -p "$port"; then
  log "PostgreSQL $version/$cluster does not answer on 127.0.0.1:$port; the end of its log:"
  tail -n 20 "/var/log/postgresql/postgresql-$version-$cluster.log" >&2 || true
  exit 1
fi

# The role and database of the tests, as the postgres superuser over the local socket.
as_postgres() { runuser -u postgres -- psql -p "$port" -X -q -v ON_ERROR_STOP=1 -tA "$@"; }

if [[ "$(as_postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" != 1 ]]; then
  log "creating the role $role"
  as_postgres -c "CREATE ROLE $role LOGIN CREATEDB PASSWORD '$password'"
else
  # Cheap, and puts back what the tests rely on should someone have changed it.
  as_postgres -c "ALTER ROLE $role LOGIN CREATEDB PASSWORD '$password'"
fi
if [[ "$(as_postgres -c "SELECT 1 FROM pg_database WHERE datname = '$database'")" != 1 ]]; then
  log "creating the database $database"
  as_postgres -c "CREATE DATABASE $database OWNER $role"
fi

url="postgres://$role:$password@127.0.0.1:$port/$database"
log "ready: PostgreSQL $version at $url"
printf '%s\n' "$url"
