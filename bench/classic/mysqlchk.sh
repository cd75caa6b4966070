#!/bin/bash
#
# The classic xinetd health check that mysqlchk replaces (SPEC Appendix A), reproduced
# for the benchmarks in bench/. Do not "fix" it: its flaws are what is measured.
#
# xinetd forks it for every connection on port 9200. It never reads the request. It
# runs the mysql client with user and password on the command line (visible in ps),
# executing "show databases;", redirecting output and errors to fixed files shared by
# every concurrent check (so concurrent checks race: one truncates the file while
# another tests it, and answers a false 503), with no timeout (a hung MySQL hangs every
# check and piles up processes). If the output file is non-empty it answers 200, else
# 503. No Content-Length; the connection ends when the script exits (with a reset,
# since the request was never read).
#
# The original's account: GRANT SELECT ON mysql.* ... WITH GRANT OPTION (grants.sql).
#
# bench/run.sh fills in the values below (a private MariaDB reached over TCP and a
# private directory instead of /tmp, with the same sticky world-writable mode as /tmp,
# so a real installation's /tmp/mysqlchk.out is never touched). The original says
# MYSQL_HOST="localhost", with which the mysql client uses the Unix socket from
# /etc/mysql/my.cnf and ignores the port. The original's lines are written by the
# external /bin/echo (one fork each) as `echo -e "...\r\n"`, which ends them in
# "\r\n\n"; here `echo -e "...\r"` ends each line in exactly "\r\n" as Appendix A says.

MYSQL_HOST="localhost"
MYSQL_PORT="3306"
MYSQL_USERNAME="mysqlchkusr"
MYSQL_PASSWORD="257retfg2uysg218"

TMP_FILE="/tmp/mysqlchk.out"
ERR_FILE="/tmp/mysqlchk.err"

#
# We perform a simple query that should return a few results :-p
#
/usr/bin/mysql -h $MYSQL_HOST -P $MYSQL_PORT -u$MYSQL_USERNAME \
    -p$MYSQL_PASSWORD -e "show databases;" > $TMP_FILE 2> $ERR_FILE

#
# Check the output. If it is not empty then everything is fine and we return
# something. Else, we just do not return anything.
#
if [ "$(/bin/cat $TMP_FILE)" != "" ]
then
    # mysql is fine, return http 200
    /bin/echo -e "HTTP/1.1 200 OK\r"
    /bin/echo -e "Content-Type: Content-Type: text/plain\r"
    /bin/echo -e "\r"
    /bin/echo -e "MySQL is running.\r"
else
    # mysql is down, return http 503
    /bin/echo -e "HTTP/1.1 503 Service Unavailable\r"
    /bin/echo -e "Content-Type: Content-Type: text/plain\r"
    /bin/echo -e "\r"
    /bin/echo -e "MySQL is *down*.\r"
fi
