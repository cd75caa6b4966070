#!/usr/bin/env bash
# Fleet-mode figures (README "Fleet mode", "Benchmarks"): one mysqlchk watching N
# targets, N = 1, 10, 100, 1000, against a few real MariaDB servers on loopback.
#
#   bash bench/fleet.sh               # full: N = 1 10 100 1000, 30 s windows, 3 rounds
#   bash bench/fleet.sh --smoke       # N = 1 10, 5 s windows, 1 round, 1 s loadgen runs
#   bash bench/fleet.sh -n "1 1000" -w 10 -r 2
#
# Addresses. Two [[target]] entries may not probe the same server (same host and
# port), so the targets differ by address: S MariaDB servers (--servers, default 4),
# each on its own port and bound to the loopback aliases 127.0.0.1 .. 127.0.0.A
# (bind-address takes a comma-separated list; Linux routes all of 127/8 to lo, nothing
# to configure). Target i (named db<i>) probes server i % S at 127.0.0.(i / S + 1): 1,000
# distinct host:port pairs over 4 servers x 250 aliases. Each server has
# max_connections = ceil(1200 / S) (1,200 in all). A separate single-target mysqlchk
# (a config without [[target]]) probes its own MariaDB, so the fleet servers' Questions
# are the fleet checker's alone.
#
# Per round and per N (a fresh fleet checker each time, started and waited for until
# every target has a snapshot), it measures:
#   - quiet window (-w S, no requests): mysqlchk CPU % (utime+stime over the window),
#     VmRSS, VmHWM and thread count at its end, and the fleet servers' Questions per
#     target per interval (less the bench's own counter reads);
#   - age window (-w S): `loadgen ages` samples /status every --age-every-ms and takes
#     every target's snapshot age_seconds: p50, p99, max;
#   - throughput: bench/loadgen (one connection per check, -c C, -d D) against the fleet
#     checker with an `X-Haproxy-Server-State` header naming its last target (what
#     HAProxy's `http-check send-state` sends) and against the single-target checker,
#     back to back, order alternating per round: the ratio fleet / single.
# The single-target checker's own quiet window (CPU, RSS, Questions per interval) is
# measured once per round, as the reference. It prints a markdown table (median and
# min-max over rounds) and writes raw lines and the table to bench/results/fleet-<date>.json
# (not with --smoke). The machine may be shared: the figures are as noisy as it is.
#
# Needs cargo, Debian's mariadb-server and mariadb-client, curl, jq. Loopback only;
# everything it starts runs in a temporary directory and is stopped on exit.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COMMAND="bash bench/fleet.sh$(printf ' %q' "$@")"
[ $# -eq 0 ] && COMMAND="bash bench/fleet.sh"
BENCH="$REPO/bench"

NS="1 10 100 1000"
ROUNDS=3
WINDOW=30
AGE_EVERY_MS=100
LG_DURATION=5
LG_CONC=16
SERVERS=4
TOTAL_MAX_CONN=1200
IDLE_WAIT=30
SMOKE=0
KEEP=0
OUT=""
WRAP=""

usage() {
    sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
    cat <<EOF

options:
  --smoke              N = "1 10", 5 s windows, 1 round, 1 s loadgen runs, no idle wait
  -n, --targets L      list of target counts (default "$NS")
  -r, --rounds N       rounds (default $ROUNDS)
  -w, --window S       seconds of each quiet and age window (default $WINDOW)
  --age-every-ms MS    /status sampling period (default $AGE_EVERY_MS)
  -d, --duration S     seconds per loadgen run (default $LG_DURATION)
  -c, --concurrency C  loadgen concurrency (default $LG_CONC)
  --servers S          MariaDB servers for the fleet (default $SERVERS)
  --idle-wait S        before each quiet window wait up to S s for the machine to be
                       < 15% busy (default $IDLE_WAIT; 0 = do not wait)
  --out FILE           results file (default bench/results/fleet-<date>.json)
  --keep               keep the temporary directory
  --wrap CMD           run the fleet checker under CMD (e.g. "heaptrack -o /tmp/h"),
                       to find where its memory goes; its figures are then the wrapper's
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1; NS="1 10"; ROUNDS=1; WINDOW=5; LG_DURATION=1; IDLE_WAIT=0 ;;
        -n|--targets) NS=$2; shift ;;
        -r|--rounds) ROUNDS=$2; shift ;;
        -w|--window) WINDOW=$2; shift ;;
        --age-every-ms) AGE_EVERY_MS=$2; shift ;;
        -d|--duration) LG_DURATION=$2; shift ;;
        -c|--concurrency) LG_CONC=$2; shift ;;
        --servers) SERVERS=$2; shift ;;
        --idle-wait) IDLE_WAIT=$2; shift ;;
        --out) OUT=$2; shift ;;
        --keep) KEEP=1 ;;
        --wrap) WRAP=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "fleet.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[fleet %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for c in mariadbd mariadb-install-db mariadb curl jq cargo; do
    command -v $c >/dev/null || die "$c not found (apt-get install mariadb-server mariadb-client curl jq)"
