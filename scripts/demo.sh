#!/usr/bin/env bash
# The whole system on loopback: a MariaDB primary and a replica, one mysqlchk per
# server, and HAProxy in front with a write listener (checks /primary) and a read
# listener (checks /replica with a lag bound), plus its stats page.
#
#   bash scripts/demo.sh          start it (installs packages if missing, builds)
#   bash scripts/demo.sh fleet    the same servers, but ONE fleet mysqlchk beside HAProxy
#                                 watches both (nothing of ours beside the MariaDB servers)
#                                 and pushes its verdicts through HAProxy's runtime socket
#   bash scripts/demo.sh stop     stop it and remove its files
#
# Everything lives in $MYSQLCHK_DEMO_DIR (default /tmp/mysqlchk-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIR=${MYSQLCHK_DEMO_DIR:-/tmp/mysqlchk-demo}

P_SQL=23306 R_SQL=23307          # MariaDB primary / replica
P_CHK=29200 R_CHK=29210          # mysqlchk HTTP ports
P_AGENT=29201 R_AGENT=29211      # mysqlchk agent-check ports
W_PORT=23300 R_PORT=23301        # HAProxy write / read listeners
STATS=28404                      # HAProxy stats page
F_CHK=29300 F_AGENT=29301        # the fleet checker's HTTP / agent ports (demo.sh fleet)

