#!/usr/bin/env bash
# Creates the Python venv that runs tests/mysql8/server.py, the emulated MySQL 8.0 server
# of the protocol-level tests (tests/mysql8.rs): `mysql-mimic` and its SQL parser, at
# pinned versions, from PyPI. Idempotent: a no-op (well under a second) when the venv
# already holds these versions. The tests run it themselves when the venv is missing.
#
#   venv: $MYSQLCHK_MIMIC_VENV, default .venv-mysql-mimic at the repository root
#   needs: python3 >= 3.8 with the venv module (Debian: apt-get install python3-venv)
set -euo pipefail
cd "$(dirname "$0")/.."

MYSQL_MIMIC_VERSION=3.0.5
# mysql-mimic requires sqlglot without a bound; its SHOW/SET handling follows sqlglot's
# parse trees, which change between releases: pin the one tested with.
SQLGLOT_VERSION=30.30.0

venv="${MYSQLCHK_MIMIC_VENV:-$PWD/.venv-mysql-mimic}"
want="mysql-mimic==$MYSQL_MIMIC_VERSION sqlglot==$SQLGLOT_VERSION"
stamp="$venv/.mysqlchk-installed"

installed() {
    [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
        "$venv/bin/python" -c 'import mysql_mimic' 2>/dev/null
}

installed && exit 0

# Several test binaries (or developers) may get here at once.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
installed && exit 0

python=${PYTHON:-python3}
command -v "$python" >/dev/null || {
    echo "setup-mysql-mimic: $python not found (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
}
rm -rf "$venv"
"$python" -m venv "$venv" || {
    echo "setup-mysql-mimic: '$python -m venv' failed (Debian: apt-get install python3-venv)" >&2
    exit 1
}
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "mysql-mimic==$MYSQL_MIMIC_VERSION" "sqlglot==$SQLGLOT_VERSION"
"$venv/bin/python" -c 'import mysql_mimic'
echo "$want" > "$stamp"
echo "setup-mysql-mimic: $want installed in $venv" >&2
