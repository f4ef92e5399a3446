#!/usr/bin/env bash
# Lays out the root filesystem of redline's runtime image in DEST from a built redline binary:
# the one file tree both scripts/image.sh (buildah, no daemon) and deploy/Dockerfile (`COPY
# --from=build /rootfs /`) put on an empty (`scratch`) image, so both images hold the same files.
#
#   scripts/image-rootfs.sh target/release/redline target/image/rootfs
#
#   /usr/local/bin/redline            the binary, debug info stripped (symbols kept for backtraces)
#   /lib*/...                         the shared libraries `ldd` lists and the dynamic loader,
#                                     at the paths the binary asks for (none if it is static)
#   /etc/ssl/certs/ca-certificates.crt  the CA bundle https peers are checked against
#   /etc/passwd, /etc/group           root, and the user redline (65532:65532) the image runs as
#   /etc/nsswitch.conf                hosts: files dns (/etc/hosts first, as Kubernetes expects)
#   /var/lib/redline                  the receiver's default database directory, owned by 65532
#   /tmp                              1777
#
# Needs: ldd (libc-bin), objcopy (binutils), the Debian ca-certificates bundle; run as root (it
# sets owners). Exits non-zero, naming what is missing, rather than lay out an incomplete tree.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 REDLINE_BINARY DEST" >&2
  exit 2
fi
bin=$1 dest=$2
uid=65532 gid=65532
ca=/etc/ssl/certs/ca-certificates.crt

[ -x "$bin" ] || { echo "image-rootfs: $bin is not an executable" >&2; exit 1; }
[ -s "$ca" ] || { echo "image-rootfs: no CA bundle at $ca (apt-get install ca-certificates)" >&2; exit 1; }
for t in ldd objcopy; do
  command -v "$t" >/dev/null || { echo "image-rootfs: $t is missing (apt-get install libc-bin binutils)" >&2; exit 1; }
done

rm -rf "$dest"
mkdir -p "$dest/usr/local/bin" "$dest/etc/ssl/certs" "$dest/var/lib/redline" "$dest/tmp"
objcopy --strip-debug "$bin" "$dest/usr/local/bin/redline"
chmod 0755 "$dest/usr/local/bin/redline"

# Shared libraries: every absolute path ldd resolves ("libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6"
# and the loader "/lib64/ld-linux-x86-64.so.2"), copied as files (symlinks followed) to the same
# path, which is where the binary's interpreter and the loader's default search path look.
# A static binary ("not a dynamic executable", ldd exits 1) needs none.
if libs=$(ldd "$bin" 2>/dev/null); then
  while read -r lib; do
    mkdir -p "$dest$(dirname "$lib")"
    cp -L "$lib" "$dest$lib"
  done < <(printf '%s\n' "$libs" | grep -o '/[^ ]*' | sort -u)
  if printf '%s\n' "$libs" | grep -q 'not found'; then
    echo "image-rootfs: ldd cannot resolve every library of $bin:" >&2
    printf '%s\n' "$libs" >&2
    exit 1
  fi
fi

cp -L "$ca" "$dest$ca"
cat > "$dest/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
redline:x:$uid:$gid:redline:/var/lib/redline:/sbin/nologin
EOF
cat > "$dest/etc/group" <<EOF
root:x:0:
redline:x:$gid:
EOF
echo "hosts: files dns" > "$dest/etc/nsswitch.conf"
chown "$uid:$gid" "$dest/var/lib/redline"
chmod 0755 "$dest/var/lib/redline"
chmod 1777 "$dest/tmp"
