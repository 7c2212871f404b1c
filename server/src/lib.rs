//! onair server: RTMP ingest, the stream hub, and fan-out to RTMP and HTTP-FLV viewers.
//! `Server::start` binds the listeners (RTMP, HTTP, and the admin API when it has a token)
//! and returns once they accept; `reload` re-reads the config; `shutdown` stops accepting,
//! ends every stream and waits for connections to finish.

pub mod admin;
pub mod auth;
pub mod bans;
pub mod clients;
pub mod cluster;
pub mod config;
pub mod control;
pub mod fanout;
pub mod hls;
pub mod http;
pub mod hub;
pub mod limits;
pub mod llhls;
pub mod metrics;
pub mod pull;
pub mod qoe;
pub mod record;
pub mod rtmp;
pub mod rtmpt;
pub mod stop;
pub mod tls;
pub mod webrtc;

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
    /// `None` when the admin API is off (no token configured).
    pub admin_addr: Option<SocketAddr>,
    /// The TLS listeners, when their addresses are configured.
    pub rtmps_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    /// The WebRTC UDP port, when `[webrtc]` is enabled and it could be bound.
    pub webrtc_addr: Option<SocketAddr>,
    hub: Hub,
    control: Arc<control::Control>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Server {
    pub async fn start(cfg: Config) -> anyhow::Result<Server> {
        Self::start_reloadable(cfg, None).await
    }

    /// Like `start`; `loader` reads the config again on `reload`.
    pub async fn start_reloadable(
        cfg: Config,
        loader: Option<control::Loader>,
    ) -> anyhow::Result<Server> {
        let rtmp_listener = TcpListener::bind(cfg.rtmp.addr)
            .await
            .with_context(|| format!("binding RTMP address {}", cfg.rtmp.addr))?;
        let http_listener = TcpListener::bind(cfg.http.addr)
            .await
            .with_context(|| format!("binding HTTP address {}", cfg.http.addr))?;
        let admin_listener = if cfg.admin.tokens.is_empty() {
            None
        } else {
            Some(
                TcpListener::bind(cfg.admin.addr)
                    .await
                    .with_context(|| format!("binding admin address {}", cfg.admin.addr))?,
            )
        };
        let rtmps_listener = bind_optional(cfg.rtmp.tls_addr, "RTMPS").await?;
        let https_listener = bind_optional(cfg.http.tls_addr, "HTTPS").await?;
        let rtmps_addr = rtmps_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let https_addr = https_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let rtmp_addr = rtmp_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        let admin_addr = admin_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let hub = Hub::new(cfg.hub.clone());
        let hls = cfg
            .hls
            .enabled
            .then(|| hls::Hls::new(cfg.hls.clone(), hub.metrics().clone()));
        let player = Arc::new(http::player::PlayerFiles::new(cfg.http.player_dir.clone()));
        let qoe = Arc::new(qoe::Qoe::new(cfg.qoe.clone()));
        let webrtc_cfg = cfg.webrtc.clone();
        let control = Arc::new(control::Control::new(
            cfg,
            hub.clone(),
            hls.clone(),
            loader,
        )?);
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        start_sources(&control.config(), rtmp_addr, &hub, &shutdown, &tasks)?;
        tasks.spawn(rtmp::serve(
            rtmp_listener,
            control.clone(),
            hub.clone(),
            shutdown.clone(),
            tasks.clone(),
            None,
        ));
        if let (Some(listener), Some(tls)) = (rtmps_listener, &control.tls) {
            tasks.spawn(rtmp::serve(
                listener,
                control.clone(),
                hub.clone(),
                shutdown.clone(),
                tasks.clone(),
                Some(tls.clone()),
            ));
        }
        if let Some(h) = &hls {
            tasks.spawn(h.clone().run(hub.clone(), shutdown.clone(), tasks.clone()));
        }
        let recorder =
            record::Recorder::new(control.config().record.clone(), hub.metrics().clone());
        if let Some(h) = &hls {
            h.set_recording(recorder.config());
        }
        if recorder.config().enabled {
            tasks.spawn(
                recorder
                    .clone()
                    .run(hub.clone(), shutdown.clone(), tasks.clone()),
            );
        }
        let mut http_ctx =
            http::HttpContext::new(hub.clone(), control.clone(), hls, player, qoe.clone())
                .with_rtmpt(rtmpt::Rtmpt::start(
                    control.clone(),
                    hub.clone(),
                    shutdown.clone(),
                    tasks.clone(),
                ))
                .with_recorder(recorder);
        http_ctx.webrtc = webrtc::WebRtc::start(webrtc_cfg, shutdown.clone(), tasks.clone()).await;
        let webrtc_addr = http_ctx.webrtc.as_ref().map(|w| w.local_addr());
        if let (Some(listener), Some(tls)) = (https_listener, &control.tls) {
            tasks.spawn(http::serve(
                listener,
                http_ctx.clone(),
                shutdown.clone(),
                tasks.clone(),
                Some(tls.clone()),
            ));
        }
        tasks.spawn(http::serve(
            http_listener,
            http_ctx,
            shutdown.clone(),
            tasks.clone(),
            None,
        ));
        if let Some(listener) = admin_listener {
            tasks.spawn(admin::serve(
                listener,
                admin::AdminContext {
                    control: control.clone(),
                    hub: hub.clone(),
                    qoe,
                },
                shutdown.clone(),
                tasks.clone(),
            ));
        }
        tracing::info!(rtmp = %rtmp_addr, http = %http_addr, admin = ?admin_addr, rtmps = ?rtmps_addr, https = ?https_addr, "onair listening");
        Ok(Server {
            rtmp_addr,
            http_addr,
            admin_addr,
            rtmps_addr,
            https_addr,
            webrtc_addr,
            hub,
            control,
            shutdown,
            tasks,
        })
    }

    /// Re-reads the config (SIGHUP, `POST /api/admin/reload`); see `control::Control::reload`.
    pub fn reload(&self) -> Result<control::ReloadReport, control::ReloadError> {
        self.control.reload()
    }

    /// SHA-256 fingerprint of the certificate the TLS listeners serve now.
    pub fn tls_fingerprint(&self) -> Option<String> {
        self.control.tls.as_ref().map(|t| t.fingerprint())
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

async fn bind_optional(
    addr: Option<SocketAddr>,
    what: &str,
) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(a) => Ok(Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("binding {what} address {a}"))?,
        )),
        None => Ok(None),
    }
}

/// Edge pulls, `[[pull]]` sources and the directory registration (`cluster`, `pull`).
fn start_sources(
    cfg: &Config,
    rtmp_addr: SocketAddr,
    hub: &Hub,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> anyhow::Result<()> {
    let cluster = Arc::new(cluster::Cluster::new(
        cfg.cluster.clone(),
        rtmp_addr,
        cfg.hub.publisher_takeover,
    )?);
    let sources = Arc::new(pull::Sources::new(
        cluster.clone(),
        &cfg.pull,
        shutdown.clone(),
        tasks.clone(),
    )?);
    hub.set_sources(sources.clone());
    tasks.spawn(cluster.run_registration(hub.clone(), shutdown.clone()));
    sources.start_always_on(hub);
    Ok(())
}
