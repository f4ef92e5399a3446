#!/usr/bin/env bash
# The one test command: installs the Debian packages the tests talk to (promtool from
# `prometheus`), then runs formatting, lints, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v promtool >/dev/null || { echo "promtool still missing after install" >&2; exit 1; }

# The rule files must pass the real promtool; tests/rules_cli.rs runs every unit-test file
# through both `promtool test rules` and `redline rules test` and compares the verdicts.
promtool check rules $(ls rules/*.yml | grep -v '_test\.yml$') tests/conformance/rules/*.yml

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
