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

use crate::config::ms;
use crate::control::Control;
use crate::hub::Hub;
use crate::limits::accept_admitted;
use crate::tls::Tls;

/// Accepts RTMP connections until `shutdown`; each runs in its own task and span, with the
/// config and credentials current when it was accepted. With `tls` it is the RTMPS
/// listener: the same driver over TLS, within the same connection limits as plain RTMP.
pub async fn serve(
    listener: TcpListener,
    control: Arc<Control>,
    hub: Hub,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    tls: Option<Arc<Tls>>,
) {
    let metrics = hub.metrics().clone();
    let limiter = control.rtmp_limiter.clone();
    let protocol = if tls.is_some() { "rtmps" } else { "rtmp" };
    while let Some((socket, peer, admission)) = accept_admitted(
        &listener,
        &limiter,
        Some(&control.bans),
        &metrics,
        protocol,
        &shutdown,
    )
    .await
    {
        let span =
            tracing::info_span!("rtmp", peer = %peer, protocol, stream = tracing::field::Empty);
        let config = control.config();
        let (cfg, auth) = (Arc::new(config.rtmp.clone()), control.auth());
        let handshake_limit = ms(config.tls.handshake_timeout_ms);
        let client = control
            .clients
            .register(peer, protocol, shutdown.child_token());
        let hub = hub.clone();
        let tls = tls.clone();
        let _ = socket.set_nodelay(true);
        tasks.spawn(
            async move {
                match tls {
                    None => driver::run_tcp(socket, peer, cfg, hub, auth, client).await,
                    // Boxed: inline, the TLS stream and its handshake would size the task
                    // of every plain connection too.
                    Some(tls) => Box::pin(async move {
                        let stop = client.kill_token().clone();
                        let accepted = tokio::select! {
                            r = tls.accept(socket, handshake_limit) => r,
                            _ = stop.cancelled() => return,
                        };
                        match accepted {
                            Ok(stream) => driver::run(stream, peer, cfg, hub, auth, client).await,
                            Err(e) => {
                                hub.metrics().refused(e.reason());
                                tracing::warn!(error = %e, reason = e.reason(), "connection closed");
                            }
                        }
                    })
                    .await,
                }
                drop(admission);
            }
            .instrument(span),
        );
    }
}
