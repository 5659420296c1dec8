//! Ctrl-C and SIGTERM: the first one asks every running scenario to stop early and clean up
//! (stop the bench origins, delete keys, drop databases); a second one exits at once after
//! sending SIGTERM to the child processes still registered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn notify() -> &'static Notify {
    static N: OnceLock<Notify> = OnceLock::new();
    N.get_or_init(Notify::new)
}

fn children() -> &'static Mutex<Vec<u32>> {
    static C: OnceLock<Mutex<Vec<u32>>> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// The error a scenario returns when it stopped because of an interrupt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted (Ctrl-C or SIGTERM)")
    }
}

impl std::error::Error for Interrupted {}

/// Starts listening for SIGINT and SIGTERM. Call once, inside the runtime.
pub(crate) fn install() -> anyhow::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!("\nseckill-bench: interrupted again; stopping child processes and exiting");
                for pid in children().lock().map(|c| c.clone()).unwrap_or_default() {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGTERM);
                }
                std::process::exit(130);
            }
            eprintln!("\nseckill-bench: interrupted; cleaning up (press Ctrl-C again to exit at once)");
            notify().notify_waiters();
        }
    });
    Ok(())
}

/// True once an interrupt arrived.
pub(crate) fn is_set() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once an interrupt arrived.
pub(crate) fn check() -> anyhow::Result<()> {
    if is_set() {
        Err(Interrupted.into())
    } else {
        Ok(())
    }
}

/// Resolves when an interrupt arrives (at once if one already did).
pub(crate) async fn wait() {
    let notified = notify().notified();
    if is_set() {
        return;
    }
    notified.await;
}

/// Registers a child process to get SIGTERM if the user insists on exiting at once.
pub(crate) fn register_child(pid: u32) {
    if let Ok(mut c) = children().lock() {
        c.push(pid);
    }
}

/// Forgets a child process that has been stopped.
pub(crate) fn forget_child(pid: u32) {
    if let Ok(mut c) = children().lock() {
        c.retain(|p| *p != pid);
    }
}
