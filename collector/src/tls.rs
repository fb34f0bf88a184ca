//! Serving the router, over TLS (rustls, ring provider) when a certificate and key are
//! configured, otherwise plain HTTP. Both stop gracefully when `shutdown` completes.

use std::future::Future;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use axum::Router;

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<(&Path, &Path)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    match tls {
        None => {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some((cert, key)) => {
            // Another part of the process may have installed a provider already; either way
            // one is in place afterwards.
            rustls::crypto::ring::default_provider()
                .install_default()
                .ok();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopper.graceful_shutdown(Some(Duration::from_secs(10)));
            });
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(router.into_make_service())
                .await
        }
    }
}
