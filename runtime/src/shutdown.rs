//! The shutdown signal both binaries wait on.

use std::future::Future;

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// server calls it before it says it is listening, so a SIGTERM sent the moment it is up is a
/// clean shutdown rather than the default action (death by the signal). A signal that cannot
/// be listened for is logged and the other one still works. Call it inside a tokio runtime.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for {name}");
                None
            }
        };
        let mut int = listen(SignalKind::interrupt(), "Ctrl-C");
        let mut term = listen(SignalKind::terminate(), "SIGTERM");
        async move {
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = int => {},
                () = term => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}
