#!/usr/bin/env python3
"""An emulated MySQL 8.0 server for mysqlchk's protocol-level tests (tests/mysql8.rs).

Usage: server.py PORT SCENARIO_FILE

No MySQL 8 server can be installed on the machines the tests run on, so the MySQL-8-only
shapes (Replica_* columns, several channels, Group Replication tables, error replies) are
served by this script over the real MySQL wire protocol, using the `mysql-mimic` package
(installed by scripts/setup-mysql-mimic.sh into its own venv).

Every answer comes from SCENARIO_FILE (JSON), re-read on every statement and on every
connect, so a test changes the server's state by rewriting the file (write a temporary
file, then rename it over the old one) without restarting anything. Keys (all optional):

    users              {"name": "password", ...}: the accounts that may log in
                       (mysql_native_password); default {"root": ""}. Any other user or a
                       wrong password gets error 1045.
    variables          global variables, merged over DEFAULT_VARIABLES (MySQL 8.0.36
                       Community); a null value removes a variable (as a server without
                       that plugin lacks it). `version` is also the handshake's version.
    status             global status counters, merged over DEFAULT_STATUS.
    replica_status     rows of SHOW REPLICA STATUS. Each row gives some columns of
                       replica_status_columns.txt; the others are filled from the
                       recorded row named by its "$base" key (rows/replica_status.json,
                       default "running"). SHOW SLAVE STATUS answers the same rows under
                       the pre-8.0.22 column names (slave_status_columns.txt).
    group_members      rows of performance_schema.replication_group_members, filled the
                       same way from rows/group_members.json (default "online_secondary").
    group_member_stats rows of performance_schema.replication_group_member_stats, from
                       rows/group_member_stats.json (default "secondary_idle").
    mysql57            true: the performance_schema Group Replication tables have MySQL
                       5.7's columns (no MEMBER_ROLE / MEMBER_VERSION, no
                       COUNT_TRANSACTIONS_REMOTE_*: naming one is error 1054); set
                       `version` and the `group_replication_primary_member` status too.
    errors             {"STATEMENT PREFIX": code or {"code": N, "message": "..."}}: any
                       statement starting with the prefix (case and spacing ignored) gets
                       that error reply instead of an answer.
    delays             {"STATEMENT PREFIX": seconds}: answer such statements that late.
    connect_error      code or {"code": N, "message": "..."}: refuse every new connection
                       with that error after the handshake (3032: offline_mode).
    drop_connections   true: close any connection that sends a statement, without a reply
                       (as MySQL does to non-admin sessions when offline_mode is turned ON).

A column or row key the recorded files do not know is an error reply (1105) naming it, so
a typo in a test cannot silently fall back to a default.

Every statement received is appended to `queries.log` beside SCENARIO_FILE, one line each:
connection id, a tab, the statement with its whitespace collapsed. Once listening, the
script writes the port to SCENARIO_FILE + ".ready".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mysql_mimic.server as mimic_server
from mysql_mimic import (
    ColumnType,
    IdentityProvider,
    MysqlServer,
    NativePasswordAuthPlugin,
    ResultColumn,
    Session,
    User,
)
from mysql_mimic.connection import Connection
from mysql_mimic.errors import MysqlError

HERE = os.path.dirname(os.path.abspath(__file__))

DEFAULT_VARIABLES: Dict[str, Optional[str]] = {
    "version": "8.0.36",
    "version_comment": "MySQL Community Server - GPL",
    "version_compile_os": "Linux",
    "innodb_version": "8.0.36",
    "hostname": "db2",
    "port": "3306",
    "server_id": "2",
    "server_uuid": "92e1b5a8-b2a6-11ee-a1b7-0242ac120003",
    "read_only": "OFF",
    "super_read_only": "OFF",
    "offline_mode": "OFF",
    "max_connections": "151",
    "log_bin": "ON",
    "gtid_mode": "ON",
    "enforce_gtid_consistency": "ON",
    "binlog_format": "ROW",
    "max_execution_time": "0",
}

DEFAULT_STATUS: Dict[str, Optional[str]] = {
    "Threads_connected": "3",
    "Threads_running": "2",
    "Uptime": "86400",
    "Questions": "1234567",
    "Aborted_connects": "0",
}

ERROR_MESSAGES = {
    1045: "Access denied for user '{user}'@'localhost' (using password: YES)",
    1064: "You have an error in your SQL syntax; check the manual that corresponds to "
    "your MySQL server version for the right syntax to use near '{near}' at line 1",
    1142: "SELECT command denied to user 'mysqlchk'@'localhost' for table '{table}'",
    1146: "Table '{table}' doesn't exist",
    1193: "Unknown system variable '{name}'",
    1227: "Access denied; you need (at least one of) the SUPER, REPLICATION CLIENT "
    "privilege(s) for this operation",
    3032: "The server is currently in offline mode",
    3024: "Query execution was interrupted, maximum statement execution time exceeded",
}

TYPES = {
    "VARCHAR": ColumnType.VAR_STRING,
    "LONG": ColumnType.LONG,
    "LONGLONG": ColumnType.LONGLONG,
}


def read_columns(name: str) -> List[List[str]]:
    """Tab-separated column files: one column a line, `#` comments."""
    out = []
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                out.append(line.split("\t"))
    return out


def read_rows(name: str) -> Dict[str, Dict[str, Any]]:
    with open(os.path.join(HERE, "rows", name), encoding="utf-8") as f:
        rows = json.load(f)
    rows.pop("_comment", None)
    return rows


class Table:
    """A result shape: ordered columns with types, and recorded rows to fill from."""

    def __init__(self, columns: Sequence[Tuple[str, str]], rows: Dict[str, Dict[str, Any]], default_base: str):
        self.names = [c for c, _ in columns]
        self.result_columns = [ResultColumn(name=c, type=TYPES[t]) for c, t in columns]
        self.recorded = rows
        self.default_base = default_base
        for rname, row in rows.items():
            if list(row) != self.names:
                raise SystemExit(f"recorded row {rname!r} does not have the recorded columns in order")

    def full_row(self, partial: Dict[str, Any]) -> Dict[str, Any]:
        base_name = partial.get("$base", self.default_base)
        if base_name not in self.recorded:
            raise MysqlError(f"emulator: no recorded row {base_name!r}")
        row = dict(self.recorded[base_name])
        for k, v in partial.items():
            if k == "$base":
                continue
            if k not in row:
                raise MysqlError(f"emulator: unknown column {k!r}")
            row[k] = v
        return row


REPLICA = Table(
    [(c[0], c[1]) for c in read_columns("replica_status_columns.txt")],
    read_rows("replica_status.json"),
    "running",
)
# Old name -> 8.0.22 name, in SHOW SLAVE STATUS order.
SLAVE_COLUMNS = read_columns("slave_status_columns.txt")
SLAVE_RESULT_COLUMNS = [ResultColumn(name=old, type=TYPES[t]) for old, _, t in SLAVE_COLUMNS]
MEMBERS = Table(
    [(c[0], c[1]) for c in read_columns("group_members_columns.txt")],
    read_rows("group_members.json"),
    "online_secondary",
)
MEMBER_STATS = Table(
    [(c[0], c[1]) for c in read_columns("group_member_stats_columns.txt")],
    read_rows("group_member_stats.json"),
    "secondary_idle",
)
# The columns MySQL 5.7 has, in its order (a subset of the 8.0 tables above).
MYSQL57_COLUMNS = {
    "replication_group_members": ["CHANNEL_NAME", "MEMBER_ID", "MEMBER_HOST", "MEMBER_PORT", "MEMBER_STATE"],
    "replication_group_member_stats": [
        "CHANNEL_NAME",
        "VIEW_ID",
        "MEMBER_ID",
        "COUNT_TRANSACTIONS_IN_QUEUE",
        "COUNT_TRANSACTIONS_CHECKED",
        "COUNT_CONFLICTS_DETECTED",
        "COUNT_TRANSACTIONS_ROWS_VALIDATING",
        "TRANSACTIONS_COMMITTED_ALL_MEMBERS",
        "LAST_CONFLICT_FREE_TRANSACTION",
    ],
}
PERFORMANCE_SCHEMA = {
    "replication_group_members": (MEMBERS, "group_members"),
    "replication_group_member_stats": (MEMBER_STATS, "group_member_stats"),
}


def normalize(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";").strip()


class Scenario:
    """The scenario file, re-read on every use; the last good version survives a bad read."""

    def __init__(self, path: str):
        self.path = path
        self.data: Dict[str, Any] = {}
        self.log_path = os.path.join(os.path.dirname(os.path.abspath(path)), "queries.log")
        self.reload(strict=True)

    def reload(self, strict: bool = False) -> Dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            if not isinstance(data, dict):
                raise ValueError("the scenario must be a JSON object")
            self.data = data
        except (OSError, ValueError) as e:
            if strict:
                raise SystemExit(f"cannot read scenario {self.path}: {e}")
            logging.error("cannot read scenario %s (keeping the last one): %s", self.path, e)
        return self.data

    def variables(self) -> Dict[str, str]:
        merged = dict(DEFAULT_VARIABLES)
        merged.update(self.data.get("variables") or {})
        return {k: v for k, v in merged.items() if v is not None}

    def status(self) -> Dict[str, str]:
        merged = dict(DEFAULT_STATUS)
        merged.update(self.data.get("status") or {})
        return {k: v for k, v in merged.items() if v is not None}

    def log(self, conn_id: int, sql: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"{conn_id}\t{normalize(sql)}\n")


SCENARIO: Scenario  # set in main()


def error_spec(spec: Any, **fmt: str) -> MysqlError:
    if isinstance(spec, dict):
        code = int(spec["code"])
        message = spec.get("message")
    else:
        code = int(spec)
        message = None
    if message is None:
        template = ERROR_MESSAGES.get(code, "Emulated error {code}")
        defaults = {"user": "mysqlchk", "near": "", "table": "", "name": "", "code": str(code)}
        defaults.update(fmt)
        message = template.format(**defaults)
    return MysqlError(message, code=code)  # type: ignore[arg-type]


def match_prefix(table: Dict[str, Any], statement: str) -> Optional[Any]:
    upper = statement.upper()
    for prefix, value in table.items():
        if upper.startswith(normalize(prefix).upper()):
            return value
    return None


def like_regex(pattern: str) -> re.Pattern:
    out = ""
    for ch in pattern:
        out += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
    return re.compile(f"^{out}$", re.IGNORECASE)


def quoted(text: str) -> List[str]:
    return [m.replace("\\'", "'").replace("''", "'") for m in re.findall(r"'((?:[^'\\]|\\.|'')*)'", text)]


def filter_names(statement: str, names: Sequence[str]) -> List[str]:
    """The `WHERE Variable_name IN (...)`, `= '...'` or `LIKE '...'` of a SHOW statement."""
    m = re.search(r"\b(WHERE|LIKE)\b(.*)$", statement, re.IGNORECASE)
    if not m:
        return sorted(names, key=str.lower)
    if m.group(1).upper() == "LIKE":
        rx = like_regex(quoted(m.group(2))[0])
        return sorted((n for n in names if rx.match(n)), key=str.lower)
    cond = m.group(2).strip()
    cm = re.match(r"Variable_name\s*(IN|=|LIKE)\s*(.*)$", cond, re.IGNORECASE)
    if not cm:
        raise MysqlError(f"emulator: unsupported WHERE: {cond}", code=1235)  # type: ignore[arg-type]
    op, rest = cm.group(1).upper(), cm.group(2)
    wanted = quoted(rest)
    if op == "LIKE":
        rx = like_regex(wanted[0])
        chosen = [n for n in names if rx.match(n)]
    else:
        lowered = {w.lower() for w in wanted}
        chosen = [n for n in names if n.lower() in lowered]
    return sorted(chosen, key=str.lower)


def name_value_rows(values: Dict[str, str], statement: str) -> Tuple[List[List[Any]], List[ResultColumn]]:
    cols = [
        ResultColumn(name="Variable_name", type=ColumnType.VAR_STRING),
        ResultColumn(name="Value", type=ColumnType.VAR_STRING),
    ]
    return [[n, str(values[n])] for n in filter_names(statement, list(values))], cols


class EmulatedSession(Session):
    def __init__(self) -> None:
        super().__init__()
        SCENARIO.reload()
        variables = SCENARIO.variables()
        # The handshake announces `version` from the session variables.
        self.variables.set("version", variables.get("version", "8.0.36"), force=True)
        self.variables.set("version_comment", variables.get("version_comment", ""), force=True)

    async def handle_query(self, sql: str, attrs: Dict[str, str]) -> Any:
        statement = normalize(sql)
        conn = self.connection
        SCENARIO.log(conn.connection_id, sql)
        data = SCENARIO.reload()
        if data.get("drop_connections"):
            conn.stream.writer.transport.abort()
            return [], []
        delay = match_prefix(data.get("delays") or {}, statement)
        if delay:
            await asyncio.sleep(float(delay))
        err = match_prefix(data.get("errors") or {}, statement)
        if err is not None:
            raise error_spec(err, near=statement[:80])
        answer = self.answer(statement)
        if answer is not None:
            return answer
        # SET, SELECT 1 and whatever else the driver sends: mysql-mimic's own handling.
        return await super().handle_query(sql, attrs)

    def answer(self, statement: str) -> Optional[Tuple[Any, Any]]:
        upper = statement.upper()
        if re.match(r"^SHOW\s+(GLOBAL\s+|SESSION\s+)?VARIABLES\b", upper):
            return name_value_rows(SCENARIO.variables(), statement)
        if re.match(r"^SHOW\s+(GLOBAL\s+|SESSION\s+)?STATUS\b", upper):
            return name_value_rows(SCENARIO.status(), statement)
        m = re.match(r"^SHOW\s+(REPLICA|SLAVE)\s+STATUS(\s+FOR\s+CHANNEL\s+(.*))?$", statement, re.IGNORECASE)
        if m:
            rows = [REPLICA.full_row(r) for r in SCENARIO.data.get("replica_status") or []]
            if m.group(3):
                channel = (quoted(m.group(3)) or [m.group(3).strip()])[0]
                rows = [r for r in rows if r["Channel_Name"] == channel]
            if m.group(1).upper() == "REPLICA":
                return [[r[c] for c in REPLICA.names] for r in rows], REPLICA.result_columns
            return [[r[new] for _, new, _ in SLAVE_COLUMNS] for r in rows], SLAVE_RESULT_COLUMNS
        if re.match(r"^SHOW\s+ALL\s+(REPLICAS|SLAVES)\s+STATUS", upper):
            # MariaDB syntax: a syntax error on MySQL.
            raise error_spec(1064, near=statement[5:40])
        m = re.match(r"^SELECT\s+(.*?)\s+FROM\s+performance_schema\.(\w+)(?:\s+WHERE\s+(.*))?$", statement, re.IGNORECASE)
        if m:
            return self.performance_schema(m.group(1), m.group(2), m.group(3))
        m = re.match(r"^SELECT\s+(@@[\w.]+(?:\s*,\s*@@[\w.]+)*)$", statement, re.IGNORECASE)
        if m:
            return self.select_variables([e.strip() for e in m.group(1).split(",")])
        return None

    def lookup_variable(self, expr: str) -> Any:
        name = expr[2:].lower()
        scope = "session"
        for prefix in ("global.", "session.", "local."):
            if name.startswith(prefix):
                name, scope = name[len(prefix):], prefix[:-1]
        # A value this session SET wins, unless @@global is asked for.
        if scope != "global" and name in self.variables._values:
            return self.variables.get(name)
        values = {k.lower(): v for k, v in SCENARIO.variables().items()}
        if name in values:
            return values[name]
        try:
            return self.variables.get(name)
        except MysqlError:
            raise error_spec(1193, name=name)

    def select_variables(self, exprs: List[str]) -> Tuple[Any, Any]:
        values = [self.lookup_variable(e) for e in exprs]
        return [[None if v is None else str(v) for v in values]], [
            ResultColumn(name=e, type=ColumnType.VAR_STRING) for e in exprs
        ]

    def performance_schema(self, projection: str, table_name: str, where: Optional[str]) -> Tuple[Any, Any]:
        key = table_name.lower()
        if key not in PERFORMANCE_SCHEMA:
            raise error_spec(1146, table=f"performance_schema.{table_name}")
        table, scenario_key = PERFORMANCE_SCHEMA[key]
        rows = [table.full_row(r) for r in SCENARIO.data.get(scenario_key) or []]
        for cond in re.split(r"\s+AND\s+", where or "", flags=re.IGNORECASE):
            if not cond.strip():
                continue
            cm = re.match(r"^(\w+)\s*=\s*(@@[\w.]+|'(?:[^']|'')*')$", cond.strip())
            if not cm or cm.group(1).upper() not in table.names:
                raise MysqlError(f"emulator: unsupported WHERE: {cond}", code=1235)  # type: ignore[arg-type]
            rhs = cm.group(2)
            value = self.lookup_variable(rhs) if rhs.startswith("@@") else quoted(rhs)[0]
            rows = [r for r in rows if str(r[cm.group(1).upper()]) == str(value)]
        known = table.names
        if SCENARIO.data.get("mysql57"):
            known = MYSQL57_COLUMNS[key]
        if projection.strip() == "*":
            names = known
        else:
            names = [p.strip().upper() for p in projection.split(",")]
            for n in names:
                if n not in known:
                    raise MysqlError(f"Unknown column '{n}' in 'field list'", code=1054)  # type: ignore[arg-type]
        cols = [table.result_columns[table.names.index(n)] for n in names]
        return [[r[n] for n in names] for r in rows], cols


class EmulatedConnection(Connection):
    """mysql-mimic answers a refused login with 1045 only: to refuse a connection with
    another code (3032 for offline_mode), the connect error is injected here."""

    async def authenticate(self, *args: Any, **kwargs: Any) -> None:
        spec = SCENARIO.reload().get("connect_error")
        if spec is None:
            await super().authenticate(*args, **kwargs)
            return
        err = error_spec(spec)
        SCENARIO.log(self.connection_id, f"-- connect refused with error {err.code}")
        await self.stream.write(self.error(msg=err.msg, code=err.code))
        self.stream.writer.close()


class ScenarioIdentities(IdentityProvider):
    def get_plugins(self) -> Sequence[NativePasswordAuthPlugin]:
        return [NativePasswordAuthPlugin()]

    async def get_user(self, username: str) -> Optional[User]:
        users = SCENARIO.reload().get("users")
        if users is None:
            users = {"root": ""}
        plugin = NativePasswordAuthPlugin.name
        if username in users:
            password = users[username]
            auth = NativePasswordAuthPlugin.create_auth_string(password) if password else None
            return User(name=username, auth_string=auth, auth_plugin=plugin)
        # MySQL says 1045 for an unknown account too (not mysql-mimic's 3162): a user
        # whose password nobody knows.
        return User(name=username, auth_string=os.urandom(20).hex(), auth_plugin=plugin)


async def serve(port: int, ready_path: str) -> None:
    mimic_server.Connection = EmulatedConnection  # type: ignore[misc]
    server = MysqlServer(session_factory=EmulatedSession, identity_provider=ScenarioIdentities())
    await server.start_server(host="127.0.0.1", port=port)
    bound = server.sockets()[0].getsockname()[1]
    tmp = ready_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{bound}\n")
    os.replace(tmp, ready_path)
    logging.info("emulated MySQL 8.0 listening on 127.0.0.1:%s", bound)
    await server.serve_forever()


def main() -> None:
    global SCENARIO
    if len(sys.argv) != 3:
        raise SystemExit("usage: server.py PORT SCENARIO_FILE")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    SCENARIO = Scenario(sys.argv[2])
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2] + ".ready"))


if __name__ == "__main__":
    main()
