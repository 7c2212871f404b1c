//! RTMP: the listener that admits connections within the configured limit, the
//! per-connection driver, and the sans-IO pieces it runs (session state machine,
//! handshake, chunk codec, messages).

pub mod chunk;
pub mod driver;
pub mod error;
pub mod handshake;
pub mod messages;
pub mod replay;
pub mod session;
pub mod socket;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::auth::Auth;
use crate::config::RtmpConfig;
use crate::hub::Hub;
use crate::limits::{accept_admitted, ConnLimiter};

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
    while let Some((socket, peer, admission)) =
        accept_admitted(&listener, &limiter, &metrics, "rtmp", &shutdown).await
    {
        let span = tracing::info_span!("rtmp", peer = %peer, stream = tracing::field::Empty);
        let (cfg, hub, auth, shutdown) = (cfg.clone(), hub.clone(), auth.clone(), shutdown.clone());
        tasks.spawn(
            async move {
                driver::run(socket, peer, cfg, hub, auth, shutdown).await;
                drop(admission);
            }
            .instrument(span),
        );
    }
}
