#!/usr/bin/env bash
# Tests a real `gantry server` against its own OpenAPI document with schemathesis: no answer is a
# 5xx, and every answer is one the document describes (status code, content type, body schema,
# headers, 405s for undocumented methods). The server runs from the debug binary on a free
# loopback port with a fresh data folder, an admin token and an agent secret, with repositories
# seeded so that paths with `{owner}/{name}` reach real handlers; it is stopped and everything it
# made removed, whatever happens.
#
#   GANTRY_SCHEMATHESIS_EXAMPLES=200 scripts/schemathesis.sh     # more cases per operation
#   GANTRY_SCHEMATHESIS_SEED=1234 scripts/schemathesis.sh        # replay a run (its seed is printed)
#
# Made-up remotes, notifier and forge URLs must not leave the machine: the server and schemathesis
# run in a network namespace of their own with only a loopback interface (as root; otherwise on
# the host's loopback, with every proxy variable pointing at a closed port).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"

log() { printf 'schemathesis: %s\n' "$*" >&2; }

SCHEMATHESIS_VERSION=4.32.5
venv="${XDG_CACHE_HOME:-$HOME/.cache}/gantry/schemathesis-$SCHEMATHESIS_VERSION"

if [[ -z "${GANTRY_SCHEMATHESIS_INSIDE:-}" ]]; then
  # Outside the namespace (where the registries are reachable): install and find what runs.
  if [[ "$("$venv/bin/st" --version 2>/dev/null || true)" != *"version $SCHEMATHESIS_VERSION" ]]; then
    log "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  fi
  target_dir=$(cargo metadata --format-version 1 --no-deps --locked | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  # The binary `cargo test --workspace` built; built here only when it is missing (a build of the
  # one package would resolve other features and rebuild much of the workspace).
  binary="$target_dir/debug/gantry"
  if [[ ! -x "$binary" ]]; then
    log "building the gantry binary"
    cargo build --locked --quiet -p cli
  fi
  export GANTRY_SCHEMATHESIS_INSIDE=1 GANTRY_SCHEMATHESIS_BINARY="$binary"
  if unshare --net true 2>/dev/null; then
    exec unshare --net -- bash -c 'ip link set lo up && exec "$0"' "$root/scripts/schemathesis.sh"
  fi
  log "cannot make a network namespace (not root?): running on the host's loopback, proxies closed"
  export GANTRY_SCHEMATHESIS_NO_NETNS=1
  exec "$root/scripts/schemathesis.sh"
fi

binary=$GANTRY_SCHEMATHESIS_BINARY
examples=${GANTRY_SCHEMATHESIS_EXAMPLES:-25}
work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n "${GANTRY_SCHEMATHESIS_NO_NETNS:-}" ]]; then
  closed=http://127.0.0.1:9
  export http_proxy=$closed https_proxy=$closed all_proxy=$closed HTTP_PROXY=$closed HTTPS_PROXY=$closed ALL_PROXY=$closed
  export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost GIT_SSH_COMMAND=false
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_token=$(python3 -c 'import secrets; print("gta_" + secrets.token_hex(20))')
agent_secret=$(python3 -c 'import secrets; print(secrets.token_hex(20))')

GANTRY_ADMIN_TOKEN=$admin_token GANTRY_AGENT_SECRET=$agent_secret RUST_LOG=${RUST_LOG:-warn} \
  "$binary" server --listen "127.0.0.1:$port" --data "$work/data" --public-url "$base" >"$work/server.log" 2>&1 &
server_pid=$!

# Waits for the server to answer, for at most a minute.
for _ in $(seq 600); do
  curl -fsS -o /dev/null "$base/readyz" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; log "the server stopped"; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null "$base/readyz" || { cat "$work/server.log" >&2; log "the server did not become ready"; exit 1; }

# An API call as the admin; prints the answer, fails on an error status.
api() {
  local method=$1 path=$2 body=${3:-}
  curl -fsS -X "$method" -H "Authorization: Bearer $admin_token" -H 'content-type: application/json' \
    ${body:+--data "$body"} "$base$path"
}

# A local repository with a pipeline, registered three times: `seed/app` for every operation,
# `seed/patched` for PATCH (which may change its remote) and `seed/doomed` for DELETE.
remote="$work/remote.git"
git init -q --bare -b main "$remote"
git init -q -b main "$work/checkout"
cat >"$work/checkout/.woodpecker.yml" <<'EOF'
steps:
  build:
    image: gantry-test/busybox:latest
    commands: [echo building]
  test:
    image: gantry-test/busybox:latest
    commands: [echo testing]
    depends_on: [build]
