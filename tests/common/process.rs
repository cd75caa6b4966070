//! Process plumbing shared by the fixtures: spawning children that die with
//! the test binary, running short commands under a deadline, signals, `/proc`
//! inspection and clean-up at process exit.

use std::fs;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` so that the child gets SIGKILL when the test binary exits.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not
/// the process. Test functions run on short-lived threads, and a server kept
/// in a `static` outlives the test that started it, so every child is forked
/// from one dedicated thread that lives as long as the process.
pub fn spawn_guarded(mut cmd: Command) -> io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only calls
    // async-signal-safe functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("test process exited during spawn"));
            }
            Ok(())
        });
    }
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("fixture-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the fixture spawner thread");
        tx
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .send((cmd, reply_tx))
        .expect("fixture spawner thread is gone");
    reply_rx.recv().expect("fixture spawner thread is gone")
}

/// Runs a short-lived command with stdin closed, capturing its output; kills it
/// when `timeout` passes. `Err` carries a description of the failure to spawn
/// or of the timeout (with whatever output was produced).
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_guarded(cmd).map_err(|e| format!("cannot spawn {what}: {e}"))?;
    let out_reader = drain(child.stdout.take());
    let err_reader = drain(child.stderr.take());
    let status = wait_timeout(&mut child, timeout);
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            return Err(format!(
                "{what} timed out after {timeout:?}; stdout: {}; stderr: {}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            ));
        }
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Polls `child` every 10 ms until it exits (reaping it) or `timeout` passes.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for pid {}: {e}", child.id()),
        }
        if start.elapsed() >= timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `sig` to `pid`; errors (e.g. ESRCH) are ignored.
pub fn send_signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// SIGCONT (in case it is stopped), SIGKILL and reap.
pub fn kill_and_reap(child: &mut Child) -> ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    send_signal(child.id(), libc::SIGCONT);
    send_signal(child.id(), libc::SIGKILL);
    child
        .wait()
        .unwrap_or_else(|e| panic!("waiting for killed pid {}: {e}", child.id()))
}

/// SIGTERM, wait up to `grace`, then SIGKILL; always reaps.
pub fn terminate_and_reap(child: &mut Child, grace: Duration) -> ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    send_signal(child.id(), libc::SIGCONT);
    send_signal(child.id(), libc::SIGTERM);
    match wait_timeout(child, grace) {
        Some(status) => status,
        None => kill_and_reap(child),
    }
}

/// The state letter of `/proc/<pid>/stat` (R, S, D, T, t, Z, X, ...), `None`
/// when the process does not exist.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain ") ".
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// Waits until `pid` is in a state accepted by `ok`; panics after `deadline`.
pub fn wait_proc_state(
    pid: u32,
    what: &str,
    deadline: Duration,
    ok: impl Fn(Option<char>) -> bool,
) {
    let start = Instant::now();
    loop {
        let state = proc_state(pid);
        if ok(state) {
            return;
        }
        if start.elapsed() >= deadline {
            panic!("pid {pid} did not become {what} within {deadline:?}; state {state:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The last `lines` lines of a text file ("" when it cannot be read).
pub fn tail_file(path: &Path, lines: usize) -> String {
    let text = fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Recursively copies a directory tree of regular files and directories.
pub fn copy_dir_all(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir_all(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Something to undo when the test binary exits: statics are never dropped.
pub enum AtExit {
    /// SIGCONT + SIGKILL + waitpid.
    Kill(u32),
    /// `remove_dir_all`.
    RemoveDir(PathBuf),
}

static AT_EXIT: Mutex<Vec<AtExit>> = Mutex::new(Vec::new());

/// Registers a clean-up run by `atexit` (the test harness always leaves
/// through `exit`). Kills run before directory removals.
pub fn at_exit(item: AtExit) {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registering a plain `extern "C"` function.
        unsafe {
            libc::atexit(run_at_exit);
        }
    });
    AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()).push(item);
}

extern "C" fn run_at_exit() {
    let items = match AT_EXIT.try_lock() {
        Ok(mut guard) => std::mem::take(&mut *guard),
        Err(std::sync::TryLockError::Poisoned(e)) => std::mem::take(&mut *e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    for item in &items {
        if let AtExit::Kill(pid) = item {
            send_signal(*pid, libc::SIGCONT);
            send_signal(*pid, libc::SIGKILL);
            // SAFETY: waitpid on our own child; a null status pointer is allowed.
            unsafe {
                libc::waitpid(*pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
        }
    }
    for item in &items {
        if let AtExit::RemoveDir(dir) = item {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Prefix of every temp dir made by the fixtures.
const TEMPDIR_PREFIX: &str = "fixture-";

/// A temp dir named `fixture-<kind>-XXXXXX` holding an `owner.pid` file.
///
/// The first call in a test binary also removes such dirs whose owner is
/// dead: a test binary killed by a signal cannot clean up after itself (its
/// servers die with it, see [`spawn_guarded`], but their files stay).
pub fn fixture_tempdir(kind: &str) -> tempfile::TempDir {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(sweep_stale_tempdirs);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{TEMPDIR_PREFIX}{kind}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temp dir for {kind}: {e}"));
    fs::write(dir.path().join("owner.pid"), std::process::id().to_string())
        .unwrap_or_else(|e| panic!("cannot write owner.pid: {e}"));
    dir
}

fn sweep_stale_tempdirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(TEMPDIR_PREFIX)
        {
            continue;
        }
        let owner = fs::read_to_string(entry.path().join("owner.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if let Some(pid) = owner {
            if !matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X') {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}