done
NMAX=0
for n in $NS; do
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || die "bad target count $n"
    [ "$n" -gt $NMAX ] && NMAX=$n
done
ALIASES=$(((NMAX + SERVERS - 1) / SERVERS))
[ "$ALIASES" -le 254 ] || die "$NMAX targets over $SERVERS servers need $ALIASES aliases (max 254): raise --servers"
PER_SERVER_CONN=$(((TOTAL_MAX_CONN + SERVERS - 1) / SERVERS))
[ "$PER_SERVER_CONN" -gt "$((ALIASES + 10))" ] || PER_SERVER_CONN=$((ALIASES + 10))

WORK=$(mktemp -d /tmp/mysqlchk-fleet.XXXXXX)
PIDS=()
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    # A --wrap command's child (the checker itself) first, by its parent's pid.
    for pid in "${PIDS[@]}"; do pkill -TERM -P "$pid" 2>/dev/null || true; done
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[i]}" 2>/dev/null || true; done
    for _ in $(seq 100); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    if [ $KEEP = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building mysqlchk (release) and the load generator"
(cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
cargo build --release --quiet --manifest-path "$BENCH/loadgen/Cargo.toml" || die "building bench/loadgen failed"
MYSQLCHK="$REPO/target/release/mysqlchk"
LOADGEN="$BENCH/loadgen/target/release/loadgen"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
now() { date +%s.%N; }
machine_busy() { awk '$1 == "cpu" { print $2 + $3 + $4; exit }' /proc/stat; }
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
CLK_TCK=$(getconf CLK_TCK)

# --- MariaDB: S fleet servers + 1 for the single-target checker ---------------------
SMALL=(--innodb-buffer-pool-size=32M --innodb-log-file-size=16M
       --innodb-buffer-pool-load-at-startup=OFF --innodb-buffer-pool-dump-at-shutdown=OFF
       --performance-schema=OFF --skip-name-resolve --host-cache-size=0
       --max-connect-errors=1000000 --skip-log-bin)
read -ra PORTS < <("$LOADGEN" freeport $((SERVERS + 1)))
BIND=$(seq -s, -f '127.0.0.%g' 1 "$ALIASES")
log "installing one datadir, copied for $((SERVERS + 1)) servers"
mariadb-install-db --no-defaults --datadir="$WORK/data0" --auth-root-authentication-method=normal \
    --skip-test-db --user=root "${SMALL[@]}" >"$WORK/install-db.log" 2>&1 \
    || die "mariadb-install-db failed: $(tail -5 "$WORK/install-db.log")"
DB_PIDS=()
for ((s = 0; s <= SERVERS; s++)); do
    [ $s = 0 ] || cp -a "$WORK/data0" "$WORK/data$s"
    if [ $s -lt "$SERVERS" ]; then bind=$BIND; mc=$PER_SERVER_CONN; else bind=127.0.0.1; mc=20; fi
    mariadbd --no-defaults --datadir="$WORK/data$s" --port="${PORTS[s]}" --bind-address="$bind" \
        --socket="$WORK/mysqld$s.sock" --pid-file="$WORK/mysqld$s.pid" --log-error="$WORK/mysqld$s.err" \
        --tmpdir="$WORK" --user=root --max-connections="$mc" "${SMALL[@]}" >/dev/null 2>&1 &
    DB_PIDS+=($!)
    PIDS+=($!)
done
sql() { mariadb --no-defaults -uroot -h127.0.0.1 -P"${PORTS[$1]}" -N -B -e "$2"; }
for ((s = 0; s <= SERVERS; s++)); do
    for i in $(seq 600); do
        sql "$s" "SELECT 1" >/dev/null 2>&1 && break
        kill -0 "${DB_PIDS[s]}" 2>/dev/null || die "mariadbd $s exited: $(tail -5 "$WORK/mysqld$s.err")"
        [ "$i" = 600 ] && die "MariaDB $s not ready after 60 s"
        sleep 0.1
    done
done
log "MariaDB: fleet servers on ports ${PORTS[*]:0:SERVERS} (127.0.0.1..127.0.0.$ALIASES each, max_connections $PER_SERVER_CONN), single-target server on ${PORTS[SERVERS]}"
CHK_PW=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
# The least-privilege grants of deploy/grants-mariadb.sql, from any loopback alias and
# without MAX_USER_CONNECTIONS: one account holds up to 250 connections per server here.
for ((s = 0; s <= SERVERS; s++)); do
    sql "$s" "CREATE USER 'mysqlchk'@'127.0.0.%' IDENTIFIED BY '$CHK_PW' PASSWORD EXPIRE NEVER;
              GRANT SLAVE MONITOR ON *.* TO 'mysqlchk'@'127.0.0.%';"
done
questions() { # sum of Questions over the servers given
    local t=0 s q
    for s in "$@"; do
        q=$(sql "$s" "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='QUESTIONS'")
        t=$((t + q))
    done
    echo $t
}
FLEET_SERVERS=$(seq 0 $((SERVERS - 1)))
# What one questions() read adds per server (nothing else talks to the servers yet).
q1=$(questions 0); q2=$(questions 0); Q_OVERHEAD=$((q2 - q1))

# --- mysqlchk configs and processes -------------------------------------------------
write_config() { # file http_port n(0 = single target)
    local f=$1 port=$2 n=$3 i
    {
        cat <<EOF
[listen]
http = ["127.0.0.1:$port"]
# Every benchmark connection comes from 127.0.0.1 (the default per-address limit is 64).
max_connections = 4096
max_connections_per_ip = 4096

[mysql]
host = "127.0.0.1"
port = ${PORTS[SERVERS]}
user = "mysqlchk"

[check]
interval = "1s"
maintenance_file = "$WORK/maint-$port/maintenance"

[log]
level = "warn"
EOF
        for ((i = 0; i < n; i++)); do
            printf '\n[[target]]\nname = "db%d"\nhost = "127.0.0.%d"\nport = %d\n' \
                "$i" $((i / SERVERS + 1)) "${PORTS[i % SERVERS]}"
        done
    } >"$f"
    mkdir -p "$WORK/maint-$port"
}
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }
start_checker() { # name port n -> sets CHK_PID
    local wrap=()
    write_config "$WORK/$1.toml" "$2" "$3"
    # shellcheck disable=SC2206 # the wrapper's words
    [ "$3" -gt 0 ] && [ -n "$WRAP" ] && wrap=($WRAP)
    MYSQLCHK_MYSQL_PASSWORD="$CHK_PW" "${wrap[@]}" "$MYSQLCHK" serve -c "$WORK/$1.toml" >"$WORK/$1.log" 2>&1 &
    CHK_PID=$!
    PIDS+=("$CHK_PID")
}
# Until /status shows a snapshot for every target (fleet) or / answers 200 (single).
wait_ready() { # pid port n deadline_s
    local i got
    for ((i = 0; i < $4 * 5; i++)); do
        kill -0 "$1" 2>/dev/null || die "mysqlchk exited: $(tail -5 "$WORK"/*.log)"
        if [ "$3" = 0 ]; then
            [ "$(http_code "http://127.0.0.1:$2/")" = 200 ] && return 0
        else
            got=$(curl -s --max-time 5 "http://127.0.0.1:$2/status" \
                | jq '[.targets[]? | select(.snapshot != null and .snapshot.error == null)] | length' 2>/dev/null || echo 0)
            [ "${got:-0}" = "$3" ] && return 0
        fi
        sleep 0.2
    done
    die "mysqlchk on $2 not ready (N=$3) within $4 s"
}
stop_pid() {
    pkill -TERM -P "$1" 2>/dev/null || true
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}

# One quiet window: prints "cpu_pct rss_kib hwm_kib threads q_per_target_interval idle_waited"
quiet_window() { # pid n_targets servers...
    local pid=$1 n=$2; shift 2
    local waited=0 c0 c1 t0 t1 q0 q1 nq=$#
    [ "$IDLE_WAIT" -gt 0 ] && waited=$(wait_idle)
    q0=$(questions "$@"); c0=$(ticks "$pid"); t0=$(now)
    sleep "$WINDOW"
    c1=$(ticks "$pid"); t1=$(now); q1=$(questions "$@")
    awk -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" -v q=$((q1 - q0 - nq * Q_OVERHEAD)) -v n="$n" \
        -v rss="$(status_kib "$pid" VmRSS)" -v hwm="$(status_kib "$pid" VmHWM)" \
        -v th="$(status_kib "$pid" Threads)" -v w="$waited" \
        'BEGIN { d = t1 - t0; printf "%.3f %d %d %d %.3f %d %.3f\n", 100 * c / hz / d, rss, hwm, th, q / n / d, w, d }'
}
loadgen_run() { # port label [header]
    local args=(run --port "$1" -c "$LG_CONC" -d "$LG_DURATION" --timeout 10 --label "$2")
    [ $# -ge 3 ] && args+=(--header "$3")
    timeout $((${LG_DURATION%.*} + 40)) "$LOADGEN" "${args[@]}" || die "loadgen failed ($2)"
}

read -r SINGLE_PORT < <("$LOADGEN" freeport 1)
log "single-target mysqlchk on 127.0.0.1:$SINGLE_PORT (its own MariaDB)"
start_checker single "$SINGLE_PORT" 0
SINGLE_PID=$CHK_PID
wait_ready "$SINGLE_PID" "$SINGLE_PORT" 0 30

RUNS="$WORK/runs.jsonl"
: >"$RUNS"
read -ra NLIST <<<"$NS"
for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r/$ROUNDS: single-target reference, ${WINDOW}s quiet window"
    read -r cpu rss hwm th qpt waited win < <(quiet_window "$SINGLE_PID" 1 "$SERVERS")
    printf '{"round":%d,"kind":"single","n":1,"window_s":%s,"cpu_pct":%s,"rss_kib":%d,"hwm_kib":%d,"threads":%d,"questions_per_target_interval":%s,"idle_waited_s":%d}\n' \
        "$r" "$win" "$cpu" "$rss" "$hwm" "$th" "$qpt" "$waited" >>"$RUNS"
    log "  single: CPU ${cpu}%, RSS $((rss / 1024)) MiB, $qpt queries/interval"
    for n in "${NLIST[@]}"; do
        read -r port < <("$LOADGEN" freeport 1)
        t_start=$(now)
        start_checker "fleet$n" "$port" "$n"
        fpid=$CHK_PID
        wait_ready "$fpid" "$port" "$n" 120
        ready_s=$(awk -v a="$(now)" -v b="$t_start" 'BEGIN { printf "%.2f", a - b }')
        log "round $r N=$n: every target has a snapshot after ${ready_s}s; quiet window"
        # shellcheck disable=SC2086 # one word per server
        read -r cpu rss hwm th qpt waited win < <(quiet_window "$fpid" "$n" $FLEET_SERVERS)
        log "  CPU ${cpu}%, RSS $((rss / 1024)) MiB (HWM $((hwm / 1024))), $th threads, $qpt queries/target/interval; age window"
        ages=$("$LOADGEN" ages --port "$port" -d "$WINDOW" --every-ms "$AGE_EVERY_MS")
        log "  ages: $(jq -c '.age_seconds' <<<"$ages"), /status fetch $(jq -c '.fetch_ms' <<<"$ages") ms"
        last=$((n - 1))
        hdr="X-Haproxy-Server-State: UP 2/3; address=127.0.0.$((last / SERVERS + 1)); port=${PORTS[last % SERVERS]}; name=mysql/db$last; node=bench; weight=1/1; scur=0/0; qcur=0"
        [ "$(http_code -H "$hdr" "http://127.0.0.1:$port/")" = 200 ] || die "header routing to db$last did not answer 200"
        if [ $((r % 2)) = 1 ]; then
            lf=$(loadgen_run "$port" "fleet$n" "$hdr"); ls=$(loadgen_run "$SINGLE_PORT" single)
        else
            ls=$(loadgen_run "$SINGLE_PORT" single); lf=$(loadgen_run "$port" "fleet$n" "$hdr")
        fi
        rss_after=$(status_kib "$fpid" VmRSS); hwm_after=$(status_kib "$fpid" VmHWM)
        printf '{"round":%d,"kind":"fleet","n":%d,"ready_s":%s,"window_s":%s,"cpu_pct":%s,"rss_kib":%d,"hwm_kib":%d,"threads":%d,"questions_per_target_interval":%s,"idle_waited_s":%d,"ages":%s,"rss_after_load_kib":%d,"hwm_after_load_kib":%d,"loadgen_fleet":%s,"loadgen_single":%s}\n' \
            "$r" "$n" "$ready_s" "$win" "$cpu" "$rss" "$hwm" "$th" "$qpt" "$waited" "$ages" "$rss_after" "$hwm_after" "$lf" "$ls" >>"$RUNS"
        log "  checks/s: fleet (header) $(jq -r '.ok_rps|floor' <<<"$lf"), single $(jq -r '.ok_rps|floor' <<<"$ls")"
        stop_pid "$fpid"
    done
done

# --- report -------------------------------------------------------------------------
git_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(git -C "$REPO" status --porcelain -- src Cargo.toml 2>/dev/null | head -c 1 | wc -c)
META=$(jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg command "$COMMAND" \
    --arg git "$git_rev$([ "$git_dirty" != 0 ] && echo '+dirty')" \
    --arg mariadb "$(mariadbd --version | sed 's/.*Ver //; s/ for .*//')" \
    --arg cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" --arg kernel "$(uname -r)" \
    --argjson cpus "$(nproc)" --argjson servers "$SERVERS" --argjson aliases "$ALIASES" \
    --argjson max_conn "$PER_SERVER_CONN" --argjson window "$WINDOW" --argjson rounds "$ROUNDS" \
    --argjson every "$AGE_EVERY_MS" --argjson lgd "$LG_DURATION" --argjson lgc "$LG_CONC" \
    '{date: $date, command: $command, mysqlchk_git: $git, mariadb: $mariadb, cpu_model: $cpu,
      cpus: $cpus, kernel: $kernel, servers: $servers, aliases_per_server: $aliases,
      max_connections_per_server: $max_conn, window_s: $window, rounds: $rounds,
      age_every_ms: $every, loadgen_duration_s: $lgd, loadgen_concurrency: $lgc,
      interval_s: 1, timeout_s: 1}')
TABLE=$(jq -rs --argjson meta "$META" -f "$BENCH/fleet-table.jq" "$RUNS")
printf '%s\n' "$TABLE"
if [ $SMOKE = 0 ] || [ -n "$OUT" ]; then
    [ -n "$OUT" ] || { mkdir -p "$BENCH/results"; OUT="$BENCH/results/fleet-$(date -u +%Y-%m-%dT%H%M%SZ).json"; }
    jq -s --argjson meta "$META" --arg markdown "$TABLE" \
        '{meta: $meta, markdown: $markdown, runs: .}' "$RUNS" >"$OUT"
    log "raw results: $OUT"
fi
