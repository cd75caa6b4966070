-- mysqlchk: the checker's account on MariaDB, least privilege.
--
-- Run it ONCE, on the primary (or on one Galera node): account statements replicate to
-- every replica and cluster node, and the daemon on each host connects locally with
-- the same account. IF NOT EXISTS keeps replication running on a replica where the
-- account already exists (and leaves an existing account unchanged: to change its
-- password see "Password rotation" below).
--
-- Generate the password, keep it for the daemon, substitute it here:
--   install -d -o root -g mysqlchk -m 750 /etc/mysqlchk
--   (umask 077; openssl rand -hex 24 > /etc/mysqlchk/password)
--   sed "s/REPLACE-WITH-PASSWORD/$(cat /etc/mysqlchk/password)/" grants-mariadb.sql | mariadb
-- (hex keeps the password free of quotes and of characters special to sed.)
-- Then on each host, as root: mysqlchk check primary ; mysqlchk check replica
--
-- What the daemon runs: SHOW GLOBAL VARIABLES / SHOW GLOBAL STATUS (no privilege),
-- check.query (SELECT 1: none), SET SESSION max_statement_time / wsrep_sync_wait
-- (none), SHOW ALL REPLICAS STATUS or SHOW ALL SLAVES STATUS (SLAVE MONITOR).
-- Deliberately NOT granted:
--   * GRANT OPTION, SELECT on mysql.* (what the classic xinetd script's account had);
--   * SUPER or CONNECTION ADMIN: they let an account in when the server turns the
--     applications away (max_connections reached). A checker must see the server as
--     the applications do: when they cannot connect, the check must fail too;
--   * REPLICATION SLAVE ADMIN: it can stop replication and change its source.
--
-- Versions:
--   MariaDB >= 10.5.9 : SLAVE MONITOR (alias REPLICA MONITOR; SHOW GRANTS prints
--                       SLAVE MONITOR) - what this file grants.
--   10.5.0 - 10.5.8   : SHOW SLAVE STATUS needs REPLICATION SLAVE ADMIN, which can also
--                       STOP SLAVE / CHANGE MASTER: do not grant it - upgrade to a
--                       current 10.5. Without it mysqlchk still judges / and /primary;
--                       /replica and /read-only answer 503 "missing privilege (error 1227)".
--   before 10.5       : GRANT REPLICATION CLIENT ON *.* TO 'mysqlchk'@'127.0.0.1';
--                       instead of SLAVE MONITOR (10.5 and later renamed REPLICATION
--                       CLIENT to BINLOG MONITOR, which no longer shows replica status).
--   before 10.4.3     : no password expiry: leave out "PASSWORD EXPIRE NEVER".
--
-- MAX_USER_CONNECTIONS 3: the daemon holds one connection; the others leave room for
-- a manual "mysqlchk check" and for a reconnect overlapping a session the server has
-- not closed yet. In inetd mode (xinetd.mysqlchk, mysqlchk-inetd.socket) every
-- concurrent check is a login: raise it to what the HAProxy nodes can send at once.
-- PASSWORD EXPIRE NEVER: an expiring checker password takes every node down at the
-- same second (account changes replicate). Do not add account locking either.
-- Note the order: MariaDB accepts WITH ... before PASSWORD EXPIRE only
-- ("PASSWORD EXPIRE NEVER WITH MAX_USER_CONNECTIONS 3" is a syntax error, 1064).

CREATE USER IF NOT EXISTS 'mysqlchk'@'127.0.0.1'
  IDENTIFIED BY 'REPLACE-WITH-PASSWORD'
  WITH MAX_USER_CONNECTIONS 3
  PASSWORD EXPIRE NEVER;
GRANT USAGE ON *.* TO 'mysqlchk'@'127.0.0.1';
GRANT SLAVE MONITOR ON *.* TO 'mysqlchk'@'127.0.0.1';

-- Connecting over the Unix socket instead (mysql.host = "localhost" or mysql.socket):
-- the account host is 'localhost'. Same statements:
--   CREATE USER IF NOT EXISTS 'mysqlchk'@'localhost' IDENTIFIED BY 'REPLACE-WITH-PASSWORD'
--     WITH MAX_USER_CONNECTIONS 3 PASSWORD EXPIRE NEVER;
--   GRANT SLAVE MONITOR ON *.* TO 'mysqlchk'@'localhost';
--
-- Check: SHOW GRANTS FOR 'mysqlchk'@'127.0.0.1'; must list USAGE / SLAVE MONITOR and
-- "WITH MAX_USER_CONNECTIONS 3", nothing else.

-- Password rotation without an outage --------------------------------------------
-- MariaDB has no dual passwords, so rotate by switching to a second account. Changing
-- the password in place (ALTER USER ... IDENTIFIED BY) leaves a window where the
-- account (replicated at once to every node) and the password files disagree: any
-- reconnect then fails with access_denied on every node at the same time.
-- The daemon re-reads the password file before every reconnect and reloads its
-- config on SIGHUP without dropping checks; credentials-only changes keep the
-- current state.
--
-- 1. On the primary, a second account with the new password and the same grants:
--      CREATE USER 'mysqlchk2'@'127.0.0.1' IDENTIFIED BY 'NEW-PASSWORD'
--        WITH MAX_USER_CONNECTIONS 3 PASSWORD EXPIRE NEVER;
--      GRANT SLAVE MONITOR ON *.* TO 'mysqlchk2'@'127.0.0.1';
-- 2. On every host: write the new password to a NEW file, then switch user and file
--    in one config change:
--      (umask 077; echo NEW-PASSWORD > /etc/mysqlchk/password2)
--      (and the same owner as the current file)
--      edit /etc/mysqlchk/mysqlchk.toml: user = "mysqlchk2",
--                                       password_file = "/etc/mysqlchk/password2"
--      mysqlchk validate && mysqlchk check && systemctl reload mysqlchk
--    (with LoadCredential= instead of password_file: point LoadCredential= at
--    password2, set user, then systemctl daemon-reload && systemctl restart mysqlchk;
--    with the socket units no check is refused meanwhile.)
-- 3. When every host runs as mysqlchk2 (its logs, or /status):
--      DROP USER 'mysqlchk'@'127.0.0.1';
-- The next rotation creates 'mysqlchk' again with a new password and switches back.
