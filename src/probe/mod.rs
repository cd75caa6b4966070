//! One persistent MySQL connection and the round that reads facts over it;
//! [`connect`] opens the connection, [`sql`] holds the statements.
//!
//! Invariants:
//! - every network wait is under a deadline (`mysql.connect_timeout` for the connect,
//!   `check.timeout` per statement), and the whole round under one more
//!   ([`round_budget`]), so a server slow at every step cannot push the snapshot past
//!   `check.stale_after`: when it expires the connection is discarded and the round
//!   fails (`timeout`, naming the step it was in);
//! - every statement, the session SETs included, goes through [`Probe::statement`],
//!   the one place that carries the rule: a server *error reply* is a fact and keeps
//!   the connection; an I/O error, a driver error or a timeout poisons it: it is closed
//!   with a bounded `disconnect` and never reused (dropping a live `Conn` would make the
//!   driver spawn a cleanup task that drains the pending result, which never ends
//!   against a stopped server: one leaked task and socket per round).

mod connect;
mod sql;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use crate::config::{Check, Mysql};
use crate::facts::{
    has_role_column, version_triple, Channel, Facts, Group, Member, OptionalFact, ProbeError,
    Reason, ServerError, Step, StepFailure,
};
use connect::classify_driver_error;
use sql::{
    channel_of, columns, core_variables_sql, replication_sql, status_sql, text, GROUP_MEMBERS_SQL,
    GROUP_QUEUE_SQL, GROUP_QUEUE_SQL_57,
};

/// How long one round (connect and every step) may take: what `check.stale_after`
/// leaves after an `interval`, less a fifth for the bounded disconnect and publishing,
/// so a round that uses it all still publishes before the last snapshot goes stale.
/// Never less than one step's `check.timeout`.
pub fn round_budget(check: &Check) -> Duration {
    let room = check.stale_after.saturating_sub(check.interval);
    (room - room / 5).max(check.timeout)
}

/// How long a connection that lacks a privilege is kept before a new one is tried.
pub(crate) const PRIVILEGE_RECONNECT: Duration = Duration::from_secs(10);

/// What [`Probe::statement`] does with the reply's rows.
#[derive(Clone, Copy)]
enum Rows {
    /// Return them (a fact is read from them).
    Keep,
    /// Read and drop them (the check query, the session SETs).
    Drop,
}

/// How a statement failed.
enum Failed {
    /// The server replied with an error: a fact about the server; the connection is
    /// kept.
    Reply(mysql_async::ServerError),
    /// No usable reply (I/O or driver error, timeout, or no connection left): the
    /// connection is gone, already discarded.
    Lost(ProbeError),
}

impl Failed {
    /// The failure as the round's error (a required step).
    fn into_error(self, step: Step) -> ProbeError {
        match self {
            Failed::Reply(e) => classify_driver_error(&mysql_async::Error::Server(e), step),
            Failed::Lost(e) => e,
        }
    }

    /// The failure as an optional fact's (the round goes on).
    fn into_step_failure(self, step: Step) -> StepFailure {
        let e = self.into_error(step);
        StepFailure {
            reason: e.reason,
            code: e.code,
        }
    }
}

/// The prober's connection and per-round settings.
pub struct Probe {
    mysql: Mysql,
    timeout: Duration,
    budget: Duration,
    /// When the current round must end.
    deadline: tokio::time::Instant,
    /// The step during which the round's deadline expired.
    expired: Option<Step>,
    query: String,
    conn: Option<Conn>,
    /// When `conn` was opened.
    connected_at: tokio::time::Instant,
    /// The server said it has no TLS (`preferred` mode): connect in clear without
    /// trying again until the connection is lost.
    server_lacks_tls: bool,
    /// The replication statement that worked on this connection.
    repl_sql: Option<&'static str>,
    max_applier_queue: u64,
}

impl Probe {
    pub fn new(mysql: Mysql, check: &Check) -> Probe {
        Probe {
            mysql,
            timeout: check.timeout,
            budget: round_budget(check),
            deadline: tokio::time::Instant::now(),
            expired: None,
            query: check.query.clone(),
            conn: None,
            connected_at: tokio::time::Instant::now(),
            server_lacks_tls: false,
            repl_sql: None,
            max_applier_queue: check.gr_max_applier_queue,
        }
    }

    /// Apply new settings (reload). A changed target or credentials drop the
    /// connection so the next round reconnects with them.
    pub async fn reconfigure(&mut self, mysql: Mysql, check: &Check) {
        if mysql != self.mysql {
            self.close().await;
            self.server_lacks_tls = false;
        }
        self.mysql = mysql;
        self.timeout = check.timeout;
        self.budget = round_budget(check);
        self.query = check.query.clone();
        self.max_applier_queue = check.gr_max_applier_queue;
    }

