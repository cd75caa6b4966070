//! The control loop driven by injected events, and the first-round wait.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use super::*;
use crate::facts::{ProbeError, Reason, Step};
use crate::snapshot::{Published, Snapshot};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn snapshot() -> Snapshot {
    Snapshot {
        seq: 1,
        taken: Instant::now(),
        wall: SystemTime::now(),
        duration: Duration::ZERO,
        outcome: Err(ProbeError {
            reason: Reason::Refused,
            step: Step::Connect,
            code: None,
            detail: String::new(),
        }),
        maintenance: None,
        policy: Default::default(),
    }
}

/// Counts how often the inner future is polled: a waiter that is told wakes once or
/// twice, one that polls a clock wakes every few milliseconds.
struct Polls<F> {
    inner: Pin<Box<F>>,
    count: Arc<AtomicUsize>,
}

impl<F: Future> Future for Polls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.as_mut().poll(cx)
    }
}

/// A fleet of one whose snapshot cell is `published`.
fn fleet_of(published: Arc<Published>) -> Fleet {
    let config = crate::config::from_str("[listen]\nhttp=\"127.0.0.1:1\"\n", "t", &BTreeMap::new())
        .unwrap()
        .config;
    Fleet::single(Arc::new(crate::fleet::Target::configured(
        "",
        Arc::new(config),
        published,
    )))
}

#[test]
fn the_first_round_wait_is_told_not_polling() {
    runtime().block_on(async {
        let published = Arc::new(Published::new());
        let count = Arc::new(AtomicUsize::new(0));
        let waiter = Polls {
            inner: Box::pin({
                let fleet = fleet_of(published.clone());
                async move { first_round(&fleet, Duration::from_secs(60)).await }
            }),
            count: count.clone(),
        };
        let waiter = tokio::spawn(waiter);
        // Long enough for a polling waiter to wake many times; the delay only sets
        // the scene, nothing waits on it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        published.publish(snapshot());
        assert!(waiter.await.unwrap(), "the wait must end with the publish");
        let polls = count.load(Ordering::Relaxed);
        assert!(polls <= 3, "woken {polls} times for one publish");
    });
}

#[test]
fn the_first_round_wait_gives_up_at_its_limit() {
    runtime().block_on(async {
        let published = Arc::new(Published::new());
        let fleet = fleet_of(published.clone());
        assert!(!first_round(&fleet, Duration::from_millis(20)).await);
        published.publish(snapshot());
        assert!(first_round(&fleet, Duration::from_millis(20)).await);
    });
}

#[test]
fn a_stop_wait_keeps_the_other_events_for_later() {
    runtime().block_on(async {
        let (tx, mut events) = Events::injected(CancellationToken::new());
        for e in [Event::Reload, Event::HandOver, Event::Stop, Event::Reload] {
            tx.send(e).unwrap();
        }
        events.stop().await;
        assert_eq!(events.next().await, Event::Reload);
        assert_eq!(events.next().await, Event::HandOver);
        assert_eq!(events.next().await, Event::Reload);
    });
}

#[test]
fn the_shutdown_token_is_a_stop_event() {
    runtime().block_on(async {
        let shutdown = CancellationToken::new();
        let (_tx, mut events) = Events::injected(shutdown.clone());
        shutdown.cancel();
        assert_eq!(events.next().await, Event::Stop);
        events.stop().await;
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config_text(port: u16, interval: &str) -> String {
    format!(
        "[listen]\nhttp = \"127.0.0.1:{port}\"\n[mysql]\nhost = \"127.0.0.1\"\nport = 1\n\
         [check]\ninterval = \"{interval}\"\ntimeout = \"100ms\"\n"
    )
}

/// The control loop acts on injected events in order: a reload applies the new file
/// (new interval, the socket moved to the new port), a stop ends the loop.
#[test]
fn the_control_loop_acts_on_injected_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mysqlchk.toml");
    let (first, second) = (free_port(), free_port());
    std::fs::write(&path, config_text(first, "1s")).unwrap();
    let cfg = crate::config::load(&path, true, &BTreeMap::new())
        .unwrap()
        .config;
    runtime().block_on(async {
        let listeners = prepare(&cfg, &BTreeMap::new()).unwrap();
        let config = Arc::new(ArcSwap::from_pointee(cfg));
        let fleet = Arc::new(ArcSwap::from_pointee(Fleet::from_config(
            config.load_full(),
            None,
        )));
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let mut d = Daemon {
            responder: Arc::new(Responder::new(
                config.clone(),
                fleet.clone(),
                metrics.clone(),
            )),
            probers: Probers::start(
                &fleet.load(),
                metrics.clone(),
                Default::default(),
                shutdown.clone(),
                tokio::runtime::Handle::current(),
            ),
            discoverers: crate::fleet::discoverer::Discoverers::start(
                config.clone(),
                metrics.discovery.clone(),
                shutdown.clone(),
            )
            .0,
            config,
            fleet,
            tracker: TaskTracker::new(),
            running: Vec::new(),
            notifier: Notifier::from_env(&BTreeMap::new()),
            path: path.clone(),
            explicit: true,
            exe: None,
        };
        for b in listeners {
            d.start_loop(b);
        }
        std::fs::write(&path, config_text(second, "2s")).unwrap();
        let (tx, mut events) = Events::injected(CancellationToken::new());
        tx.send(Event::Reload).unwrap();
        tx.send(Event::Stop).unwrap();
        tx.send(Event::Reload).unwrap();
        tokio::time::timeout(Duration::from_secs(30), control(&mut d, &mut events))
            .await
            .expect("a stop event ends the control loop");
        assert_eq!(d.config.load().check.interval, Duration::from_secs(2));
        let addrs: Vec<u16> = d.running.iter().map(|r| r.addr.port()).collect();
        assert_eq!(addrs, [second]);
        // The reload after the stop was not acted on: still queued.
        assert_eq!(events.next().await, Event::Reload);
        shutdown.cancel();
        d.stop().await.join().await;
    });
}
