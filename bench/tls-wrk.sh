#!/usr/bin/env bash
# The throughput cost of HTTPS on the HTTP listener (README, "Benchmarks", "TLS"): one
# mysqlchk (release build) with two HTTP listeners on loopback, one plain and — in a
# second process with the same config plus listen.tls_cert/tls_key — one HTTPS, loaded
# in turn by wrk with `Connection: close` (a new connection, and with TLS a full
# handshake, per check, as HAProxy's checks do). bench/loadgen speaks no TLS, hence wrk.
#
#   bash bench/tls-wrk.sh [-d SECONDS] [-r ROUNDS] [-c "1 16"]
#
# It prints checks/s and the server's CPU (utime+stime) per check; wrk shares the
# machine, so checks/s depends on its TLS client cost too, CPU per check does not.
# MySQL is not needed: the daemon points at a closed port and answers `503 health:
# down`, the same snapshot-read-and-render path as a 200 (wrk counts both). Needs
# wrk, openssl and cargo. Loopback only; everything lives in a temporary directory.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=5
ROUNDS=3
CONCURRENCY="1 16"
while [ $# -gt 0 ]; do
    case $1 in
        -d) DURATION=$2; shift 2 ;;
        -r) ROUNDS=$2; shift 2 ;;
        -c) CONCURRENCY=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
(cd "$REPO" && CARGO_INCREMENTAL=0 cargo build --release --bin mysqlchk >/dev/null)
BIN="$REPO/target/release/mysqlchk"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=bench -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PLAIN=$(free_port)
TLS=$(free_port)
DEAD=$(free_port)   # nothing listens there: MySQL "down"

conf() { # port, extra listen lines
    cat <<EOF
[listen]
http = "127.0.0.1:$1"
max_connections_per_ip = 4096
$2
[mysql]
port = $DEAD
[check]
maintenance_file = "$TMP/maintenance"
[log]
level = "error"
EOF
}
conf "$PLAIN" "" >"$TMP/plain.toml"
conf "$TLS" "tls_cert = \"$TMP/cert.pem\"
tls_key = \"$TMP/key.pem\"" >"$TMP/tls.toml"
env -u MYSQLCHK_MIMIC_VENV "$BIN" serve -c "$TMP/plain.toml" 2>"$TMP/plain.log" &
PIDS+=($!)
env -u MYSQLCHK_MIMIC_VENV "$BIN" serve -c "$TMP/tls.toml" 2>"$TMP/tls.log" &
PIDS+=($!)
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$PLAIN/" && curl -sk -o /dev/null "https://127.0.0.1:$TLS/" && break
    sleep 0.1
done

# utime+stime of a process in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
# One wrk run: prints "checks/s server-CPU-µs-per-check".
run() { # url pid threads conns
    local before after out rps total
    before=$(ticks "$2")
    out=$(wrk -t"$3" -c"$4" -d"${DURATION}s" -H 'Connection: close' "$1")
    after=$(ticks "$2")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    total=$(awk '/requests in/ {print $1}' <<<"$out")
    echo "$rps $(echo "($after - $before) * 1000000 / $HZ / $total" | bc -l)"
}
printf '| conc. | round | plain checks/s | HTTPS checks/s | HTTPS ÷ plain | plain CPU µs/check | HTTPS CPU µs/check |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|\n'
for c in $CONCURRENCY; do
    t=$(( c < 2 ? 1 : 2 ))
    for r in $(seq "$ROUNDS"); do
        read -r p pc < <(run "http://127.0.0.1:$PLAIN/" "${PIDS[0]}" "$t" "$c")
        read -r s sc < <(run "https://127.0.0.1:$TLS/" "${PIDS[1]}" "$t" "$c")
        printf '| %s | %s | %.0f | %.0f | %.2f | %.1f | %.1f |\n' "$c" "$r" "$p" "$s" \
            "$(echo "$s / $p" | bc -l)" "$pc" "$sc"
    done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); nproc: $(nproc)"
