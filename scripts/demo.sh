#!/usr/bin/env bash
# Gantry's main job end to end: build the binary, lint, plan and document the bundled examples,
# then run one with `gantry exec` on the local Docker engine (a service reached by name, a
# fan-out and a fan-in, a secret masked in the log); it ends with the run's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -q -p cli
gantry=target/release/gantry

for example in examples/*/; do
  echo "== gantry lint $example"
  "$gantry" lint "$example"
done
echo
echo "== gantry plan examples/webapp --event tag --tag v1.4.0"
"$gantry" plan examples/webapp --event tag --tag v1.4.0
echo
echo "== gantry plan examples/drone-service --event push --branch main"
"$gantry" plan examples/drone-service --event push --branch main
echo
echo "== gantry docs examples/webapp (first lines)"
"$gantry" docs examples/webapp | head -n 40
echo
echo "== gantry exec examples/exec-demo --secret deploy_token=..."
"$gantry" exec examples/exec-demo --secret deploy_token=demo-token-s3cr3t
