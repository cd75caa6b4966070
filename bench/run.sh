#!/usr/bin/env bash
# One-connection-per-check benchmark of mysqlchk against the classic xinetd + shell
# script setup (SPEC Appendix A, default and raised cps) and two static responders that
# do no work (nginx `return 200`, HAProxy `http-request return`), all on this machine,
# on loopback, in one run, interleaved.
#
#   bash bench/run.sh                 # full: 5 s per run, 3 rounds, concurrency 1 16 256
#   bash bench/run.sh --smoke         # 1 s per run, 1 round, concurrency 1 16
#   bash bench/run.sh -d 10 -r 5 -c "1 16 256" --targets "mysqlchk nginx"
#
# For every round, concurrency and target (the target order rotates every round) it
# runs bench/loadgen for D seconds and records: checks/s (complete 200 responses),
# latency p50/p99 of complete responses, every other outcome (503, refused, reset, ...),
# CPU per check of the server processes (utime+stime from /proc/<pid>/stat before and
# after, including reaped children: for xinetd that is every forked script and mysql
# client), mysqld CPU per check, MySQL queries/s and logins/s during the run (Questions
# and Connections from SHOW GLOBAL STATUS, less the bench's own reads; they include
# the mysqlchk daemon's background prober, which runs throughout: the static
# responders' rows show that baseline), and mysqlchk's RSS (VmHWM). It prints a
# markdown table (medians, min-max over rounds) with the targets PASS/FAIL, and writes
# the raw results to bench/results/<date>.json (--smoke: only printed). Everything it
# starts runs in a temporary directory and is stopped on exit.
#
# Needs root (xinetd switches to `nobody`; sysctl), cargo, and Debian's mariadb-server,
# mariadb-client, xinetd, nginx-light, haproxy (installed if missing, not started).
# Loopback only; every wait and every run has a deadline.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COMMAND="bash bench/run.sh$(printf ' %q' "$@")"
[ $# -eq 0 ] && COMMAND="bash bench/run.sh"
json_escape() { local s=${1//\\/\\\\}; printf '%s' "${s//\"/\\\"}"; }
BENCH="$REPO/bench"

DURATION=5
ROUNDS=3
CONCURRENCY="1 16 256"
TARGETS="mysqlchk classic-default classic-raised nginx haproxy"
TIMEOUT=10        # per request (the classic script has none of its own)
IDLE_WAIT=60      # before each run, wait up to this long for the machine to be idle
SMOKE=0
KEEP=0
OUT=""

usage() {
    sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
    cat <<EOF

options:
  --smoke            1-second runs, 1 round, concurrency "1 16" (a quick check)
  -d, --duration S   seconds per run (default $DURATION)
  -r, --rounds N     rounds (default $ROUNDS)
  -c, --concurrency L  list of concurrencies (default "$CONCURRENCY")
  --targets L        subset of: $TARGETS
  --timeout S        per-request timeout of the load generator (default $TIMEOUT)
  --idle-wait S      before each run wait up to S seconds until other processes use
                     < 15% of the machine (default $IDLE_WAIT; 0 = do not wait)
  --out FILE         where to write the JSON results (default bench/results/<date>.json)
  --keep             keep the temporary directory (logs, configs)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1; DURATION=1; ROUNDS=1; CONCURRENCY="1 16"; IDLE_WAIT=0 ;;
        -d|--duration) DURATION=$2; shift ;;
        -r|--rounds) ROUNDS=$2; shift ;;
        -c|--concurrency) CONCURRENCY=$2; shift ;;
        --targets) TARGETS=$2; shift ;;
        --timeout) TIMEOUT=$2; shift ;;
        --out) OUT=$2; shift ;;
        --idle-wait) IDLE_WAIT=$2; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
for t in $TARGETS; do
    case "$t" in mysqlchk|classic-default|classic-raised|nginx|haproxy) ;;
        *) echo "run.sh: unknown target $t" >&2; exit 2 ;;
    esac
done

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (xinetd must switch to an unprivileged user; sysctl)"

