#!/usr/bin/env bash
# The dependency audit: `cargo deny check` on Cargo.lock with the policy in deny.toml:
# advisories (RustSec: vulnerabilities, unmaintained, unsound, yanked), licenses, bans, sources.
#
#   scripts/audit.sh                               fetches the RustSec database from GitHub
#   REDLINE_ADVISORY_DB=DIR|FILE scripts/audit.sh  uses a local copy: a clone of
#                                                  github.com/rustsec/advisory-db or a git bundle
#                                                  of it, and runs offline
#
# Where GitHub cannot be reached and no copy is given, the last database fetched on this machine
# is used if there is one; if there is none, licenses, bans and sources are still checked, and
# the audit exits 3 (not 0: nothing pretends it passed), saying that advisories were not
# checked; a policy failure exits 1. The database's commit and age are
# printed on every run. Installs cargo-deny (crates.io) when missing. A finding is fixed by an
# upgrade (`cargo update -p CRATE`) or written down with its reason in deny.toml:
# docs/deploy.md#the-dependency-audit.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
DB_URL=https://github.com/rustsec/advisory-db
# Where cargo-deny keeps the database of DB_URL under its db-path: "advisory-db-" and a hash of the
# URL (url_to_db_path in cargo-deny). Pinned with the version above.
DB_DIR=${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/advisory-db-3157b0e258782691

if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
  cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION"
fi

# Prints "COMMIT DATE AGE_DAYS" of the database repository $1 (fails if it is not one).
db_info() {
  local sha ts
  sha=$(git -C "$1" rev-parse --short=12 HEAD 2>/dev/null) || return 1
  ts=$(git -C "$1" show -s --format=%ct HEAD) || return 1
  [ -d "$1/crates" ] || return 1
  echo "$sha $(date -u -d "@$ts" +%F) $(( ($(date +%s) - ts) / 86400 ))"
}

# Copies the database at $1 (a clone, or a git bundle, possibly of a shallow clone) to $2, a
# repository with the files checked out, as cargo-deny reads them.
copy_db() {
  local src=$1 dest=$2 head parent
  rm -rf "$dest"
  if [ -d "$src" ]; then
    git clone --quiet "$src" "$dest"
  elif [ -f "$src" ]; then
    git init --quiet "$dest"
    # unbundle, unlike clone, accepts a bundle made from a shallow clone (its tip's parents are
    # not in it); the tip is then marked shallow, as it was where the bundle was made.
    head=$(git -C "$dest" bundle unbundle "$(realpath "$src")" | awk '{ print $1; exit }')
    [ -n "$head" ] || { echo "audit: $src holds no commit" >&2; return 1; }
    git -C "$dest" update-ref refs/heads/main "$head"
    git -C "$dest" symbolic-ref HEAD refs/heads/main
    for parent in $(git -C "$dest" cat-file -p "$head" | awk '$1 == "parent" { print $2 }'); do
      git -C "$dest" cat-file -e "$parent" 2>/dev/null || { echo "$head" > "$dest/.git/shallow"; break; }
    done
    git -C "$dest" checkout --quiet main
  else
    echo "audit: REDLINE_ADVISORY_DB=$src is neither a directory nor a file" >&2
    return 1
  fi
}

mode=none
if [ -n "${REDLINE_ADVISORY_DB:-}" ]; then
  copy=$(mktemp -d "${TMPDIR:-/tmp}/advisory-db.XXXXXX")
  copy_db "$REDLINE_ADVISORY_DB" "$copy/db"
  read -r sha date age < <(db_info "$copy/db") || { echo "audit: $REDLINE_ADVISORY_DB is not an advisory database" >&2; exit 1; }
  if current=$(db_info "$DB_DIR") && [ "$(git -C "$DB_DIR" show -s --format=%ct HEAD)" -gt "$(git -C "$copy/db" show -s --format=%ct HEAD)" ]; then
    echo "audit: the database already here ($current) is newer than REDLINE_ADVISORY_DB's ($sha $date): keeping it"
  else
    mkdir -p "$(dirname "$DB_DIR")"
    rm -rf "$DB_DIR"
    mv "$copy/db" "$DB_DIR"
  fi
  rm -rf "$copy"
  mode=offline source="REDLINE_ADVISORY_DB=$REDLINE_ADVISORY_DB"
elif timeout 30 git ls-remote --exit-code "$DB_URL" HEAD >/dev/null 2>&1; then
  mode=fetch source=$DB_URL
elif db_info "$DB_DIR" >/dev/null; then
  mode=offline source="the copy already in $DB_DIR ($DB_URL cannot be reached)"
fi

case $mode in
  fetch)
    cargo deny --locked check --hide-inclusion-graph
    read -r sha date age < <(db_info "$DB_DIR")
    echo "audit: advisory database $sha of $date ($age days old), fetched from $source"
    ;;
  offline)
    read -r sha date age < <(db_info "$DB_DIR")
    echo "audit: advisory database $sha of $date ($age days old), from $source; advisories published since are not checked"
    cargo fetch --locked --quiet
    cargo deny --locked --offline check --hide-inclusion-graph
    ;;
  none)
    cargo fetch --locked --quiet
    cargo deny --locked --offline check --hide-inclusion-graph bans licenses sources
    cat >&2 <<EOF

########################################################################################
audit: ADVISORIES NOT CHECKED: $DB_URL cannot be reached, no database was fetched here
before, and REDLINE_ADVISORY_DB is not set. Licenses, bans and sources passed; the
audit exits 3 until it can read the RustSec database (git clone $DB_URL DIR, then
REDLINE_ADVISORY_DB=DIR $0).
########################################################################################
EOF
    exit 3
    ;;
esac
