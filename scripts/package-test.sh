#!/usr/bin/env bash
# The Debian package (README, "Install") on this machine, for real: build it with
# `cargo deb`, lint it, install it, upgrade it, purge it, and check after each step what
# the README promises. Needs root and Debian; run by .ci/run after scripts/test.sh.
#
# Whatever mysqlchk left on the machine is put back at the end: /etc/mysqlchk and
# /var/lib/mysqlchk are moved aside for the test and restored, and a mysqlchk package
# that was installed is installed again (from the build under test) with them.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== package-test: %s\n' "$*"; }
fail() { printf 'package-test: FAILED: %s\n' "$*" >&2; exit 1; }
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    "$@" >/dev/null 2>&1 || fail "$what"
    echo "ok: $what"
}
refute() { # refute DESCRIPTION COMMAND... (the command must fail)
    local what=$1; shift
    if "$@" >/dev/null 2>&1; then fail "$what"; fi
    echo "ok: $what"
}

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
for tool in cargo-deb lintian man; do
    command -v "$tool" >/dev/null || fail "$tool missing: run scripts/install-deps.sh"
done
export DEBIAN_FRONTEND=noninteractive

start=$(date +%s)
work=$(mktemp -d /tmp/mysqlchk-package-test.XXXXXX)

# --- what was there before ----------------------------------------------------------
was_installed=""
if dpkg-query -W -f='${Status}' mysqlchk 2>/dev/null | grep -q "install ok installed"; then
    was_installed=$(dpkg-query -W -f='${Version}' mysqlchk)
fi
user_existed=""
getent passwd mysqlchk >/dev/null && user_existed=1
# Enabled units of an installed package (deb-systemd-helper keeps their symlinks in its
# state; purge removes them) are saved with the directories.
saved=()
for p in /etc/mysqlchk /var/lib/mysqlchk /var/lib/systemd/deb-systemd-helper-enabled \
         /etc/systemd/system; do
    [ -e "$p" ] && saved+=("$p")
done
if [ ${#saved[@]} -gt 0 ]; then
    tar -C / -cpf "$work/saved.tar" "${saved[@]#/}"
fi

restore() {
    local rc=$?
    step "restoring what was there"
    # Any state dpkg knows, a half-configured package from a failed postinst included.
    case "$(dpkg-query -W -f='${db:Status-Status}' mysqlchk 2>/dev/null)" in
        "" | not-installed) ;;
        *) dpkg --purge mysqlchk >/dev/null 2>&1 || true ;;
    esac
    rm -rf /etc/mysqlchk /var/lib/mysqlchk
    if [ -z "$user_existed" ] && getent passwd mysqlchk >/dev/null; then
        userdel mysqlchk 2>/dev/null || true
        getent group mysqlchk >/dev/null && { groupdel mysqlchk 2>/dev/null || true; }
    fi
    if [ -n "$was_installed" ] && [ -n "${deb1:-}" ]; then
        echo "mysqlchk $was_installed was installed: installing the tested build in its place"
        dpkg -i "$deb1" </dev/null >/dev/null || true
        rm -rf /etc/mysqlchk /var/lib/mysqlchk
    fi
    if [ -f "$work/saved.tar" ]; then
        tar -C / -xpf "$work/saved.tar"
    fi
    rm -rf "$work"
    echo "package-test: $( [ $rc = 0 ] && echo passed || echo FAILED ) in $(( $(date +%s) - start ))s"
    exit $rc
}
trap restore EXIT

if [ -n "$was_installed" ]; then
    dpkg --purge mysqlchk >/dev/null
fi
rm -rf /etc/mysqlchk /var/lib/mysqlchk

# --- build and lint -----------------------------------------------------------------
step "cargo deb"
t=$(date +%s)
cargo deb --locked --output "$work/1" | tail -n 1
deb1=$(ls "$work"/1/mysqlchk_*.deb)
version=$(dpkg-deb -f "$deb1" Version)
# The same build as a newer version, to test an upgrade (no rebuild).
cargo deb --locked --no-build --fast --deb-version "$version+upgrade" --output "$work/2" | tail -n 1
deb2=$(ls "$work"/2/mysqlchk_*.deb)
echo "built in $(( $(date +%s) - t ))s"

step "lintian (errors fail; warnings listed)"
lint_rc=0
lintian --allow-root "$deb1" || lint_rc=$?
[ $lint_rc -lt 2 ] || fail "lintian reports errors"
echo "ok: lintian reports no error"

# --- install ------------------------------------------------------------------------
step "install $version"
timeout 300 dpkg -i "$deb1" </dev/null || fail "dpkg -i $deb1"
check "mysqlchk --version" sh -c '/usr/bin/mysqlchk --version | grep -qx "mysqlchk [0-9].*"'
check "user mysqlchk" getent passwd mysqlchk
check "group mysqlchk" getent group mysqlchk
check "man page found by man" man -w mysqlchk
check "man page of a subcommand" test -f /usr/share/man/man1/mysqlchk-serve.1.gz
check "man page readable" sh -c 'zcat /usr/share/man/man1/mysqlchk.1.gz | grep -q "^.SH FILES"'
check "bash completion" test -s /usr/share/bash-completion/completions/mysqlchk
check "zsh completion" test -s /usr/share/zsh/vendor-completions/_mysqlchk
check "fish completion" test -s /usr/share/fish/vendor_completions.d/mysqlchk.fish
for u in mysqlchk.socket mysqlchk-agent.socket mysqlchk-inetd.socket; do
    check "unit $u" test -s "/usr/lib/systemd/system/$u"
