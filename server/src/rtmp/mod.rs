//! RTMP: the listener that admits connections within the configured limit, the
//! per-connection task, and the sans-IO pieces it drives (chunk codec, messages).

pub mod chunk;
pub mod conn;
pub mod messages;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::RtmpConfig;
use crate::hub::Hub;

/// Accepts RTMP connections until `shutdown`; each runs in its own task and span.
pub async fn serve(
    listener: TcpListener,
    cfg: Arc<RtmpConfig>,
    hub: Hub,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let open = Arc::new(AtomicUsize::new(0));
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
        if open.load(Ordering::Relaxed) >= cfg.max_connections {
            tracing::warn!(peer = %peer, limit = cfg.max_connections, "rtmp connection refused: max_connections reached");
            drop(socket);
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let guard = CountGuard(open.clone());
        let span = tracing::info_span!("rtmp", peer = %peer, stream = tracing::field::Empty);
        let (cfg, hub, shutdown) = (cfg.clone(), hub.clone(), shutdown.clone());
        tasks.spawn(
            async move {
                conn::run(socket, peer, cfg, hub, shutdown).await;
                drop(guard);
            }
            .instrument(span),
        );
    }
}

struct CountGuard(Arc<AtomicUsize>);

impl Drop for CountGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
