//! onair server: RTMP ingest, the stream hub, and fan-out to RTMP and HTTP-FLV viewers.
//! `Server::start` binds both listeners and returns once they accept; `shutdown`
//! stops accepting, ends every stream and waits for connections to finish.

pub mod auth;
pub mod config;
pub mod hls;
pub mod http;
pub mod hub;
pub mod limits;
pub mod llhls;
pub mod metrics;
pub mod qoe;
pub mod rtmp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
pub use hub::Hub;

pub struct Server {
    pub rtmp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    hub: Hub,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Server {
    pub async fn start(cfg: Config) -> anyhow::Result<Server> {
        let rtmp_listener = TcpListener::bind(cfg.rtmp.addr)
            .await
            .with_context(|| format!("binding RTMP address {}", cfg.rtmp.addr))?;
        let http_listener = TcpListener::bind(cfg.http.addr)
            .await
            .with_context(|| format!("binding HTTP address {}", cfg.http.addr))?;
        let rtmp_addr = rtmp_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        let hub = Hub::new(cfg.hub.clone());
        let auth = Arc::new(auth::Auth::new(cfg.auth.clone())?);
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(rtmp::serve(
            rtmp_listener,
            Arc::new(cfg.rtmp.clone()),
            hub.clone(),
            auth.clone(),
            shutdown.clone(),
            tasks.clone(),
        ));
        let hls = cfg
            .hls
            .enabled
            .then(|| hls::Hls::new(cfg.hls.clone(), hub.metrics().clone()));
        if let Some(h) = &hls {
            tasks.spawn(h.clone().run(hub.clone(), shutdown.clone(), tasks.clone()));
        }
        tasks.spawn(http::serve(
            http_listener,
            http::HttpContext {
                hub: hub.clone(),
                auth: auth.clone(),
                allowed: Arc::default(),
                hls,
                cfg: Arc::new(cfg.http.clone()),
                api: Arc::new(cfg.api.clone()),
                qoe: Arc::new(qoe::Qoe::new(cfg.qoe.clone())),
                player: Arc::new(http::player::PlayerFiles::new(cfg.http.player_dir.clone())),
            },
            shutdown.clone(),
            tasks.clone(),
        ));
        tracing::info!(rtmp = %rtmp_addr, http = %http_addr, "onair listening");
        Ok(Server {
            rtmp_addr,
            http_addr,
            hub,
            shutdown,
            tasks,
        })
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Stops accepting, ends all streams, and waits up to `grace` for connections to close.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        self.hub.close_all();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within {grace:?}");
        }
    }
}
