#!/usr/bin/env bash
# Gantry's main job end to end: build the binary, lint and plan the bundled examples, then run
# CI as a team does — a `gantry server` with a local `gantry agent`, the bundled example
# registered as a repository (a local git remote), a secret added, a build started and its log
# followed live; the build pushes an image to the local registry. Then delivery: an environment
# repository pins that image, a `gantry deployer` deploys it, the server announces the next
# build's image to the deployer, whose image automation commits it to the environment
# repository and deploys it; `gantry env status` shows what runs. Last, a promotion with an
# approval: a second environment (demo-production, with its own repository and deployer) asks
# for one approval; ada asks to promote what runs in demo, cannot approve it herself, bob
# approves, and production's deployer commits and deploys it. Server, agent and deployers keep
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
for environment in demo demo-production; do
  docker ps -aq --filter label=io.gantry.deploy.environment=$environment | xargs -r docker rm -f >/dev/null
done
rm -rf "$demo" && mkdir -p "$demo"
# And its images in the local registry: a fresh demo numbers its builds, and so its tags 1.0.N,
# from 1 again, and its deployer's image automation must not take an older run's 1.0.2.
rm -rf /var/lib/gantry-test/registry-open/storage/docker/registry/v2/repositories/demo
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

# The environment reports to the server: registered there, its deployer signs what it sends.
echo
echo "== gantry environment add demo"
notify_secret() { "$gantry" environment add "$1" --json | grep -o '"secret": *"[0-9a-f]*"' | grep -o '[0-9a-f]\{64\}'; }
demo_secret=$(notify_secret demo)
echo "registered; its deployer reports to $GANTRY_SERVER/api/v1/environments/demo/events"

deployer_port=${GANTRY_DEMO_DEPLOYER_PORT:-8790}
deployer=http://127.0.0.1:$deployer_port
published_secret=demo-published-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo
echo "== gantry deployer --repo $demo/environment.git (log in $demo/deployer.log)"
GANTRY_DEPLOYER_GANTRY_SECRET=$published_secret GANTRY_DEPLOYER_NOTIFY_SECRET=$demo_secret GANTRY_LOG=info \
  nohup "$gantry" deployer --repo "$demo/environment.git" --poll 5 --listen "127.0.0.1:$deployer_port" \
  --data "$demo/deployer" --notify "$GANTRY_SERVER/api/v1/environments/demo/events" >"$demo/deployer.log" 2>&1 &
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
echo "== a commit to demo/exec-demo, then gantry build run demo/exec-demo (build 2 publishes 1.0.2; the deployer takes it)"
echo '<p>Now with a footer.</p>' >>"$demo/exec-demo/site/index.html"
git -C "$demo/exec-demo" -c user.name=Ada -c user.email=ada@example.com commit -q -am "Add a footer to the page"
git -C "$demo/exec-demo" push -q "$demo/exec-demo.git" main
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

# Promotion with an approval. A second environment, demo-production, runs build 1's image and
# takes versions from demo only with one approval, by someone other than who asked.
git init -q --bare -b main "$demo/production.git"
git init -q -b main "$demo/production"
mkdir -p "$demo/production/apps"
cat >"$demo/production/environment.yml" <<ENVIRONMENT
version: 1
name: demo-production
targets:
  local: {kind: docker}
defaults:
  update: {monitor: 2s}
promotion:
  from: [demo]      # only what runs in demo comes here
  approvals: 1      # from someone other than who asked
  timeout: 1h       # else the request expires, rejected
ENVIRONMENT
cat >"$demo/production/apps/web.yml" <<APP
version: 1
owner: {team: demo, contact: demo@example.com}
image: $image
replicas: 1
healthcheck:
  http: {path: /health.json, port: 8080}
  interval: 1s
APP
git -C "$demo/production" add -A
git -C "$demo/production" -c user.name=Demo -c user.email=demo@example.com commit -q -m "Production runs web 1.0.1"
git -C "$demo/production" push -q "$demo/production.git" main
echo
echo "== gantry environment add demo-production; gantry deployer --repo $demo/production.git (log in $demo/production-deployer.log)"
production_secret=$(notify_secret demo-production)
GANTRY_DEPLOYER_NOTIFY_SECRET=$production_secret GANTRY_LOG=info \
  nohup "$gantry" deployer --repo "$demo/production.git" --poll 2 --data "$demo/production-deployer" \
  --notify "$GANTRY_SERVER/api/v1/environments/demo-production/events" >"$demo/production-deployer.log" 2>&1 &
