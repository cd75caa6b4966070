#!/usr/bin/env bash
# Install what the tests and the demo run against: real MariaDB, Galera, HAProxy and
# the tools the tests drive. Idempotent; needs root on Debian 12.
set -euo pipefail

PACKAGES=(mariadb-server mariadb-client galera-4 rsync haproxy curl ca-certificates
          prometheus monitoring-plugins-basic systemd xinetd wrk socat openssl
          python3 python3-venv python3-pip debootstrap lintian man-db)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    # The tests start their own servers on their own ports: keep the distribution's
    # packages from starting a system MariaDB (or anything else) on install.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || {
    echo "cargo not found: install a Rust toolchain (https://rustup.rs) first" >&2
    exit 1
}
# The Debian package (scripts/package-test.sh) is built with cargo-deb: installed once
# per machine into ~/.cargo/bin (~95 s on 2 cores), then found there.
if ! command -v cargo-deb >/dev/null; then
    deb_start=$(date +%s)
    cargo install --locked cargo-deb
    echo "install-deps: cargo install cargo-deb took $(( $(date +%s) - deb_start ))s"
fi
# The MySQL 8 / Group Replication shapes are tested against a protocol-level
# emulator (mysql-mimic from PyPI) in a venv of the repository.
bash "$(dirname "$0")/setup-mysql-mimic.sh"
# Debian 13 (MariaDB 11.8, HAProxy 3.0) for tests/trixie.rs: a chroot built once and
# cached outside the repository (never trixie in this host's apt sources).
trixie_start=$(date +%s)
bash "$(dirname "$0")/trixie-chroot.sh"
echo "install-deps: Debian 13 chroot step took $(( $(date +%s) - trixie_start ))s"
