#!/usr/bin/env bash
# The one test command: installs the Debian packages the tests talk to (promtool from
# `prometheus`, Alertmanager and amtool from `prometheus-alertmanager`), then runs
# formatting, lints, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for t in promtool prometheus-alertmanager amtool; do
  command -v $t >/dev/null || { echo "$t still missing after install" >&2; exit 1; }
done

# The rule files must pass the real promtool; tests/rules_cli.rs runs every unit-test file
# through both `promtool test rules` and `redline rules test` and compares the verdicts.
promtool check rules $(ls rules/*.yml | grep -v '_test\.yml$') tests/conformance/rules/*.yml

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