echo $! >>"$demo/pids"

echo
echo "== gantry user add ada; gantry user add bob; gantry repo grant demo/exec-demo ada|bob --role write"
export GANTRY_DEMO_PASSWORD=demo-password-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
for person in ada bob; do
  "$gantry" user add $person --password-from-env GANTRY_DEMO_PASSWORD
  "$gantry" repo grant demo/exec-demo $person --role write
done
token_of() { "$gantry" login "$1" --password-from-env GANTRY_DEMO_PASSWORD --json | grep -o '"token": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'; }
ada=$(token_of ada)
bob=$(token_of bob)

# Production runs 1.0.1 first (and its rules reach the server with its deployer's first sync).
for _ in $(seq 120); do
  if "$gantry" environment apps demo-production 2>/dev/null | grep -q ":1.0.1@"; then break; fi
  sleep 0.5
done
promotion=
for _ in $(seq 120); do
  if GANTRY_TOKEN=$ada "$gantry" env promote web --from demo --to demo-production --comment "1.0.2 ran well in demo" --json \
    >"$demo/promotion.json" 2>"$demo/promotion.err"; then
    promotion=$(grep -o '"id": *[0-9]*' "$demo/promotion.json" | head -1 | grep -o '[0-9]*$')
    break
  fi
  sleep 0.5
done
[[ -n "$promotion" ]] || { cat "$demo/promotion.err" >&2; echo "see $demo/production-deployer.log" >&2; exit 1; }
echo
echo "== gantry env diff web --from demo-production --to demo (what the promotion brings)"
"$gantry" env diff web --from demo-production --to demo
echo
echo "== as ada: gantry env promote web --from demo --to demo-production"
GANTRY_TOKEN=$ada "$gantry" env promotions --id "$promotion"
echo
echo "== as ada: gantry env approve $promotion (refused: who asks never approves)"
GANTRY_TOKEN=$ada "$gantry" env approve "$promotion" || true
echo
echo "== as bob: gantry env approve $promotion"
GANTRY_TOKEN=$bob "$gantry" env approve "$promotion" --comment "dashboards are green"
for _ in $(seq 120); do
  if "$gantry" environment apps demo-production 2>/dev/null | grep -q ":1.0.2@"; then break; fi
  sleep 0.5
done
"$gantry" environment apps demo-production | grep -q ":1.0.2@" || { echo "production did not run 1.0.2; see $demo/production-deployer.log" >&2; exit 1; }
echo
echo "== git log of the production environment repository (the deployer's commit)"
git -C "$demo/production.git" log -1 --format='%h %an: %B' main
echo "== gantry env promotions demo-production"
"$gantry" env promotions demo-production
echo
echo "== gantry environment apps demo-production"
"$gantry" environment apps demo-production
cat <<EOT

The server, the agent and both deployers keep running (pids in $demo/pids). Try:
  export GANTRY_SERVER=$GANTRY_SERVER GANTRY_TOKEN=$GANTRY_TOKEN
  $gantry build ls demo/exec-demo
  $gantry build run demo/exec-demo && $gantry build logs demo/exec-demo 3 -f
  $gantry env status --deployer $deployer
  $gantry env rollback web --repo $demo/environment.git
  curl -s \$GANTRY_SERVER/metrics | grep ^gantry_; curl -s $deployer/metrics
Webhooks for the repository go to $GANTRY_SERVER/api/hooks/demo/exec-demo (secret: demo-hook-secret).
Stop everything with:
  kill \$(cat $demo/pids); for e in demo demo-production; do docker ps -aq --filter label=io.gantry.deploy.environment=\$e | xargs -r docker rm -f; done
EOT
echo
echo "The web UI: create the first administrator at $GANTRY_SERVER/setup with the code in $demo/data/setup-code"
echo "(or the admin token above), then open the demo build's page:"
echo "$GANTRY_SERVER/repos/demo/exec-demo/builds/2"