    /// How long the next wait may last: `limit`, or less when the round's deadline is
    /// nearer (then reaching it is the round's deadline, see [`Probe::timed_out`]).
    fn wait(&self, limit: Duration) -> Duration {
        limit.min(
            self.deadline
                .saturating_duration_since(tokio::time::Instant::now()),
        )
    }

    fn past_deadline(&self) -> bool {
        tokio::time::Instant::now() >= self.deadline
    }

    /// One round: connect if needed, core facts, the check query, optional facts.
    pub async fn round(&mut self) -> Result<Facts, ProbeError> {
        self.deadline = tokio::time::Instant::now() + self.budget;
        self.expired = None;
        let facts = self.steps().await?;
        // Global privileges are fixed when a session logs in: a GRANT of the missing
        // one (`SLAVE MONITOR`, ...) reaches only new connections. So a connection that
        // lacked one is replaced, at most once per PRIVILEGE_RECONNECT, so that the
        // grant is seen without a restart and a privilege never granted costs one
        // connect per PRIVILEGE_RECONNECT, not one per round.
        if facts.errors().contains(&Reason::Privilege)
            && self.connected_at.elapsed() >= PRIVILEGE_RECONNECT
        {
            if let Some(conn) = self.conn.take() {
                tokio::spawn(discard(conn));
            }
        }
        // An optional step cut short by the round's deadline fails the round: the
        // deadline is about the whole snapshot, not one missing fact.
        match self.expired.take() {
            Some(step) => Err(ProbeError::new(
                Reason::Timeout,
                step,
                format!("round deadline ({:?}) reached", self.budget),
            )),
            None => Ok(facts),
        }
    }

    async fn steps(&mut self) -> Result<Facts, ProbeError> {
        if self.conn.is_none() {
            self.connect().await?;
        }
        let core = self
            .statement(Step::Core, &core_variables_sql(), Rows::Keep)
            .await
            .map_err(|f| f.into_error(Step::Core))?;
        let mut facts = Facts::from_variables(
            core.iter()
                .filter_map(|r| Some((text(r, 0)?, text(r, 1).unwrap_or_default()))),
        );
        let query = self.query.clone();
        match self.statement(Step::Query, &query, Rows::Drop).await {
            Ok(_) => {}
            Err(Failed::Reply(e)) => facts.query = Err(ServerError::new(e.code, &e.message)),
            Err(Failed::Lost(e)) => return Err(e),
        }
        // Once the deadline has passed the remaining steps are not even tried.
        if self.expired.is_some() {
            return Ok(facts);
        }
        facts.status = match self
            .statement(Step::Status, &status_sql(), Rows::Keep)
            .await
        {
            Ok(rows) => OptionalFact::Known(
                rows.iter()
                    .filter_map(|r| Some((text(r, 0)?.to_ascii_lowercase(), text(r, 1)?)))
                    .collect(),
            ),
            Err(f) => OptionalFact::Failed(f.into_step_failure(Step::Status)),
        };
        if self.expired.is_some() {
            return Ok(facts);
        }
        facts.channels = self.channels(&facts).await;
        if facts.group_replication() && self.expired.is_none() {
            let primary_member = facts
                .status_var("group_replication_primary_member")
                .map(str::to_string);
            facts.group = self.group(primary_member).await;
        }
        Ok(facts)
    }

