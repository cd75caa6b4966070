#!/usr/bin/env bash
# Build (once) a minimal Debian 13 "trixie" chroot holding MariaDB 11.8 and
# HAProxy 3.0, for tests/trixie.rs. The host stays on Debian 12: trixie is never
# added to the host's apt sources (that would upgrade the host); its packages
# live only inside the chroot, whose daemons the tests start with `chroot DIR ...`
# on loopback ports (a chroot shares the host's network).
#
# Usage: scripts/trixie-chroot.sh            (needs root and debootstrap)
#   MYSQLCHK_TRIXIE_DIR     where the chroot lives (default /var/cache/mysqlchk/trixie,
#                           outside the repository so later runs on the machine reuse it)
#   MYSQLCHK_TRIXIE_MIRROR  Debian mirror (default: the one the host's apt uses)
#
# Idempotent: a stamp file written last marks a complete chroot; a directory
# without it (an interrupted build) is removed and built again.
set -euo pipefail

DIR=${MYSQLCHK_TRIXIE_DIR:-/var/cache/mysqlchk/trixie}
STAMP="$DIR/.mysqlchk-trixie-ready"
PACKAGES=(mariadb-server mariadb-client haproxy)

ready() {
    if [ -e "$STAMP" ]; then
        echo "trixie chroot: ready in $DIR ($(tr '\n' ' ' < "$STAMP"))"
        exit 0
    fi
}
ready

if [ "$(id -u)" != 0 ]; then
    echo "trixie chroot: building $DIR needs root (debootstrap, chroot)" >&2
    exit 1
fi
command -v debootstrap >/dev/null || {
    echo "trixie chroot: debootstrap not found (apt-get install debootstrap)" >&2
    exit 1
}

# The mirror the host's apt already uses for Debian itself (not -security, not
# third-party repositories): deb822 .sources files first, then one-line lists.
host_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -e "$f" ] || continue
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { print $i; break } }' "$f"
    done
}
MIRROR=${MYSQLCHK_TRIXIE_MIRROR:-$(host_mirror | grep -E '/debian/?$' | head -n1 || true)}
if [ -z "$MIRROR" ]; then
    echo "trixie chroot: no Debian mirror found in /etc/apt/sources.list(.d); set MYSQLCHK_TRIXIE_MIRROR" >&2
    exit 1
fi

# Anything debootstrap or a previous run left mounted inside must go before
# the directory is removed (rm must never descend into the host's /proc).
unmount_inside() {
    local m
    awk -v d="$DIR/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" || true; done
}

# One build at a time (two CI jobs on one machine): the second waits, then
# finds the stamp.
mkdir -p "$(dirname "$DIR")"
exec 9> "$DIR.lock"
flock 9
ready

start=$(date +%s)
if [ -e "$DIR" ]; then
    echo "trixie chroot: $DIR has no stamp (interrupted build?): removing it"
    unmount_inside
    rm -rf --one-file-system "$DIR"
fi

echo "trixie chroot: debootstrap --variant=minbase trixie $DIR $MIRROR"
debootstrap --variant=minbase trixie "$DIR" "$MIRROR" > "$DIR.debootstrap.log" 2>&1 || {
    echo "trixie chroot: debootstrap failed; last lines of $DIR.debootstrap.log:" >&2
    tail -n 20 "$DIR.debootstrap.log" >&2
    exit 1
}
rm -f "$DIR.debootstrap.log"

# Package scripts must not start the chroot's MariaDB or HAProxy on the host's
# ports: the tests start their own, on their own ports.
printf '#!/bin/sh\nexit 101\n' > "$DIR/usr/sbin/policy-rc.d"
chmod +x "$DIR/usr/sbin/policy-rc.d"

echo "trixie chroot: apt-get install ${PACKAGES[*]} (inside the chroot)"
trap unmount_inside EXIT
mount -t proc proc "$DIR/proc"
chroot "$DIR" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 \
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" > "$DIR/tmp/apt.log" 2>&1 || {
    echo "trixie chroot: apt-get install failed; last lines of $DIR/tmp/apt.log:" >&2
    tail -n 20 "$DIR/tmp/apt.log" >&2
    exit 1
}
chroot "$DIR" apt-get clean
unmount_inside
trap - EXIT

mariadb_version=$(chroot "$DIR" dpkg-query -W -f='${Version}' mariadb-server)
haproxy_version=$(chroot "$DIR" dpkg-query -W -f='${Version}' haproxy)
took=$(( $(date +%s) - start ))
printf 'mariadb-server=%s\nhaproxy=%s\nbuilt=%s\nseconds=%s\n' \
    "$mariadb_version" "$haproxy_version" "$(date -u +%FT%TZ)" "$took" > "$STAMP.tmp"
mv "$STAMP.tmp" "$STAMP"
echo "trixie chroot: built $DIR in ${took}s (mariadb-server $mariadb_version, haproxy $haproxy_version, $(du -sh --one-file-system "$DIR" | cut -f1))"