# --- dependencies -------------------------------------------------------------------
need_pkgs=()
command -v mariadbd >/dev/null || need_pkgs+=(mariadb-server)
command -v mariadb >/dev/null || need_pkgs+=(mariadb-client)
command -v xinetd >/dev/null || need_pkgs+=(xinetd)
command -v nginx >/dev/null || need_pkgs+=(nginx-light)
command -v haproxy >/dev/null || need_pkgs+=(haproxy)
command -v pgrep >/dev/null || need_pkgs+=(procps)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing ${need_pkgs[*]} (services are not started: policy-rc.d)"
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain first"

# --- workspace and cleanup ----------------------------------------------------------
WORK=$(mktemp -d /tmp/mysqlchk-bench.XXXXXX)
chmod 755 "$WORK"            # the classic script runs as nobody: it must reach its files
PIDS=()                      # everything we started, stopped in reverse order on exit
SYSCTL_RESTORE=""

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    # Scripts that xinetd forked and that are still running (a hung check): by pid.
    # shellcheck disable=SC2013 # one pid per line
    for pid in $(cat "$WORK"/classic-children.pids 2>/dev/null); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "$SYSCTL_RESTORE" ]; then
        sysctl -q -w "$SYSCTL_RESTORE" >/dev/null 2>&1 || true
    fi
    if [ $KEEP = 1 ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build --------------------------------------------------------------------------
log "building mysqlchk (release) and the load generator"
(cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
cargo build --release --quiet --manifest-path "$BENCH/loadgen/Cargo.toml" \
    || die "building bench/loadgen failed"
MYSQLCHK="$REPO/target/release/mysqlchk"
LOADGEN="$BENCH/loadgen/target/release/loadgen"

# --- kernel settings ----------------------------------------------------------------
# Every check is a new connection: tens of thousands per second leave sockets in
# TIME_WAIT. tcp_tw_reuse (1 everywhere, 2 = loopback only, the default since 4.x)
# lets connect() reuse them; we set 1 only if it is 0, and restore it on exit.
TW_REUSE=$(sysctl -n net.ipv4.tcp_tw_reuse 2>/dev/null || echo unknown)
if [ "$TW_REUSE" = 0 ]; then
    if sysctl -q -w net.ipv4.tcp_tw_reuse=1 >/dev/null 2>&1; then
        SYSCTL_RESTORE="net.ipv4.tcp_tw_reuse=0"
        TW_REUSE="1 (set by the bench, was 0)"
    else
        log "WARNING: net.ipv4.tcp_tw_reuse=0 and cannot be changed: expect addr_not_avail outcomes"
    fi
fi
PORT_RANGE=$(sysctl -n net.ipv4.ip_local_port_range 2>/dev/null | tr '\t' ' ' || echo unknown)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

read -r MYSQL_PORT CHK_PORT XD_PORT XR_PORT NGINX_PORT HAP_PORT < <("$LOADGEN" freeport 6)
hexpw() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
CHK_PW=$(hexpw)
CLASSIC_USER=mysqlchkusr
CLASSIC_PW=$(hexpw)

# --- helpers ------------------------------------------------------------------------
sql() { mariadb --no-defaults -uroot -h127.0.0.1 -P"$MYSQL_PORT" -N -B -e "$1"; }

# Status code of one GET / on a port (empty if none), via bash's /dev/tcp.
http_status() {
    local line=""
    { exec 9<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 0
    printf 'GET / HTTP/1.0\r\n\r\n' >&9 2>/dev/null || true
    IFS= read -r -t 10 line <&9 2>/dev/null || true
    exec 9<&- 9>&- 2>/dev/null || true
    [[ "$line" =~ ^HTTP/1\.[01]\ ([0-9]{3}) ]] && echo "${BASH_REMATCH[1]}"
    return 0
}

wait_for_200() { # name port deadline_s
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        [ "$(http_status "$2")" = 200 ] && return 0
        sleep 0.1
    done
    die "$1 on port $2 did not answer 200 within $3 s (logs in $WORK; rerun with --keep)"
}

# utime+stime+cutime+cstime of a process, in clock ticks (0 if gone).
ticks() {
    awk '{ sub(/.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
sum_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(ticks "$p"))); done; echo $t; }
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
now() { date +%s.%N; }
# Clock ticks the whole machine (all CPUs) spent running processes: user, nice and
# system (irq/softirq time is left out, as it is out of the per-process figures).
machine_busy() { awk '$1 == "cpu" { print $2 + $3 + $4; exit }' /proc/stat; }
# Wait (at most IDLE_WAIT s) until the machine was < 15% busy during one second:
# other work on the machine (builds, tests) skews every figure. Prints seconds waited.
wait_idle() {
    local waited=0 b0 b1 limit
    limit=$(($(nproc) * $(getconf CLK_TCK) * 15 / 100))
    while [ "$waited" -lt "$IDLE_WAIT" ]; do
        b0=$(machine_busy); sleep 1; b1=$(machine_busy)
        [ $((b1 - b0)) -lt "$limit" ] && break
        waited=$((waited + 1))
    done
    echo "$waited"
}

# Questions and Connections (logins, successful or not) of the whole server.
mysql_counters() {
    sql "SELECT
      (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='QUESTIONS'),
      (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='CONNECTIONS')"
}
# Lines xinetd wrote to its own log (-filelog): counts "Deactivating service" episodes.
deactivations() {
    local n
    n=$(grep -c "excessive incoming connections" "$WORK/xinetd-$1.msg" 2>/dev/null) || true
    echo "${n:-0}"
}

# --- MariaDB ------------------------------------------------------------------------
SMALL=(--innodb-buffer-pool-size=64M --innodb-log-file-size=16M
       --innodb-buffer-pool-load-at-startup=OFF --innodb-buffer-pool-dump-at-shutdown=OFF
       --performance-schema=OFF)
log "MariaDB on 127.0.0.1:$MYSQL_PORT"
mariadb-install-db --no-defaults --datadir="$WORK/data" --auth-root-authentication-method=normal \
    --skip-test-db --user=root "${SMALL[@]}" >"$WORK/install-db.log" 2>&1 \
    || die "mariadb-install-db failed: $(tail -5 "$WORK/install-db.log")"
mariadbd --no-defaults --datadir="$WORK/data" --port="$MYSQL_PORT" --bind-address=127.0.0.1 \
    --socket="$WORK/mysqld.sock" --pid-file="$WORK/mysqld.pid" --log-error="$WORK/mysqld.err" \
    --tmpdir="$WORK" --user=root --skip-name-resolve --host-cache-size=0 \
    --max-connect-errors=1000000 "${SMALL[@]}" >/dev/null 2>&1 &
DB_PID=$!
PIDS+=("$DB_PID")
for i in $(seq 600); do
    sql "SELECT 1" >/dev/null 2>&1 && break
    kill -0 "$DB_PID" 2>/dev/null || die "mariadbd exited: $(tail -5 "$WORK/mysqld.err")"
    [ "$i" = 600 ] && die "MariaDB not ready after 60 s"
    sleep 0.1
done
MAX_CONNECTIONS=$(sql "SELECT @@max_connections")

# The checker's account: the least-privilege grants of deploy/grants-mariadb.sql.
sql "CREATE USER 'mysqlchk'@'127.0.0.1' IDENTIFIED BY '$CHK_PW'
       WITH MAX_USER_CONNECTIONS 3 PASSWORD EXPIRE NEVER;
     GRANT SLAVE MONITOR ON *.* TO 'mysqlchk'@'127.0.0.1';"
# The classic script's account, as it was granted.
sed -e "s/@USER@/$CLASSIC_USER/g" -e "s/@PASSWORD@/$CLASSIC_PW/g" "$BENCH/classic/grants.sql" \
    | mariadb --no-defaults -uroot -h127.0.0.1 -P"$MYSQL_PORT"

# What one mysql_counters call itself adds to Questions and Connections (nothing else
# talks to the server yet): subtracted from every run's figures.
read -r q1 c1 < <(mysql_counters)
read -r q2 c2 < <(mysql_counters)
Q_OVERHEAD=$((q2 - q1))
C_OVERHEAD=$((c2 - c1))

# --- mysqlchk -----------------------------------------------------------------------
cat >"$WORK/mysqlchk.toml" <<EOF
[listen]
http = ["127.0.0.1:$CHK_PORT"]
# Every benchmark connection comes from 127.0.0.1: the per-address limit (default 64)
# would refuse most of the 256 concurrent ones.
max_connections = 4096
max_connections_per_ip = 4096

[mysql]
host = "127.0.0.1"
port = $MYSQL_PORT
user = "mysqlchk"
# password: MYSQLCHK_MYSQL_PASSWORD

[check]
interval = "1s"
maintenance_file = "$WORK/maintenance"

[log]
level = "warn"
EOF
log "mysqlchk on 127.0.0.1:$CHK_PORT"
MYSQLCHK_MYSQL_PASSWORD="$CHK_PW" "$MYSQLCHK" serve -c "$WORK/mysqlchk.toml" \
    >"$WORK/mysqlchk.log" 2>&1 &
CHK_PID=$!
PIDS+=("$CHK_PID")
wait_for_200 mysqlchk "$CHK_PORT" 30

# --- the classic setup: xinetd + the script -----------------------------------------
install -d -m 1777 "$WORK/tmp"          # the script's "/tmp": shared by every check
sed -e "s|^MYSQL_HOST=.*|MYSQL_HOST=\"127.0.0.1\"|" \
    -e "s|^MYSQL_PORT=.*|MYSQL_PORT=\"$MYSQL_PORT\"|" \
    -e "s|^MYSQL_USERNAME=.*|MYSQL_USERNAME=\"$CLASSIC_USER\"|" \
    -e "s|^MYSQL_PASSWORD=.*|MYSQL_PASSWORD=\"$CLASSIC_PW\"|" \
    -e "s|^TMP_FILE=.*|TMP_FILE=\"$WORK/tmp/mysqlchk.out\"|" \
    -e "s|^ERR_FILE=.*|ERR_FILE=\"$WORK/tmp/mysqlchk.err\"|" \
    "$BENCH/classic/mysqlchk.sh" >"$WORK/mysqlchk.sh"
chmod 755 "$WORK/mysqlchk.sh"
XINETD_USER=nobody
if ! runuser -u nobody -- sh -c "test -x '$WORK/mysqlchk.sh' && test -w '$WORK/tmp'" 2>/dev/null; then
    XINETD_USER=root
    log "nobody cannot run the script or write its files here: xinetd runs it as root"
fi
declare -A XPID
start_xinetd() { # variant port cps-line
    local v=$1 port=$2 cps=$3
    sed -e "s|@PORT@|$port|" -e "s|@USER@|$XINETD_USER|" -e "s|@SERVER@|$WORK/mysqlchk.sh|" \
        -e "s|@LOG@|$WORK/xinetd-$v.log|" -e "s|@CPS@|$cps|" \
        "$BENCH/classic/xinetd.conf.in" >"$WORK/xinetd-$v.conf"
    xinetd -dontfork -f "$WORK/xinetd-$v.conf" -pidfile "$WORK/xinetd-$v.pid" \
        -filelog "$WORK/xinetd-$v.msg" \
        >"$WORK/xinetd-$v.out" 2>&1 &
    XPID[$v]=$!
    PIDS+=("${XPID[$v]}")
    wait_for_200 "xinetd ($v)" "$port" 30
}
if [[ " $TARGETS " == *" classic-default "* ]]; then
    log "classic xinetd setup, default cps (50 10), on 127.0.0.1:$XD_PORT"
    start_xinetd default "$XD_PORT" "	# cps not set: xinetd's default, cps = 50 10"
fi
if [[ " $TARGETS " == *" classic-raised "* ]]; then
    log "classic xinetd setup, cps = 100000 1, on 127.0.0.1:$XR_PORT"
    start_xinetd raised "$XR_PORT" "	cps             = 100000 1"
fi

# --- static responders --------------------------------------------------------------
if [[ " $TARGETS " == *" nginx "* ]]; then
    mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
    cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp;
    proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp;
    uwsgi_temp_path $WORK/nginx/tmp;
    scgi_temp_path $WORK/nginx/tmp;
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        default_type text/plain;
        location / { return 200 "ok\n"; }
    }
}
EOF
    log "nginx on 127.0.0.1:$NGINX_PORT"
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/out.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_for_200 nginx "$NGINX_PORT" 30
fi
if [[ " $TARGETS " == *" haproxy "* ]]; then
    cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend static
    bind 127.0.0.1:$HAP_PORT
    http-request return status 200 content-type text/plain string "ok"