EOF
git -C "$work/checkout" add -A
git -C "$work/checkout" -c user.name=Seed -c user.email=seed@example.com commit -q -m "a pipeline"
git -C "$work/checkout" push -q "$remote" main
for name in app patched doomed; do
  api POST /api/v1/repos "{\"full_name\": \"seed/$name\", \"clone_url\": \"file://$remote\", \"webhook_secret\": \"seed-hook-secret\"}" >/dev/null
done
# Build 1 of seed/app, cancelled so that following its log ends; a user, a secret, a cron and a
# notifier so that lists have something to show.
api POST /api/v1/repos/seed/app/builds '{}' >/dev/null
step=$(api GET /api/v1/repos/seed/app/builds/1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["workflows"][0]["steps"][0]["id"])')
api POST /api/v1/repos/seed/app/builds/1/cancel >/dev/null
api POST /api/v1/users '{"login": "seed-user", "password": "seed-password"}' >/dev/null
api PUT /api/v1/repos/seed/app/members/seed-user '{"role": "write"}' >/dev/null
api PUT /api/v1/repos/seed/app/secrets/seed_secret '{"value": "hunter2"}' >/dev/null
api PUT /api/v1/repos/seed/app/crons/nightly '{"schedule": "0 3 * * *"}' >/dev/null
# Environments: `seed-env` for every operation, `doomed-env` for DELETE; events to them are
# unsigned, so the receiver answers 401 whatever schemathesis sends.
for environment in seed-env doomed-env; do
  api POST /api/v1/environments "{\"name\": \"$environment\"}" >/dev/null
done
notifier=$(api POST /api/v1/repos/seed/app/notifiers '{"kind": "webhook", "url": "http://127.0.0.1:9/hook"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')

cat >"$work/schemathesis.toml" <<EOF
[parameters]
"path.owner" = "seed"
"path.name" = "app"
"path.number" = 1
"path.step" = $step
"path.login" = "seed-user"
"path.secret" = "seed_secret"
"path.cron" = "nightly"
"path.id" = $notifier
"path.environment" = "seed-env"

[[operations]]
include-path = "/api/v1/repos/{owner}/{name}"
include-method = "PATCH"
parameters = { "path.name" = "patched" }

[[operations]]
include-path = "/api/v1/repos/{owner}/{name}"
include-method = "DELETE"
parameters = { "path.name" = "doomed" }

[[operations]]
include-path = "/api/v1/environments/{environment}"
include-method = "DELETE"
parameters = { "path.environment" = "doomed-env" }
EOF

# Checks: no 5xx; status codes, content types, bodies and headers as documented; 405 with an
# Allow header for undocumented methods; a deleted resource gone, a created one there. Left out:
# - positive_data_acceptance: the document cannot say every rule the server checks (names, clone
#   URLs, cron expressions), so data valid by the schema is rightly refused with a 400;
# - negative_data_rejection: serde reads a struct from a JSON array of its fields (`[null]` is an
#   empty RepoUpdate), which the schema calls invalid; harmless, and only a new body extractor in
#   every handler would refuse it. Invalid data is still sent (both modes), and its answers
#   checked by everything above;
# - ignored_auth, object_level_authorization: the document declares no security scheme and the run
#   has one token; who may do what is the role matrix of crates/server/tests/it/api.rs.
seed_arguments=()
[[ -n "${GANTRY_SCHEMATHESIS_SEED:-}" ]] && seed_arguments=(--seed "$GANTRY_SCHEMATHESIS_SEED")
log "running against $base ($examples examples per operation)"
status=0
(
  cd "$work"
  "$venv/bin/st" --config-file "$work/schemathesis.toml" run "$base/api/openapi.json" \
    --header "Authorization: Bearer $admin_token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,unsupported_method,allow_header_conformance,missing_required_header,use_after_free,ensure_resource_availability \
    --max-examples "$examples" --generation-database none --request-timeout 30 --no-color "${seed_arguments[@]}"
) || status=$?
if ((status != 0)); then
  log "failed; the server's log:"
  grep -E ' (ERROR|WARN) ' "$work/server.log" | tail -n 40 >&2 || true
fi
exit "$status"
