#!/usr/bin/env bash
# Builds redline's runtime image without a Docker daemon and checks it.
#
#   scripts/image.sh               build target/image/redline.oci.tar, check it, check the checker
#   scripts/image.sh check FILE    only check an OCI archive (e.g. one deploy/Dockerfile built:
#                                  `docker buildx build -f deploy/Dockerfile -o type=oci,dest=FILE .`)
#
# Build: the release binary (`cargo build --release --locked --bin redline`), laid out by
# scripts/image-rootfs.sh (the binary, its shared libraries, CA certificates, /etc/passwd and
# /etc/group with the user redline 65532:65532), put on an empty image (`FROM scratch`: no base
# image is pulled) with buildah on vfs storage under target/image/, as root with no daemon and no
# overlay mounts; written as an OCI archive tagged $REDLINE_IMAGE (default
# ghcr.io/redline-sidecar/redline:<git commit>, the tag CI pushes on main).
#
# Check, on the archive alone: the image config's user is not root (nor a name that is uid 0 in
# the image's /etc/passwd), its entrypoint is exactly ["redline"], /var/lib/redline belongs to that
# user, and the entrypoint runs inside the image's own root filesystem: the layers are unpacked
# and `chroot --userspec` runs `redline --version` (must print Cargo.toml's version) and
# `redline sidecar --help` with the image's PATH, as the image's user. Then the checker is shown a
# copy of the image whose user is root, and must refuse it.
#
# Installs buildah, jq and binutils from Debian when missing. docs/deploy.md describes the image.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/image
archive=$out/redline.oci.tar
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)

say() { echo "image: $*"; }
fail() { echo "image: FAIL: $*" >&2; exit 1; }