EOF
    log "HAProxy on 127.0.0.1:$HAP_PORT"
    haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
    HAP_PID=$!
    PIDS+=("$HAP_PID")
    wait_for_200 haproxy "$HAP_PORT" 30
fi

# --- the runs -----------------------------------------------------------------------
port_of() {
    case "$1" in
        mysqlchk) echo "$CHK_PORT" ;; classic-default) echo "$XD_PORT" ;;
        classic-raised) echo "$XR_PORT" ;; nginx) echo "$NGINX_PORT" ;; haproxy) echo "$HAP_PORT" ;;
    esac
}
# shellcheck disable=SC2046 # nginx's worker pids: one word each
pids_of() {
    case "$1" in
        mysqlchk) echo "$CHK_PID" ;;
        classic-default) echo "${XPID[default]}" ;;
        classic-raised) echo "${XPID[raised]}" ;;
        nginx) echo "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true) ;;
        haproxy) echo "$HAP_PID" ;;
    esac
}
# Until every script xinetd forked has exited (and been reaped into its cutime).
wait_children() { # pid -> prints how many were still running at the deadline
    local i
    for ((i = 0; i < (TIMEOUT + 20) * 20; i++)); do
        pgrep -P "$1" >/dev/null || { echo 0; return; }
        sleep 0.05
    done
    pgrep -P "$1" | tee -a "$WORK/classic-children.pids" | wc -l
}

