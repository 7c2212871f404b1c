//! RTMP: the listener that admits connections within the configured limit, the
//! per-connection task, and the sans-IO pieces it drives (chunk codec, messages).

pub mod chunk;
pub mod conn;
pub mod messages;
pub mod replay;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::auth::Auth;
use crate::config::RtmpConfig;
use crate::hub::Hub;
use crate::limits::ConnLimiter;

/// Accepts RTMP connections until `shutdown`; each runs in its own task and span.
pub async fn serve(
    listener: TcpListener,
    cfg: Arc<RtmpConfig>,
    hub: Hub,
    auth: Arc<Auth>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let limiter = ConnLimiter::new(cfg.max_connections, cfg.max_connections_per_ip);
    let metrics = hub.metrics().clone();
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of fds and the like: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "rtmp accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match limiter.try_acquire(peer.ip()) {
            Ok(p) => p,
            Err(refusal) => {
                let reason = refusal.reason("rtmp");
                tracing::warn!(peer = %peer, reason, "rtmp connection refused");
                metrics.refused(reason);
                drop(socket);
                continue;
            }
        };
        metrics.connection_opened("rtmp");
        let metrics = metrics.clone();
        let span = tracing::info_span!("rtmp", peer = %peer, stream = tracing::field::Empty);
        let (cfg, hub, auth, shutdown) = (cfg.clone(), hub.clone(), auth.clone(), shutdown.clone());
        tasks.spawn(
            async move {
                conn::run(socket, peer, cfg, hub, auth, shutdown).await;
                metrics.connection_closed("rtmp");
                drop(permit);
            }
            .instrument(span),
        );
    }
}
