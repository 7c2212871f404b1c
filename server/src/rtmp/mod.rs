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

use crate::control::Control;
use crate::hub::Hub;
use crate::limits::accept_admitted;

/// Accepts RTMP connections until `shutdown`; each runs in its own task and span, with the
/// config and credentials current when it was accepted.
pub async fn serve(
    listener: TcpListener,
    control: Arc<Control>,
    hub: Hub,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let metrics = hub.metrics().clone();
    let limiter = control.rtmp_limiter.clone();
    while let Some((socket, peer, admission)) = accept_admitted(
        &listener,
        &limiter,
        Some(&control.bans),
        &metrics,
        "rtmp",
        &shutdown,
    )
    .await
    {
        let span = tracing::info_span!("rtmp", peer = %peer, stream = tracing::field::Empty);
        let (cfg, auth) = (Arc::new(control.config().rtmp.clone()), control.auth());
        let client = control
            .clients
            .register(peer, "rtmp", shutdown.child_token());
        let hub = hub.clone();
        tasks.spawn(
            async move {
                driver::run(socket, peer, cfg, hub, auth, client).await;
                drop(admission);
            }
            .instrument(span),
        );
    }
}