RUNS="$WORK/runs.jsonl"
: >"$RUNS"
read -ra TLIST <<<"$TARGETS"
read -ra CLIST <<<"$CONCURRENCY"
NT=${#TLIST[@]}
TOTAL=$((ROUNDS * ${#CLIST[@]} * NT))
log "$TOTAL runs of ${DURATION}s: $ROUNDS round(s) x concurrency ($CONCURRENCY) x ($TARGETS)"
n=0
for ((r = 1; r <= ROUNDS; r++)); do
    for c in "${CLIST[@]}"; do
        for ((k = 0; k < NT; k++)); do
            t=${TLIST[$(((k + r - 1) % NT))]}   # rotate the order every round
            n=$((n + 1))
            port=$(port_of "$t")
            read -ra pids <<<"$(pids_of "$t")"
            xp=""
            [[ $t == classic-* ]] && xp=${pids[0]}
            [ -n "$xp" ] && wait_children "$xp" >/dev/null
            xv=""
            [[ $t == classic-* ]] && xv=${t#classic-}
            d0=0; [ -n "$xv" ] && d0=$(deactivations "$xv")
            idle_waited=0
            [ "$IDLE_WAIT" -gt 0 ] && idle_waited=$(wait_idle)
            read -r q0 cn0 < <(mysql_counters)
            s0=$(sum_ticks "${pids[@]}"); m0=$(ticks "$DB_PID"); b0=$(machine_busy); t0=$(now)
            lg=$(timeout $((${DURATION%.*} + TIMEOUT + 30)) "$LOADGEN" run --port "$port" \
                -c "$c" -d "$DURATION" --timeout "$TIMEOUT" --label "$t") \
                || die "loadgen failed against $t (concurrency $c)"
            left=0
            [ -n "$xp" ] && left=$(wait_children "$xp")
            t1=$(now); s1=$(sum_ticks "${pids[@]}"); m1=$(ticks "$DB_PID"); b1=$(machine_busy)
            read -r q1 cn1 < <(mysql_counters)
            d1=0; [ -n "$xv" ] && d1=$(deactivations "$xv")
            rss=0; hwm=0
            if [ "$t" = mysqlchk ]; then
                rss=$(status_kib "$CHK_PID" VmRSS); hwm=$(status_kib "$CHK_PID" VmHWM)
            fi
            printf '{"round":%d,"seq":%d,"target":"%s","concurrency":%d,"window_s":%s,"clk_tck":%d,"server_cpu_ticks":%d,"server_pids":"%s","mysqld_cpu_ticks":%d,"machine_busy_ticks":%d,"idle_waited_s":%d,"mysql_questions":%d,"mysql_connections":%d,"xinetd_deactivations":%d,"children_left":%d,"mysqlchk_rss_kib":%d,"mysqlchk_hwm_kib":%d,"loadgen":%s}\n' \
                "$r" "$n" "$t" "$c" "$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')" "$(getconf CLK_TCK)" \
                $((s1 - s0)) "${pids[*]}" $((m1 - m0)) $((b1 - b0)) "$idle_waited" $((q1 - q0 - Q_OVERHEAD)) \
                $((cn1 - cn0 - C_OVERHEAD)) $((d1 - d0)) "$left" "$rss" "$hwm" "$lg" >>"$RUNS"
            log "$(printf '%3d/%d round %d  c=%-3s %-16s %s' "$n" "$TOTAL" "$r" "$c" "$t" \
                "$(jq -r '"\(.ok_rps|floor) ok/s, p99 \(.latency_ms.p99) ms, 503: \(.status_503), refused: \(.outcomes.refused)"' <<<"$lg" 2>/dev/null || echo "$lg")")"
        done
    done
done

# --- report -------------------------------------------------------------------------
git_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(git -C "$REPO" status --porcelain -- src Cargo.toml 2>/dev/null | head -c 1 | wc -c)
cat >"$WORK/meta.json" <<EOF
{"date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","command":"$(json_escape "$COMMAND")",
 "duration_s":$DURATION,"rounds":$ROUNDS,"concurrency":"$CONCURRENCY","targets":"$TARGETS","timeout_s":$TIMEOUT,
 "cpus":$(nproc),"cpu_model":"$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo | tr -d '"')",
 "kernel":"$(uname -r)","memory_kib":$(awk '/^MemTotal/ {print $2}' /proc/meminfo),
 "mysqlchk_git":"$git_rev$([ "$git_dirty" != 0 ] && echo '+dirty')",
 "mariadb":"$(mariadbd --version | sed 's/.*Ver //; s/ for .*//')","max_connections":$MAX_CONNECTIONS,
 "nginx":"$(nginx -v 2>&1 | sed 's/.*nginx\///')","haproxy":"$(haproxy -v | awk 'NR==1 {print $3}')",
 "xinetd":"$(xinetd -version 2>&1 | awk 'NR==1 {print $1}')","xinetd_user":"$XINETD_USER",
 "tcp_tw_reuse":"$TW_REUSE","ip_local_port_range":"$PORT_RANGE",
 "questions_per_counter_read":$Q_OVERHEAD,"connections_per_counter_read":$C_OVERHEAD,
 "xinetd_default_deactivations":$(deactivations default),"xinetd_raised_deactivations":$(deactivations raised)}
EOF
if [ -z "$OUT" ] && [ $SMOKE = 0 ]; then
    mkdir -p "$BENCH/results"
    OUT="$BENCH/results/$(date -u +%Y-%m-%dT%H%M%SZ).json"
fi
args=("$RUNS" --meta "$WORK/meta.json")
[ -n "$OUT" ] && args+=(--out "$OUT")
"$LOADGEN" summarize "${args[@]}"
if [ -n "$OUT" ]; then
    log "raw results: $OUT"
fi
