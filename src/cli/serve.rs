//! `mysqlchk serve`: the daemon's start-up, synchronous until the runtime exists.
//!
//! Order: config loaded and validated, logging set up, the open-files limit raised,
//! every listener bound or inherited, and only then the runtime built and handed to
//! `daemon::run`. An invalid config exits 78 before anything is bound (README,
//! "Commands"; "Running under systemd": restarting cannot fix it); a listener that
//! cannot be bound exits 1.

use std::path::Path;
use std::time::Duration;

use crate::config::{self, Config, LogFormat};
use crate::daemon;

/// sysexits.h EX_CONFIG; the unit does not restart on it (README, "Running under systemd").
const EX_CONFIG: i32 = 78;

pub(super) fn run(cli: Option<&Path>) -> i32 {
    let Ok(super::Loaded {
        config: cfg,
        path,
        explicit,
    }) = super::load_or_print_errors(cli)
    else {
        eprintln!("mysqlchk: invalid configuration, not starting");
        return EX_CONFIG;
    };
    init_logging(&cfg);
    let want = cfg.listen.max_connections as u64 * 2 + 64;
    let nofile = crate::sys::raise_nofile(want);
    let env = config::process_env();
    let listeners = match daemon::prepare(&cfg, &env) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %cfg.source,
        mysql = %cfg.mysql.target,
        user = %cfg.mysql.user,
        http = ?cfg.listen.http,
        agent = ?cfg.listen.agent,
        interval = %config::fmt_duration(cfg.check.interval),
        open_files = nofile,
        "starting"
    );
    let rt = match runtime(2) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return 1;
        }
    };
    // The probers get a runtime of their own (README, "Fleet mode"): a thousand targets'
    // rounds never queue ahead of a check on the responders' two workers; the OS shares
    // the cores between the two.
    let probe_rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mysqlchk-probe")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the probers' runtime: {e}");
            return 1;
        }
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    rt.block_on(daemon::run(
        cfg,
        listeners,
        path,
        explicit,
        env,
        shutdown,
        probe_rt.handle().clone(),
    ));
    rt.shutdown_timeout(Duration::from_secs(1));
    probe_rt.shutdown_timeout(Duration::from_secs(1));
    0
}

fn init_logging(cfg: &Config) {
    let level = match cfg.log.level.as_str() {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    // A bug that panics in a probe round fails that round (`internal`) and the checker
    // restarts; it would do so every interval, so say it once, as a log line.
    std::panic::set_hook(Box::new(|info| {
        use std::sync::atomic::{AtomicBool, Ordering};
        static SAID: AtomicBool = AtomicBool::new(false);
        if !SAID.swap(true, Ordering::Relaxed) {
            tracing::error!("internal error (a bug; later ones are not logged): {info}");
        }
    }));
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
}