done
for u in mysqlchk.service mysqlchk@.service mysqlchk-inetd@.service; do
    check "unit $u runs /usr/bin/mysqlchk" grep -q '^ExecStart=/usr/bin/mysqlchk ' "/usr/lib/systemd/system/$u"
done
check "sysusers.d, tmpfiles.d" test -f /usr/lib/sysusers.d/mysqlchk.conf -a -f /usr/lib/tmpfiles.d/mysqlchk.conf
for f in mysqlchk.toml.example grants-mariadb.sql grants-mysql.sql xinetd.mysqlchk; do
    check "/usr/share/doc/mysqlchk/$f" test -s "/usr/share/doc/mysqlchk/$f"
done
check "/etc/mysqlchk root:mysqlchk 0750" sh -c '[ "$(stat -c %U:%G:%a /etc/mysqlchk)" = root:mysqlchk:750 ]'
check "/var/lib/mysqlchk root:mysqlchk 0750" sh -c '[ "$(stat -c %U:%G:%a /var/lib/mysqlchk)" = root:mysqlchk:750 ]'
check "config root:mysqlchk 0640" sh -c '[ "$(stat -c %U:%G:%a /etc/mysqlchk/mysqlchk.toml)" = root:mysqlchk:640 ]'
check "config is the example" cmp -s /etc/mysqlchk/mysqlchk.toml deploy/mysqlchk.toml.example
refute "no unit enabled" sh -c 'ls /etc/systemd/system/*.wants/mysqlchk* 2>/dev/null | grep -q .'
# (Other mysqlchk processes, from tests say, run other binaries.)
refute "nothing started" sh -c 'for p in /proc/[0-9]*; do readlink "$p/exe"; done | grep -qx /usr/bin/mysqlchk'
refute "the config is no conffile" sh -c 'dpkg-query -W -f="\${Conffiles}" mysqlchk | grep -q .'

# --- upgrade ------------------------------------------------------------------------
step "upgrade to $version+upgrade keeps the config"
echo "# package-test: an administrator's edit" >> /etc/mysqlchk/mysqlchk.toml
chmod 600 /etc/mysqlchk/mysqlchk.toml
cp -p /etc/mysqlchk/mysqlchk.toml "$work/edited.toml"
timeout 300 dpkg -i "$deb2" </dev/null || fail "upgrade: dpkg -i $deb2"
check "upgraded" sh -c "[ \"\$(dpkg-query -W -f='\${Version}' mysqlchk)\" = '$version+upgrade' ]"
check "config kept byte for byte" cmp -s /etc/mysqlchk/mysqlchk.toml "$work/edited.toml"
check "config mode kept" sh -c '[ "$(stat -c %a /etc/mysqlchk/mysqlchk.toml)" = 600 ]'
check "user still there" getent passwd mysqlchk

# --- purge --------------------------------------------------------------------------
step "purge"
dpkg --purge mysqlchk || fail "dpkg --purge"
refute "binary gone" test -e /usr/bin/mysqlchk
refute "units gone" test -e /usr/lib/systemd/system/mysqlchk.service
refute "man page gone" test -e /usr/share/man/man1/mysqlchk.1.gz
refute "/etc/mysqlchk gone" test -e /etc/mysqlchk
refute "/var/lib/mysqlchk gone" test -e /var/lib/mysqlchk
if [ -z "$user_existed" ]; then
    refute "user gone" getent passwd mysqlchk
    refute "group gone" getent group mysqlchk
else
    check "user kept (it was there before)" getent passwd mysqlchk
fi

# --- an existing config (a manual installation before the package) ------------------
step "install over an existing /etc/mysqlchk/mysqlchk.toml"
install -d -m 0750 /etc/mysqlchk
printf '# package-test: written before the package\n' > /etc/mysqlchk/mysqlchk.toml
cp -p /etc/mysqlchk/mysqlchk.toml "$work/manual.toml"
timeout 300 dpkg -i "$deb1" </dev/null || fail "dpkg -i over an existing config"
check "existing config untouched" cmp -s /etc/mysqlchk/mysqlchk.toml "$work/manual.toml"
dpkg --purge mysqlchk || fail "dpkg --purge"
check "purge keeps a config it did not create" cmp -s /etc/mysqlchk/mysqlchk.toml "$work/manual.toml"
refute "/var/lib/mysqlchk gone" test -e /var/lib/mysqlchk
check "user kept while /etc/mysqlchk holds files" getent passwd mysqlchk

echo
echo "package-test: all checks passed"
