-- The classic script's account, as the original instructions created it (SPEC Appendix
-- A): SELECT on the mysql schema (password hashes included) WITH GRANT OPTION. This is
-- what mysqlchk's least-privilege grants (deploy/grants-mariadb.sql) avoid.
-- bench/run.sh substitutes @USER@ and @PASSWORD@; the bench reaches its private server
-- over TCP, so the account host is 127.0.0.1 ('localhost' is the Unix socket).
CREATE USER '@USER@'@'127.0.0.1' IDENTIFIED BY '@PASSWORD@';
GRANT SELECT ON mysql.* TO '@USER@'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER '@USER@'@'localhost' IDENTIFIED BY '@PASSWORD@';
GRANT SELECT ON mysql.* TO '@USER@'@'localhost' WITH GRANT OPTION;
FLUSH PRIVILEGES;