# check_image ARCHIVE: the checks above; exits non-zero with the reason on the first that fails.
check_image() {
  local file=$1 work oci rootfs manifest config user uid gid entrypoint chroot path out
  [ -s "$file" ] || fail "$file: no such archive"
  work=$(mktemp -d "${TMPDIR:-/tmp}/redline-image-check.XXXXXX")
  # shellcheck disable=SC2064 # expand $work now
  trap "rm -rf '$work'" EXIT
  oci=$work/oci rootfs=$work/rootfs
  mkdir -p "$oci" "$rootfs"
  tar -xf "$file" -C "$oci"
  blob() { echo "$oci/blobs/${1/://}"; }
  # index.json names the manifest, or (docker buildx) an index of per-platform manifests and
  # attestations: take the first manifest that is an image for a real platform.
  manifest=$oci/index.json
  while jq -e '.manifests' "$manifest" >/dev/null; do
    manifest=$(blob "$(jq -r '[.manifests[] | select((.platform.os // "linux") != "unknown")][0].digest' "$manifest")")
  done
  [ "$(jq -r '.config.digest // ""' "$manifest")" != "" ] || fail "$file: no image manifest in index.json"
  config=$(blob "$(jq -r '.config.digest' "$manifest")")
  while read -r layer; do
    tar -xf "$(blob "$layer")" -C "$rootfs"
  done < <(jq -r '.layers[].digest' "$manifest")
  if find "$rootfs" -name '.wh.*' | grep -q .; then
    fail "$file: layers delete files (whiteouts); expected one layer on scratch"
  fi

  user=$(jq -r '.config.User // ""' "$config")
  [ -n "$user" ] || fail "$file: the image has no USER: it would run as root"
  uid=${user%%:*} gid=${user#*:}
  [ "$gid" != "$user" ] || gid=$uid
  if ! [[ $uid =~ ^[0-9]+$ ]]; then
    uid=$(awk -F: -v u="$uid" '$1 == u { print $3 }' "$rootfs/etc/passwd" 2>/dev/null)
    [ -n "$uid" ] || fail "$file: user '$user' is not in the image's /etc/passwd"
  fi
  if ! [[ $gid =~ ^[0-9]+$ ]]; then
    gid=$(awk -F: -v g="$gid" '$1 == g { print $3 }' "$rootfs/etc/group" 2>/dev/null)
    [ -n "$gid" ] || fail "$file: group of '$user' is not in the image's /etc/group"
  fi
  [ "$uid" != 0 ] || fail "$file: the image runs as root (USER $user)"
  [ "$gid" != 0 ] || fail "$file: the image runs with group root (USER $user)"
  say "user $user (uid $uid, gid $gid): not root"

  entrypoint=$(jq -c '.config.Entrypoint' "$config")
  [ "$entrypoint" = '["redline"]' ] || fail "$file: entrypoint is $entrypoint, expected [\"redline\"]"
  say "entrypoint $entrypoint"

  [ "$(stat -c %u:%g "$rootfs/var/lib/redline" 2>/dev/null)" = "$uid:$gid" ] \
    || fail "$file: /var/lib/redline (the receiver's database directory) is not owned by $uid:$gid"

  chroot=$(command -v chroot) || fail "chroot is missing (coreutils)"
  path=$(jq -r '.config.Env // [] | map(select(startswith("PATH=")))[0] // "" | ltrimstr("PATH=")' "$config")
  [ -n "$path" ] || fail "$file: the image sets no PATH for its entrypoint"
  in_image() { env -i PATH="$path" "$chroot" --userspec="$uid:$gid" "$rootfs" redline "$@"; }
  out=$(in_image --version 2>&1) || fail "$file: 'redline --version' does not run in the image: $out"
  [ "$out" = "redline $version" ] || fail "$file: 'redline --version' printed '$out', expected 'redline $version'"
  say "redline --version in the image, as $uid:$gid: $out"
  out=$(in_image sidecar --help 2>&1) || fail "$file: 'redline sidecar --help' fails in the image: $out"
  grep -q -- '--upstream' <<<"$out" || fail "$file: 'redline sidecar --help' does not show --upstream"
  say "redline sidecar --help in the image: ok ($(wc -l <<<"$out") lines)"
}

if [ "${1:-}" = check ]; then
  [ $# -eq 2 ] || { echo "usage: $0 check ARCHIVE" >&2; exit 2; }
  check_image "$2"
  exit 0
fi
[ $# -eq 0 ] || { echo "usage: $0 [check ARCHIVE]" >&2; exit 2; }

missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v jq >/dev/null || missing+=(jq)
command -v objcopy >/dev/null || missing+=(binutils)
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "$(id -u)" -eq 0 ] || fail "run as root: the image's files are owned by its user, and the check uses chroot"

cargo build --release --locked --bin redline
target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)

image=${REDLINE_IMAGE:-ghcr.io/redline-sidecar/redline:$(git rev-parse HEAD 2>/dev/null || echo "$version")}
rm -rf "$out"
mkdir -p "$out"
scripts/image-rootfs.sh "$target_dir/release/redline" "$out/rootfs"

# Private vfs storage: nothing outside target/image/ is touched, no overlay mounts are needed.
buildah() { command buildah --root "$PWD/$out/storage" --runroot "$PWD/$out/run" --storage-driver vfs "$@"; }
ctr=$(buildah from scratch)
mnt=$(buildah mount "$ctr")
cp -a "$out/rootfs/." "$mnt/"
buildah umount "$ctr" >/dev/null
buildah config \
  --user 65532:65532 --entrypoint '["redline"]' --cmd '--help' \
  --env PATH=/usr/local/bin:/usr/bin:/bin --workingdir / \
  --port 15001 --port 15090 --port 9095 \
  --label org.opencontainers.image.title=redline \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --label org.opencontainers.image.source=https://github.com/redline-sidecar/redline \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  "$ctr"
buildah commit --quiet --format oci --rm "$ctr" "oci-archive:$PWD/$archive:$image" >/dev/null
say "built $archive ($image, $(du -h "$archive" | cut -f1))"

check_image "$archive"

# The checker must refuse what it is there to catch: the same image with USER root.
ctr=$(buildah from --quiet "oci-archive:$PWD/$archive")
buildah config --user 0:0 "$ctr"
buildah commit --quiet --format oci --rm "$ctr" "oci-archive:$PWD/$out/root-user.oci.tar" >/dev/null
if refusal=$( (check_image "$out/root-user.oci.tar") 2>&1 ); then
  fail "the checker passed an image whose user is root"
fi
grep -q 'runs as root' <<<"$refusal" || fail "the checker refused the root-user image for another reason: $refusal"
say "the checker refuses the same image with USER root: ${refusal##*FAIL: }"
rm -rf "$out/storage" "$out/run" "$out/root-user.oci.tar" "$out/rootfs"
say "ok"