stop() {
    for f in "$DIR"/*.pid; do
        [ -e "$f" ] || continue
        kill "$(cat "$f")" 2>/dev/null || true
    done
    sleep 1
    for f in "$DIR"/*.pid; do
        [ -e "$f" ] || continue
        kill -9 "$(cat "$f")" 2>/dev/null || true
    done
    rm -rf "$DIR"
}

if [ "${1:-}" = "stop" ]; then
    stop
    echo "demo stopped, $DIR removed"
    exit 0
fi
FLEET=0
[ "${1:-}" = "fleet" ] && FLEET=1
# HAProxy's server names are the fleet's target names (endpoint words such as
# "primary" cannot name a target, so the fleet demo calls them db1 and db2).
if [ $FLEET = 1 ]; then P_NAME=db1 R_NAME=db2; else P_NAME=primary R_NAME=replica; fi

bash scripts/install-deps.sh
echo "== building mysqlchk (release)"
cargo build --release --quiet
BIN=$ROOT/target/release/mysqlchk

stop
mkdir -p "$DIR"
chmod 700 "$DIR"

wait_sql() { # port
    for _ in $(seq 1 300); do
        mariadb --protocol=TCP -h127.0.0.1 -P"$1" -uroot -e 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "MariaDB on port $1 did not start; see $DIR/*.err" >&2
    exit 1
}

start_mariadb() { # name port server_id
    local name=$1 port=$2 id=$3
    mariadb-install-db --no-defaults --datadir="$DIR/$name" --user=root \
        --auth-root-authentication-method=normal --skip-test-db >"$DIR/$name-install.log" 2>&1
    mariadbd --no-defaults --user=root --datadir="$DIR/$name" --port="$port" \
        --bind-address=127.0.0.1 --socket="$DIR/$name.sock" --server-id="$id" \
        --log-bin=mysql-bin --binlog-format=ROW --skip-name-resolve \
        --innodb-buffer-pool-size=32M --log-error="$DIR/$name.err" >/dev/null 2>&1 &
    echo $! >"$DIR/$name.pid"
    wait_sql "$port"
}

sql() { local port=$1; shift; mariadb --protocol=TCP -h127.0.0.1 -P"$port" -uroot -e "$*"; }

echo "== starting MariaDB primary (:$P_SQL) and replica (:$R_SQL)"
start_mariadb primary $P_SQL 1
start_mariadb replica $R_SQL 2

PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s' "$PW" >"$DIR/password"
chmod 600 "$DIR/password"
for port in $P_SQL $R_SQL; do
    # The least-privilege account of deploy/grants-mariadb.sql (created on both: the
    # replica is set up before replication starts).
    sql "$port" "SET sql_log_bin=0;
        CREATE USER 'mysqlchk'@'127.0.0.1' IDENTIFIED BY '$PW' WITH MAX_USER_CONNECTIONS 3;
        GRANT USAGE ON *.* TO 'mysqlchk'@'127.0.0.1';
        GRANT SLAVE MONITOR ON *.* TO 'mysqlchk'@'127.0.0.1';
        CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app';
        GRANT ALL ON demo.* TO 'app'@'127.0.0.1';"
done
sql $P_SQL "SET sql_log_bin=0; CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl';
    GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';"
sql $R_SQL "SET GLOBAL read_only=ON;
    CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$P_SQL, MASTER_USER='repl',
        MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos;
    START SLAVE;"
sql $P_SQL "CREATE DATABASE demo; CREATE TABLE demo.t (id INT PRIMARY KEY AUTO_INCREMENT, at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);"

[ $FLEET = 1 ] || echo "== starting one mysqlchk per server"
start_chk() { # name sql_port http agent
    cat >"$DIR/$1.toml" <<EOT
[listen]
http = ["127.0.0.1:$3"]
agent = ["127.0.0.1:$4"]

[mysql]
host = "127.0.0.1"
port = $2
user = "mysqlchk"
password_file = "$DIR/password"

[check]
interval = "1s"
max_replication_lag = "30s"
maintenance_file = "$DIR/$1.maintenance"
EOT
    "$BIN" serve -c "$DIR/$1.toml" >"$DIR/mysqlchk-$1.log" 2>&1 &
    echo $! >"$DIR/mysqlchk-$1.pid"
}
start_fleet() {
    cat >"$DIR/fleet.toml" <<EOT
[listen]
http = ["127.0.0.1:$F_CHK"]
agent = ["127.0.0.1:$F_AGENT"]

[mysql]
user = "mysqlchk"
password_file = "$DIR/password"

[check]
interval = "1s"
max_replication_lag = "30s"
maintenance_file = "$DIR/maintenance"

[[target]]
name = "$P_NAME"
host = "127.0.0.1"
port = $P_SQL

[[target]]
name = "$R_NAME"
host = "127.0.0.1"
port = $R_SQL

EOT
    # The [[haproxy]] table that haproxy-config --push printed (commented) under the
    # HAProxy sections, pasted as its comment says: verdict changes reach HAProxy at once.
    sed -n '/^# \[\[haproxy\]\]/,$s/^# //p' "$DIR/haproxy.cfg" >>"$DIR/fleet.toml"
    "$BIN" serve -c "$DIR/fleet.toml" >"$DIR/mysqlchk-fleet.log" 2>&1 &
    echo $! >"$DIR/mysqlchk-fleet.pid"
}
# The HAProxy configuration the product generates (written before any checker starts:
# the fleet checker takes its [[haproxy]] table from it).
generate_haproxy_cfg() {
    echo 1 >"$DIR/server-state"
    {
        cat <<EOT
global
    log stdout format raw local0

EOT
        # The configuration the product generates, with each server's own mysqlchk ports.
        if [ $FLEET = 1 ]; then
            # Every check goes to the one fleet checker, which tells the servers apart by
            # HAProxy's send-state header (HTTP) and by the agent-send word (agent).
            "$BIN" haproxy-config --bind 127.0.0.1 --write-port $W_PORT --read-port $R_PORT \
                --servers "$P_NAME=127.0.0.1:$P_SQL,$R_NAME=127.0.0.1:$R_SQL" \
                --fleet 127.0.0.1:$F_CHK --fleet-agent 127.0.0.1:$F_AGENT \
                --read-fallback --max-lag 30s --stats 127.0.0.1:$STATS --state-file "$DIR/server-state" \
                --stats-socket "$DIR/haproxy.sock" --push
        else
            "$BIN" haproxy-config --bind 127.0.0.1 --write-port $W_PORT --read-port $R_PORT \
                --servers "primary=127.0.0.1:$P_SQL@$P_CHK/$P_AGENT,replica=127.0.0.1:$R_SQL@$R_CHK/$R_AGENT" \
                --read-fallback --max-lag 30s --stats 127.0.0.1:$STATS --state-file "$DIR/server-state" \
                --stats-socket "$DIR/haproxy.sock"
        fi
    } >"$DIR/haproxy.cfg"
}
generate_haproxy_cfg
if [ $FLEET = 1 ]; then
    echo "== starting one fleet mysqlchk for both servers (:$F_CHK, agent :$F_AGENT)"
    start_fleet
else
    start_chk primary $P_SQL $P_CHK $P_AGENT
    start_chk replica $R_SQL $R_CHK $R_AGENT
fi

echo "== starting HAProxy (write :$W_PORT, read :$R_PORT, stats :$STATS)"
haproxy -dW -c -f "$DIR/haproxy.cfg" >/dev/null
haproxy -db -f "$DIR/haproxy.cfg" >"$DIR/haproxy.log" 2>&1 &
echo $! >"$DIR/haproxy.pid"

echo "== waiting for HAProxy to see both servers (reader: rise 3 x inter 2s)"
for _ in $(seq 1 150); do
    st=$(echo "show stat" | socat - "UNIX-CONNECT:$DIR/haproxy.sock" 2>/dev/null || true)
    if echo "$st" | grep -q "^mysql-write,$P_NAME,.*,UP," && echo "$st" | grep -q "^mysql-read-replicas,$R_NAME,.*,UP,"; then
        break
    fi
    sleep 0.2
done

echo
echo "== what mysqlchk answers"
if [ $FLEET = 1 ]; then
    # One checker: the target is named by a path prefix (HAProxy uses its header).
    pairs=("$P_NAME $F_CHK /$P_NAME" "$R_NAME $F_CHK /$R_NAME")
else
    pairs=("primary $P_CHK" "replica $R_CHK")
fi
for pair in "${pairs[@]}"; do
    set -- $pair
    for path in / /primary /replica /read-only; do
        printf '  %-8s %-11s ' "$1" "$path"
        curl -s -o /dev/stdout -w '  [%{http_code}]\n' "http://127.0.0.1:$2${3:-}$path" | tr -d '\n'
        echo
    done
done
echo
echo "== what HAProxy routes (SELECT @@port through each listener)"
printf '  write listener :%s -> MariaDB port ' $W_PORT
mariadb --protocol=TCP -h127.0.0.1 -P$W_PORT -uapp -papp -N -e 'SELECT @@port'
printf '  read listener  :%s -> MariaDB port ' $R_PORT
mariadb --protocol=TCP -h127.0.0.1 -P$R_PORT -uapp -papp -N -e 'SELECT @@port'

if [ $FLEET = 1 ]; then
cat <<EOT

The fleet demo is running (files in $DIR):
  MariaDB $P_NAME (primary) 127.0.0.1:$P_SQL   $R_NAME (replica) 127.0.0.1:$R_SQL   (root, no password)
  mysqlchk (fleet)  http://127.0.0.1:$F_CHK/$P_NAME/primary  http://127.0.0.1:$F_CHK/$R_NAME/replica
                    agent-check port $F_AGENT; try /status, /metrics (every target)
  HAProxy           write 127.0.0.1:$W_PORT  read 127.0.0.1:$R_PORT  (user app / app)
                    stats http://127.0.0.1:$STATS/   config $DIR/haproxy.cfg
                    (made by: mysqlchk haproxy-config --fleet ...)
Try:
  $BIN maintenance on --target $R_NAME --reason test -c $DIR/fleet.toml   # drain the replica
  $BIN check replica --target $R_NAME -c $DIR/fleet.toml
  mariadb -h127.0.0.1 -P$R_SQL -uroot -e 'STOP SLAVE SQL_THREAD'  # replica goes DOWN
  (the fleet checker pushes each change through $DIR/haproxy.sock at once:
   grep push: $DIR/mysqlchk-fleet.log)
Stop it:
  bash scripts/demo.sh stop
EOT
exit 0
fi
cat <<EOT

The demo is running (files in $DIR):
  MariaDB primary   127.0.0.1:$P_SQL   replica 127.0.0.1:$R_SQL   (root, no password)
  mysqlchk          http://127.0.0.1:$P_CHK/ (primary)  http://127.0.0.1:$R_CHK/ (replica)
                    agent-check ports $P_AGENT / $R_AGENT; try /status, /metrics
  HAProxy           write 127.0.0.1:$W_PORT  read 127.0.0.1:$R_PORT  (user app / app)
                    stats http://127.0.0.1:$STATS/   config $DIR/haproxy.cfg
                    (made by: mysqlchk haproxy-config --read-fallback ...)
Try:
  $BIN maintenance on --reason test -c $DIR/replica.toml   # drain the replica
  $BIN check replica -c $DIR/replica.toml
  mariadb -h127.0.0.1 -P$R_SQL -uroot -e 'STOP SLAVE SQL_THREAD'  # replica goes DOWN
Stop it:
  bash scripts/demo.sh stop
EOT
