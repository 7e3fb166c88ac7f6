//! Interrupts: Ctrl-C or SIGTERM (a pre-empted runner, `kill`, Kubernetes) stops
//! sending and drains; a second one cancels what is in flight. The level is shared
//! by the whole run through a watch channel.

use tokio::sync::watch;

use crate::driver::Interrupt;

/// Starts listening; the receiver sees the interrupt level.
pub fn listen() -> watch::Receiver<Interrupt> {
    let (tx, rx) = watch::channel(Interrupt::None);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut interrupted = async || {
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                Some(()) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => true,
            }
        };
        if interrupted().await {
            eprintln!(
                "interrupt: no new requests; draining (Ctrl-C or SIGTERM again to cancel in-flight requests)"
            );
            let _ = tx.send(Interrupt::Stop);
            if interrupted().await {
                let _ = tx.send(Interrupt::Cancel);
            }
        }
    });
    rx
}