    /// Send one statement, waiting at most `check.timeout` and never past the round's
    /// deadline. An error reply keeps the connection ([`Failed::Reply`]); anything else
    /// that leaves no reply discards it ([`Failed::Lost`]), because an unread reply
    /// would be taken by the next statement as its own. `step` names the failure; during
    /// [`Step::Connect`] (the session SETs) a timeout reads as the connect's.
    async fn statement(&mut self, step: Step, sql: &str, rows: Rows) -> Result<Vec<Row>, Failed> {
        let wait = self.wait(self.timeout);
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failed::Lost(ProbeError::new(
                Reason::Io,
                step,
                "no connection",
            )));
        };
        let reply = match rows {
            Rows::Keep => tokio::time::timeout(wait, conn.query::<Row, _>(sql)).await,
            Rows::Drop => tokio::time::timeout(wait, conn.query_drop(sql))
                .await
                .map(|r| r.map(|()| Vec::new())),
        };
        match reply {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(mysql_async::Error::Server(e))) => Err(Failed::Reply(e)),
            Ok(Err(e)) => {
                self.close().await;
                Err(Failed::Lost(classify_driver_error(&e, step)))
            }
            Err(_) if step == Step::Connect => {
                self.close().await;
                Err(Failed::Lost(self.connect_timed_out("session setup")))
            }
            Err(_) => Err(Failed::Lost(self.timed_out(step).await)),
        }
    }

    /// `primary_member`: the `group_replication_primary_member` status, for a server
    /// whose member table has no role column (MySQL 5.7).
    async fn group(&mut self, primary_member: Option<String>) -> OptionalFact<Group> {
        let rows = match self
            .statement(Step::Group, GROUP_MEMBERS_SQL, Rows::Keep)
            .await
        {
            Ok(r) => r,
            Err(f) => return OptionalFact::Failed(f.into_step_failure(Step::Group)),
        };
        let rows: Vec<_> = rows.iter().map(columns).collect();
        let has_role = rows.first().is_none_or(|r| has_role_column(r));
        let mut g = Group {
            members: rows.iter().map(|r| Member::from_row(r)).collect(),
            applier_queue: OptionalFact::NotCollected,
        };
        if !has_role {
            g.derive_roles(primary_member.as_deref());
        }
        if self.max_applier_queue > 0 {
            let sql = if has_role {
                GROUP_QUEUE_SQL
            } else {
                GROUP_QUEUE_SQL_57
            };
            g.applier_queue = match self.statement(Step::Group, sql, Rows::Keep).await {
                Ok(rows) => OptionalFact::Known(
                    rows.first()
                        .and_then(|r| text(r, 0))
                        .and_then(|v| v.trim().parse().ok()),
                ),
                Err(f) => OptionalFact::Failed(f.into_step_failure(Step::Group)),
            };
        }
        OptionalFact::Known(g)
    }

    /// Every replication channel. The statement is chosen once per connection from the
    /// version, falling back to the older syntax only on a syntax error (1064), never
    /// on a privilege error (which is a reason of its own).
    async fn channels(&mut self, facts: &Facts) -> OptionalFact<Vec<Channel>> {
        // A connection lost in an earlier step of this round: not collected.
        if self.conn.is_none() {
            return OptionalFact::NotCollected;
        }
        let (newer, older) = replication_sql(facts.flavour, version_triple(facts.version()));
        let mut sql = self.repl_sql.unwrap_or(newer);
        loop {
            match self.statement(Step::Replication, sql, Rows::Keep).await {
                Ok(rows) => {
                    self.repl_sql = Some(sql);
                    return OptionalFact::Known(rows.iter().map(channel_of).collect());
                }
                Err(Failed::Reply(e)) if e.code == 1064 && sql == newer => match older {
                    Some(o) => sql = o,
                    None => {
                        return OptionalFact::Failed(StepFailure {
                            reason: Reason::ServerError,
                            code: Some(e.code),
                        })
                    }
                },
                Err(f) => return OptionalFact::Failed(f.into_step_failure(Step::Replication)),
            }
        }
    }

    /// A statement got no reply in time: the connection is discarded, and when the
    /// round's deadline was the limit, the round will fail naming `step`.
    async fn timed_out(&mut self, step: Step) -> ProbeError {
        if self.past_deadline() {
            self.expired.get_or_insert(step);
        }
        self.close().await;
        ProbeError::new(
            Reason::Timeout,
            step,
            format!("no reply within {:?}", self.timeout),
        )
    }

    /// One statement outside the rounds (discovery reads the topology through it):
    /// connect if needed, then `sql` under the same deadlines as a round's statements;
    /// the rows as (column, text) pairs. An error reply keeps the connection.
    pub(crate) async fn rows(
        &mut self,
        sql: &str,
    ) -> Result<Vec<Vec<(String, Option<String>)>>, ProbeError> {
        self.deadline = tokio::time::Instant::now() + self.budget;
        self.expired = None;
        if self.conn.is_none() {
            self.connect().await?;
        }
        match self.statement(Step::Query, sql, Rows::Keep).await {
            Ok(rows) => Ok(rows.iter().map(columns).collect()),
            Err(f) => Err(f.into_error(Step::Query)),
        }
    }

    /// Close the connection, bounded in time, never reusing it.
    pub async fn close(&mut self) {
        self.repl_sql = None;
        if let Some(conn) = self.conn.take() {
            discard(conn).await;
        }
    }
}

/// `disconnect` marks the `Conn` as disconnected before it writes anything, so if it
/// does not finish in time the `Conn` is dropped without spawning the driver's drain
/// task and its socket is simply closed.
async fn discard(conn: Conn) {
    let _ = tokio::time::timeout(Duration::from_millis(500), conn.disconnect()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_budget_leaves_room_before_staleness() {
        let check = |interval: u64, timeout: u64, stale: u64| {
            let mut c = crate::config::from_str(
                "[listen]\nhttp=\"127.0.0.1:1\"\n",
                "t",
                &Default::default(),
            )
            .unwrap()
            .config
            .check;
            c.interval = Duration::from_millis(interval);
            c.timeout = Duration::from_millis(timeout);
            c.stale_after = Duration::from_millis(stale);
            c
        };
        // Defaults (1 s, 1 s, 5 s): 4 s of room, 3.2 s for the round.
        assert_eq!(
            round_budget(&check(1000, 1000, 5000)),
            Duration::from_millis(3200)
        );
        let c = check(200, 900, 2000);
        let b = round_budget(&c);
        assert!(c.interval + b < c.stale_after, "{b:?}");
        // Never less than one step.
        assert_eq!(
            round_budget(&check(1000, 1000, 1000)),
            Duration::from_millis(1000)
        );
    }
}
