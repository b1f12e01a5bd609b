#!/usr/bin/env bash
# Gantry's main job end to end: build the binary, lint and plan the bundled examples, then run
# CI as a team does — a `gantry server` with a local `gantry agent`, the bundled example
# registered as a repository (a local git remote), a secret added, a build started and its log
# followed live; the build pushes an image to the local registry. Then delivery: an environment
# repository pins that image, a `gantry deployer` deploys it, the server announces the next
# build's image to the deployer, whose image automation commits it to the environment
# repository and deploys it; `gantry env status` shows what runs. Server, agent and deployer keep
# running afterwards; the script says where and how to stop them.
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
# And what its deployer ran.
docker ps -aq --filter label=io.gantry.deploy.environment=demo | xargs -r docker rm -f >/dev/null
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
[[ "$status" == 0 ]] || exit "$status"

# Delivery. The environment repository: one application, the image build 1 pushed, pinned by
# digest, with an image policy that takes newer 1.x versions.
pinned=$("$gantry" build show demo/exec-demo 1 --json | grep -o '"pinned": *"[^"]*"' | head -1 | sed 's/.*"\([^"]*\)"$/\1/')
[[ -n "$pinned" ]] || { echo "build 1 published no image" >&2; exit 1; }
image="${pinned%@*}:1.0.1@${pinned#*@}"
git init -q --bare -b main "$demo/environment.git"
git init -q -b main "$demo/environment"
mkdir -p "$demo/environment/apps"
cat >"$demo/environment/environment.yml" <<ENVIRONMENT
version: 1
name: demo
targets:
  local: {kind: docker}
defaults:
  update: {monitor: 2s}
ENVIRONMENT
cat >"$demo/environment/apps/web.yml" <<APP
version: 1
owner: {team: demo, contact: demo@example.com}
image: $image
replicas: 2
healthcheck:
  http: {path: /health.json, port: 8080}
  interval: 1s
image_policy:
  semver: ^1.0
APP
echo
echo "== gantry lint $demo/environment"
"$gantry" lint "$demo/environment"
git -C "$demo/environment" add -A
git -C "$demo/environment" -c user.name=Demo -c user.email=demo@example.com commit -q -m "Deploy web 1.0.1"
git -C "$demo/environment" push -q "$demo/environment.git" main

deployer_port=${GANTRY_DEMO_DEPLOYER_PORT:-8790}
deployer=http://127.0.0.1:$deployer_port
published_secret=demo-published-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo
echo "== gantry deployer --repo $demo/environment.git (log in $demo/deployer.log)"
GANTRY_DEPLOYER_GANTRY_SECRET=$published_secret GANTRY_LOG=info \
  nohup "$gantry" deployer --repo "$demo/environment.git" --poll 5 --listen "127.0.0.1:$deployer_port" \
  --data "$demo/deployer" >"$demo/deployer.log" 2>&1 &
echo $! >>"$demo/pids"

# Waits (at most a minute) until `gantry env status` shows web at version $1, both replicas
# healthy, in sync.
wait_for_version() {
  for _ in $(seq 120); do
    if "$gantry" env status --deployer "$deployer" 2>/dev/null | grep -Eq "^web +demo +$1@.* 2/2 +in-sync"; then return 0; fi
    sleep 0.5
  done
  echo "web $1 was not deployed; see $demo/deployer.log" >&2
  exit 1
}
wait_for_version 1.0.1
echo
echo "== gantry env status --deployer $deployer"
"$gantry" env status --deployer "$deployer"

echo
echo "== gantry notifier add demo/exec-demo $deployer/hooks/gantry --event image.published"
GANTRY_DEMO_PUBLISHED_SECRET=$published_secret \
  "$gantry" notifier add demo/exec-demo "$deployer/hooks/gantry" --event image.published --secret-from-env GANTRY_DEMO_PUBLISHED_SECRET
echo
echo "== gantry build run demo/exec-demo (build 2 publishes 1.0.2; the deployer takes it)"
"$gantry" build run demo/exec-demo
"$gantry" build logs demo/exec-demo 2 --follow >/dev/null || { echo "build 2 failed" >&2; exit 1; }
wait_for_version 1.0.2
echo
echo "== git log of the environment repository"
git -C "$demo/environment.git" log --format='%h %an: %s' main
echo
echo "== gantry env status --deployer $deployer"
"$gantry" env status --deployer "$deployer"
echo
echo "== gantry env history web --deployer $deployer"
"$gantry" env history web --deployer "$deployer"
cat <<EOT

The server, the agent and the deployer keep running (pids in $demo/pids). Try:
  export GANTRY_SERVER=$GANTRY_SERVER GANTRY_TOKEN=$GANTRY_TOKEN
  $gantry build ls demo/exec-demo
  $gantry build run demo/exec-demo && $gantry build logs demo/exec-demo 3 -f
  $gantry env status --deployer $deployer
  $gantry env rollback web --repo $demo/environment.git
  curl -s \$GANTRY_SERVER/metrics | grep ^gantry_; curl -s $deployer/metrics
Webhooks for the repository go to $GANTRY_SERVER/api/hooks/demo/exec-demo (secret: demo-hook-secret).
Stop everything with:
  kill \$(cat $demo/pids); docker ps -aq --filter label=io.gantry.deploy.environment=demo | xargs -r docker rm -f
EOT
echo
echo "The web UI: create the first administrator at $GANTRY_SERVER/setup with the code in $demo/data/setup-code"
echo "(or the admin token above), then open the demo build's page:"
echo "$GANTRY_SERVER/repos/demo/exec-demo/builds/2"
