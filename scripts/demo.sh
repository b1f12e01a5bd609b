#!/usr/bin/env bash
# Gantry's main job end to end, as far as it goes today: build the binary, then lint, plan and
# document the bundled example pipelines.
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
