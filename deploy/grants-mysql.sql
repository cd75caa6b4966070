-- mysqlchk: the checker's account on MySQL / Percona Server (5.7, 8.0, 8.4), least
-- privilege.
--
-- Run it ONCE, on the primary (with Group Replication: on the primary member):
-- account statements replicate to every replica / member, and the daemon on each host
-- connects locally with the same account. IF NOT EXISTS keeps replication running on a
-- replica where the account already exists (and leaves an existing account unchanged:
-- to change its password see "Password rotation" below).
--
-- Generate the password, keep it for the daemon, substitute it here:
--   install -d -o root -g mysqlchk -m 750 /etc/mysqlchk
--   (umask 077; openssl rand -hex 24 > /etc/mysqlchk/password)
--   sed "s/REPLACE-WITH-PASSWORD/$(cat /etc/mysqlchk/password)/" grants-mysql.sql | mysql
-- (hex keeps the password free of quotes and of characters special to sed.)
-- Then on each host, as root: mysqlchk check primary ; mysqlchk check replica
--
-- What the daemon runs: SHOW GLOBAL VARIABLES / SHOW GLOBAL STATUS (no privilege),
-- check.query (SELECT 1: none), SET SESSION max_execution_time (none),
-- SHOW REPLICA STATUS (>= 8.0.22) or SHOW SLAVE STATUS (REPLICATION CLIENT), and with
-- Group Replication two performance_schema tables (SELECT on each).
-- Deliberately NOT granted:
--   * GRANT OPTION, SELECT on mysql.* (what the classic xinetd script's account had);
--   * SUPER or CONNECTION_ADMIN: they let an account in when the server turns the
--     applications away (max_connections reached, offline_mode on). A checker must
--     see the server as the applications do: when they cannot connect, the check must
--     fail too;
--   * REPLICATION_SLAVE_ADMIN, SYSTEM_VARIABLES_ADMIN or any other dynamic privilege.
--
-- MAX_USER_CONNECTIONS 3: the daemon holds one connection; the others leave room for
-- a manual "mysqlchk check" and for a reconnect overlapping a session the server has
-- not closed yet. In inetd mode (xinetd.mysqlchk, mysqlchk-inetd.socket) every
-- concurrent check is a login: raise it to what the HAProxy nodes can send at once.
-- PASSWORD EXPIRE NEVER: an expiring checker password (default_password_lifetime)
-- takes every node down at the same second (account changes replicate). For the
-- same reason do not set FAILED_LOGIN_ATTEMPTS / PASSWORD_LOCK_TIME on this account.
-- The resource option comes before the password option (CREATE USER grammar:
-- [WITH resource_option ...] [password_option | lock_option ...]).

CREATE USER IF NOT EXISTS 'mysqlchk'@'127.0.0.1'
  IDENTIFIED BY 'REPLACE-WITH-PASSWORD'
  WITH MAX_USER_CONNECTIONS 3
  PASSWORD EXPIRE NEVER;
GRANT USAGE ON *.* TO 'mysqlchk'@'127.0.0.1';
GRANT REPLICATION CLIENT ON *.* TO 'mysqlchk'@'127.0.0.1';
-- Group Replication (the tables exist on 5.7.17+ and 8.x even without the plugin):
GRANT SELECT ON performance_schema.replication_group_members TO 'mysqlchk'@'127.0.0.1';
GRANT SELECT ON performance_schema.replication_group_member_stats TO 'mysqlchk'@'127.0.0.1';

-- Connecting over the Unix socket instead (mysql.host = "localhost" or mysql.socket):
-- the account host is 'localhost'; repeat the statements above with
-- 'mysqlchk'@'localhost'.
--
-- Check: SHOW GRANTS FOR 'mysqlchk'@'127.0.0.1'; must list USAGE / REPLICATION CLIENT
-- and the two performance_schema tables, nothing else.

-- Password rotation without an outage (MySQL >= 8.0.14) ----------------------------
-- Changing the password in place in one step leaves a window where the account
-- (replicated at once to every node) and the password files disagree: any reconnect
-- then fails with access_denied on every node at the same time. Dual passwords close
-- that window. The daemon re-reads the password file before every reconnect, so no
-- restart is needed (with LoadCredential= instead of password_file: restart after
-- step 2; with the socket units no check is refused meanwhile).
--
-- 1. On the primary: the new password becomes the primary one, the old one keeps
--    working (needs CREATE USER, or APPLICATION_PASSWORD_ADMIN for one's own account):
--      ALTER USER 'mysqlchk'@'127.0.0.1' IDENTIFIED BY 'NEW-PASSWORD'
--        RETAIN CURRENT PASSWORD;
-- 2. On every host: replace the password file atomically (same owner, mode 0600):
--      (umask 077; echo NEW-PASSWORD > /etc/mysqlchk/password.new)
--      chown --reference=/etc/mysqlchk/password /etc/mysqlchk/password.new
--      mv /etc/mysqlchk/password.new /etc/mysqlchk/password
--      mysqlchk check          (a fresh login with the new password)
-- 3. When every host has the new file:
--      ALTER USER 'mysqlchk'@'127.0.0.1' DISCARD OLD PASSWORD;
--
-- Before 8.0.14 (and on 5.7): a second account 'mysqlchk2' with the same grants, and
-- switch user and password file together in one config reload, as described in
-- grants-mariadb.sql.
