//! What the bench started and must not leave behind when SIGINT or SIGTERM stops it: the processes it spawned are killed and its temporary directories removed before it exits (its destructors do the same on every other way out). Armed only by the runs that start NATS.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A process or a directory to clean up.
#[derive(Debug)]
enum Left {
    Pid(u32),
    Dir(PathBuf),
}

/// Everything tracked now, each with its ticket's number.
static TRACKED: Mutex<Vec<(u64, Left)>> = Mutex::new(Vec::new());
/// The next ticket's number.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Something tracked until this is dropped (once its owner has cleaned it up itself).
#[derive(Debug)]
pub(super) struct Ticket(u64);

impl Drop for Ticket {
    fn drop(&mut self) {
        lock().retain(|(n, _)| *n != self.0);
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<(u64, Left)>> {
    TRACKED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn track(left: Left) -> Ticket {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    lock().push((n, left));
    Ticket(n)
}

/// Tracks a process the bench spawned, killed on a signal.
pub(super) fn track_pid(pid: u32) -> Ticket {
    track(Left::Pid(pid))
}

/// Tracks a directory the bench made, removed on a signal (after the processes are killed).
pub(super) fn track_dir(dir: &Path) -> Ticket {
    track(Left::Dir(dir.to_owned()))
}

/// From now on, SIGINT or SIGTERM kills every tracked process, removes every tracked
/// directory and exits with 130 (a second call does nothing).
pub(super) fn arm() {
    static ARMED: std::sync::Once = std::sync::Once::new();
    ARMED.call_once(|| {
        use async_signal::{Signal, Signals};
        let Ok(mut signals) = Signals::new([Signal::Int, Signal::Term]) else {
            // The destructors still clean up on every other way out.
            return;
        };
        std::thread::Builder::new()
            .name("bench-cleanup".into())
            .spawn(move || {
                use smol::stream::StreamExt as _;
                if let Some(Ok(signal)) = smol::block_on(signals.next()) {
                    eprintln!("urc bench: stopped by {signal:?}: killing what it started");
                    clean_up();
                    std::process::exit(130);
                }
            })
            .ok();
    });
}

fn clean_up() {
    let left = std::mem::take(&mut *lock());
    for (_, l) in &left {
        if let Left::Pid(pid) = l {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(*pid).unwrap_or(i32::MAX));
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).ok();
        }
    }
    // Killed processes may still hold files for a moment; removal skips what it cannot.
    std::thread::sleep(std::time::Duration::from_millis(100));
    for (_, l) in &left {
        if let Left::Dir(dir) = l {
            std::fs::remove_dir_all(dir).ok();
        }
    }
}
