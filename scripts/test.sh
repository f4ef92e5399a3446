#!/usr/bin/env bash
# The one test command: installs the Debian packages the tests talk to (Prometheus and
# promtool, Alertmanager and amtool, and the coverage tools whose reports readiness-check
# reads: go, lcov, clang/llvm-cov, JaCoCo; PostgreSQL for the receiver, whose tests start their
# own cluster; node and npm for the CRD schemas tests/integration/deploy.rs checks deploy/ against
# and for playwright-core, which drives Chromium through the receiver's page in
# tests/integration/receiver_ui.rs; openssl for the throw-away certificates of the TLS tests; and
# ShellCheck, which actionlint runs on the workflows' scripts in tests/integration/pipeline.rs),
# then runs formatting, lints, and the unit and integration tests instrumented for coverage,
# followed by the coverage gate. Python packages (coverage.py, scipy, the
# deploy validators) go into venvs and npm packages into a directory under target/ on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the integration tests talk to, by the command (or file) that shows they are there.
need=(
  "promtool:prometheus" "prometheus:prometheus"
  "prometheus-alertmanager:prometheus-alertmanager" "amtool:prometheus-alertmanager"
  "go:golang-go" "lcov:lcov" "gcc:gcc" "clang:clang" "llvm-cov:llvm" "llvm-profdata:llvm"
  "/usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.profile-x86_64.a:libclang-rt-14-dev"
  "/usr/share/java/org.jacoco.agent.jar:libjacoco-java" "javac:default-jdk-headless"
  "python3:python3" "/usr/share/doc/python3-venv:python3-venv"
  "/usr/lib/postgresql/*/bin/initdb:postgresql"
  "node:nodejs" "npm:npm" "openssl:openssl" "chromium:chromium"
  "shellcheck:shellcheck"
)
missing=()
for entry in "${need[@]}"; do
  what=${entry%%:*} pkg=${entry#*:}
  if [[ $what == /* ]]; then compgen -G "$what" >/dev/null && continue; else command -v "$what" >/dev/null 2>&1 && continue; fi
  [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for t in promtool prometheus prometheus-alertmanager amtool go lcov clang llvm-cov javac node npm openssl chromium shellcheck; do
  command -v $t >/dev/null || { echo "$t still missing after install" >&2; exit 1; }
done

# The rule files must pass the real promtool; tests/integration/rules_cli.rs runs every unit-test file
# through both `promtool test rules` and `redline rules test` and compares the verdicts.
promtool check rules $(ls rules/*.yml | grep -v '_test\.yml$') tests/conformance/rules/*.yml

# A clean clone gains nothing from incremental state but 1.5 GB of disk; the free space is
# printed so that a build that runs out of it says so up front.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | tail -1 | awk '{print "disk free for the build: " $4 " of " $2}'

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# Every test, once, instrumented for coverage (cargo-llvm-cov), then the coverage gate: redline's
# own readiness-check, tests.coverage >= 80 % (scripts/coverage.sh says how; `cargo test
# --all-targets --locked` runs the same tests without it).
bash scripts/coverage.sh
