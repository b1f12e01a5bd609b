#!/usr/bin/env bash
# Gantry's main job end to end: build the binary, lint and plan the bundled examples, then run
# CI as a team does — a `gantry server` with a local `gantry agent`, the bundled example
# registered as a repository (a local git remote), a secret added, a build started and its log
# followed live. The server and agent keep running afterwards; the script says where and how to
# stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -q -p cli
gantry=$PWD/target/release/gantry

for example in examples/*/; do
  echo "== gantry lint $example"
  "$gantry" lint "$example"
done
echo
echo "== gantry plan examples/webapp --event tag --tag v1.4.0"
"$gantry" plan examples/webapp --event tag --tag v1.4.0
echo

# A server and an agent on this machine. Everything lives under one folder, made fresh.
demo=${GANTRY_DEMO_DIR:-/tmp/gantry-demo}
port=${GANTRY_DEMO_PORT:-8000}
if [[ -f "$demo/pids" ]]; then
  # A previous demo: stop its processes before reusing the folder.
  xargs -r kill 2>/dev/null <"$demo/pids" || true
  sleep 1
fi
rm -rf "$demo" && mkdir -p "$demo"
export GANTRY_SERVER=http://127.0.0.1:$port
export GANTRY_TOKEN=demo-admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
agent_secret=demo-agent-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

echo "== gantry server on $GANTRY_SERVER (data in $demo/data, log in $demo/server.log)"
GANTRY_ADMIN_TOKEN=$GANTRY_TOKEN GANTRY_AGENT_SECRET=$agent_secret GANTRY_LOG=info \
  nohup "$gantry" server --listen "127.0.0.1:$port" --data "$demo/data" >"$demo/server.log" 2>&1 &
echo $! >>"$demo/pids"
# Ready once it accepts connections (bash's /dev/tcp: no curl needed on a fresh machine).
ready=
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then ready=1; break; fi
  sleep 0.1
done
[[ -n "$ready" ]] || { echo "the server did not start; see $demo/server.log" >&2; exit 1; }

echo "== gantry agent (log in $demo/agent.log)"
GANTRY_AGENT_SECRET=$agent_secret GANTRY_LOG=info \
  nohup "$gantry" agent --server "$GANTRY_SERVER" --name demo-agent --work-dir "$demo/agent" >"$demo/agent.log" 2>&1 &
echo $! >>"$demo/pids"

# The bundled example as a git repository with a remote, as a team's repository would be.
git init -q --bare -b main "$demo/exec-demo.git"
git init -q -b main "$demo/exec-demo"
cp -r examples/exec-demo/. "$demo/exec-demo/"
git -C "$demo/exec-demo" add -A
git -C "$demo/exec-demo" -c user.name=Demo -c user.email=demo@example.com commit -q -m "The exec demo pipeline"
git -C "$demo/exec-demo" push -q "$demo/exec-demo.git" main

echo
echo "== gantry repo add demo/exec-demo --clone-url file://$demo/exec-demo.git"
"$gantry" repo add demo/exec-demo --clone-url "file://$demo/exec-demo.git" --webhook-secret demo-hook-secret
echo
echo "== gantry secret add demo/exec-demo deploy_token"
printf 'demo-token-s3cr3t' | "$gantry" secret add demo/exec-demo deploy_token
echo
echo "== gantry build run demo/exec-demo"
"$gantry" build run demo/exec-demo
echo
echo "== gantry build logs demo/exec-demo 1 --follow"
status=0
"$gantry" build logs demo/exec-demo 1 --follow || status=$?
echo
echo "== gantry build show demo/exec-demo 1"
"$gantry" build show demo/exec-demo 1
cat <<EOT

The server and the agent keep running (pids in $demo/pids). Try:
  export GANTRY_SERVER=$GANTRY_SERVER GANTRY_TOKEN=$GANTRY_TOKEN
  $gantry build ls demo/exec-demo
  $gantry build run demo/exec-demo && $gantry build logs demo/exec-demo 2 -f
  curl -s \$GANTRY_SERVER/metrics | grep ^gantry_
Webhooks for the repository go to $GANTRY_SERVER/api/hooks/demo/exec-demo (secret: demo-hook-secret).
Stop both with: kill \$(cat $demo/pids)
EOT
exit "$status"
