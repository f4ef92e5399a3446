#!/usr/bin/env bash
# Regenerates tests/fixtures/coverage/reports/: one report per format, produced by the real tool
# from the sources in tests/fixtures/coverage/src/, and expected.tsv with the total each tool
# itself printed for it. tests/integration/coverage_fixtures.rs checks redline against that file on machines
# without the tools; tests/integration/coverage_tools.rs re-runs the tools live.
#
# Needs (Debian 12): golang-go lcov gcc clang llvm libclang-rt-14-dev default-jdk-headless
# libjacoco-java python3-venv, and PyPI for coverage.py.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
src=$root/tests/fixtures/coverage/src
out=$root/tests/fixtures/coverage/reports
# A fixed work dir keeps the source paths inside the reports stable between regenerations.
work=/tmp/redline-coverage-fixtures
rm -rf "$work"
mkdir -p "$work" "$out"
cp -r "$src"/. "$work"/
tsv=$out/expected.tsv
printf 'file\tformat\tunit\ttotal\tcovered\ttool_percent\ttool_said\n' >"$tsv"
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$tsv"; }

# --- coverage.py: Cobertura and LCOV, one run and two runs concatenated
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check coverage==7.17.3
py=$work/venv/bin/python
cd "$work/python"
$py -m coverage run --data-file=.cov_a --source=shop run_a.py >/dev/null
$py -m coverage run --data-file=.cov_b --source=shop run_b.py >/dev/null
$py -m coverage xml -q --data-file=.cov_a -o "$out/coverage-py.xml"
$py -m coverage lcov -q --data-file=.cov_a -o "$out/coverage-py.info"
$py -m coverage lcov -q --data-file=.cov_b -o b.info
cat "$out/coverage-py.info" b.info >"$out/coverage-py-two-runs.info"
$py -m coverage json -q --data-file=.cov_a -o a.json
read -r covered total pct < <($py -c 'import json,sys; t=json.load(open("a.json"))["totals"]; print(t["covered_lines"], t["num_statements"], t["percent_covered"])')
said=$($py -m coverage report --data-file=.cov_a --format=total --precision=4)
row coverage-py.xml cobertura lines "$total" "$covered" "$pct" "coverage report --format=total: $said"
row coverage-py.info lcov lines "$total" "$covered" "$pct" "coverage report --format=total: $said"
summary() { lcov --summary "$1" 2>&1 | grep -E '^ *lines\.' | sed 's/^ *//'; }
s=$(summary "$out/coverage-py-two-runs.info")
read -r pct hit found < <(echo "$s" | sed -E 's/.*: ([0-9.]+)% \(([0-9]+) of ([0-9]+) lines\)/\1 \2 \3/')
row coverage-py-two-runs.info lcov lines "$found" "$hit" "$pct" "lcov --summary: $s"

# --- gcc + geninfo (lcov --capture)
cd "$work/c"
gcc --coverage -O0 -o gcart cart.c
./gcart 3 4 >/dev/null
lcov --quiet --capture --directory . --output-file "$out/gcc-geninfo.info"
s=$(summary "$out/gcc-geninfo.info")
read -r pct hit found < <(echo "$s" | sed -E 's/.*: ([0-9.]+)% \(([0-9]+) of ([0-9]+) lines\)/\1 \2 \3/')
row gcc-geninfo.info lcov lines "$found" "$hit" "$pct" "lcov --summary: $s"

# --- clang + llvm-cov export
clang=$(command -v clang || command -v clang-14)
"$clang" -fprofile-instr-generate -fcoverage-mapping -O0 -o lcart cart.c
LLVM_PROFILE_FILE=cart.profraw ./lcart 3 4 >/dev/null
llvm-profdata merge -sparse cart.profraw -o cart.profdata
llvm-cov export -instr-profile=cart.profdata ./lcart >"$out/llvm-cov-export.json"
t=$(llvm-cov report -instr-profile=cart.profdata ./lcart | grep '^TOTAL')
read -r _ _ _ _ _ _ _ lines missed cover _ < <(echo "$t")
row llvm-cov-export.json llvm-cov-json lines "$lines" "$((lines - missed))" "${cover%\%}" "llvm-cov report: $(echo $t)"

# --- Go: -coverpkg repeats blocks across test binaries
cd "$work/go"
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOTELEMETRY=off GOCACHE=$work/go-build
go test -coverpkg=./calc,./label -coverprofile="$out/go-coverpkg.out" ./calc ./label >/dev/null
t=$(go tool cover -func="$out/go-coverpkg.out" | grep '^total:')
row go-coverpkg.out go-coverprofile statements - - "$(echo "$t" | awk '{print $NF}' | tr -d %)" "go tool cover -func: $(echo $t)"

# --- JaCoCo agent + XML report
cd "$work/java"
cp=/usr/share/java/org.jacoco.core.jar:/usr/share/java/org.jacoco.report.jar:/usr/share/java/asm.jar:/usr/share/java/asm-commons.jar:/usr/share/java/asm-tree.jar
javac --release 11 -d classes shop/Cart.java shop/Unused.java
javac -cp "$cp" -d tool "$work/java-tool/Report.java"
jar xf /usr/share/java/org.jacoco.agent.jar jacocoagent.jar
java -javaagent:jacocoagent.jar=destfile=jacoco.exec -cp classes shop.Cart >/dev/null
read -r _ covered missed < <(java -cp "tool:$cp" Report jacoco.exec classes . "$out/jacoco.xml")
row jacoco.xml jacoco lines "$((covered + missed))" "$covered" "$(python3 -c "print($covered/($covered+$missed)*100)")" \
  "JaCoCo bundle LINE counter: $covered covered, $missed missed"

cd "$root"
rm -rf "$work"
echo "wrote $out:"
column -t -s $'\t' "$tsv"
