//! What operators change on a running server: the config that the accept paths read
//! (swapped whole, so a connection sees one consistent version), the client registry, the
//! bans and the connection limiters. Reload is one path for SIGHUP and the admin API: read,
//! check everything, then swap; a file that fails any check changes nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::auth::{Auth, Secrets};
use crate::bans::Bans;
use crate::clients::Clients;
use crate::config::{Config, MetricsListener};
use crate::hls::Hls;
use crate::hub::Hub;
use crate::limits::ConnLimiter;
use crate::tls::Tls;

/// Reads the config again (the file, with the command line's addresses on top).
pub type Loader = Box<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// What a reload changed.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ReloadReport {
    /// Settings whose new values apply from now on (new connections, new streams).
    pub applied: Vec<String>,
    /// Settings that changed in the file but only take effect after a restart; the
    /// running server keeps their old values.
    pub needs_restart: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("this server was started without a config file to re-read")]
    NoSource,
    /// The file does not parse or a value is invalid; nothing was changed.
    #[error("{0}")]
    Invalid(String),
}

pub struct Control {
    config: ArcSwap<Config>,
    auth: ArcSwap<Auth>,
    admin_tokens: ArcSwap<Secrets>,
    pub clients: Clients,
    pub bans: Arc<Bans>,
    pub rtmp_limiter: ConnLimiter,
    pub http_limiter: ConnLimiter,
    pub admin_limiter: ConnLimiter,
    /// The certificate of the TLS listeners; `None` when neither is configured.
    pub tls: Option<Arc<Tls>>,
    hub: Hub,
    hls: Option<Hls>,
    loader: Option<Loader>,
    /// One reload at a time.
    reloading: Mutex<()>,
}

impl Control {
    /// Checks `cfg` (keys, tokens, hook URL, bans) and builds the running state from it.
    pub fn new(
        cfg: Config,
        hub: Hub,
        hls: Option<Hls>,
        loader: Option<Loader>,
    ) -> anyhow::Result<Self> {
        let bans = Arc::new(Bans::new(hub.metrics().clone()));
        bans.configure(&cfg.auth)?;
        let auth = Auth::new(cfg.auth.clone())?.with_bans(bans.clone());
        let admin_tokens = Secrets::new("admin.tokens", &cfg.admin.tokens)?;
        let tls = if cfg.rtmp.tls_addr.is_some() || cfg.http.tls_addr.is_some() {
            let tls = Tls::new(&cfg.tls)?;
            tracing::info!(fingerprint = %tls.fingerprint(), "TLS certificate loaded");
            Some(Arc::new(tls))
        } else {
            if cfg.tls.cert.is_some() || cfg.tls.self_signed {
                tracing::warn!(
                    "a TLS certificate is configured but neither rtmp.tls_addr nor http.tls_addr is set: no TLS listener runs"
                );
            }
            None
        };
        Ok(Self {
            tls,
            rtmp_limiter: ConnLimiter::new(
                cfg.rtmp.max_connections,
                cfg.rtmp.max_connections_per_ip,
            ),
            http_limiter: ConnLimiter::new(
                cfg.http.max_connections,
                cfg.http.max_connections_per_ip,
            ),
            admin_limiter: ConnLimiter::new(cfg.admin.max_connections, cfg.admin.max_connections),
            clients: Clients::new(cfg.rtmp.max_connections + cfg.http.max_connections),
            config: ArcSwap::from_pointee(cfg),
            auth: ArcSwap::from_pointee(auth),
            admin_tokens: ArcSwap::from_pointee(admin_tokens),
            bans,
            hub,
            hls,
            loader,
            reloading: Mutex::new(()),
        })
    }

    /// The running config.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    pub fn auth(&self) -> Arc<Auth> {
        self.auth.load_full()
    }

    pub fn admin_tokens(&self) -> Arc<Secrets> {
        self.admin_tokens.load_full()
    }

    pub fn metrics_public(&self) -> bool {
        self.config.load().metrics.listener == MetricsListener::Public
    }

    /// Re-reads the config and applies what can change while running. On any error the
    /// running config stays exactly as it was. Logs the outcome either way.
    pub fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let r = self.try_reload();
        if let Err(e) = &r {
            tracing::error!(error = %e, "config reload refused; the running config is unchanged");
        }
        r
    }

    fn try_reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let loader = self.loader.as_ref().ok_or(ReloadError::NoSource)?;
        let invalid = |e: anyhow::Error| ReloadError::Invalid(format!("{e:#}"));
        let new = loader().map_err(invalid)?;
        let old = self.config();
        let (applied, needs_restart) = classify(&old, &new);
        let effective = keep_restart_only(&old, new);
        // Check everything before changing anything.
        let auth = Auth::new(effective.auth.clone()).map_err(invalid)?;
        let tokens = Secrets::new("admin.tokens", &effective.admin.tokens).map_err(invalid)?;
        Bans::parse_config(&effective.auth).map_err(|e| invalid(e.into()))?;
        // The certificate files are re-read even when their names did not change: a
        // renewal rewrites them in place.
        let cert = match &self.tls {
            Some(tls) => tls.prepare(&effective.tls).map_err(|e| invalid(e.into()))?,
            None => None,
        };

        self.bans
            .configure(&effective.auth)
            .map_err(|e| invalid(e.into()))?;
        self.auth.store(Arc::new(auth.with_bans(self.bans.clone())));
        self.admin_tokens.store(Arc::new(tokens));
        let (r, h, a) = (&effective.rtmp, &effective.http, &effective.admin);
        self.rtmp_limiter
            .set_limits(r.max_connections, r.max_connections_per_ip);
        self.http_limiter
            .set_limits(h.max_connections, h.max_connections_per_ip);
        self.admin_limiter
            .set_limits(a.max_connections, a.max_connections);
        self.clients.set_max(r.max_connections + h.max_connections);
        self.hub.set_config(effective.hub.clone());
        if let Some(hls) = &self.hls {
            hls.set_config(effective.hls.clone());
        }
        self.config.store(Arc::new(effective));
        let mut applied = applied;
        if let (Some(tls), Some(cert)) = (&self.tls, cert) {
            if cert.install(tls) {
                applied.push("tls.certificate".into());
                tracing::info!(fingerprint = %tls.fingerprint(), "TLS certificate reloaded");
            }
        }
        let report = ReloadReport {
            applied,
            needs_restart,
        };
        tracing::info!(
            applied = ?report.applied,
            needs_restart = ?report.needs_restart,
            "config reloaded"
        );
        Ok(report)
    }
}

/// Settings read only when the server starts: listeners and what is built once with them.
fn restart_only(key: &str, old: &Config) -> bool {
    matches!(
        key,
        "rtmp.addr"
            | "http.addr"
            | "admin.addr"
            | "hls.enabled"
            | "http.player_dir"
            | "rtmp.tls_addr"
            | "http.tls_addr"
            | "tls.self_signed"
    ) || key.starts_with("qoe.")
        // The recorder and its playback API keep the settings they started with.
        || key.starts_with("record.")
        // Pulls, the directory and the hop list are built once at start.
        || key.starts_with("cluster.")
        || key == "pull"
        || key.starts_with("pull.")
        || (key.starts_with("admin.tokens") && old.admin.tokens.is_empty())
        // Without a TLS listener there is no certificate to swap; one starts with a restart.
        || (key.starts_with("tls.") && old.rtmp.tls_addr.is_none() && old.http.tls_addr.is_none())
}

/// `new`, with the restart-only settings at their running values.
fn keep_restart_only(old: &Config, mut new: Config) -> Config {
    new.rtmp.addr = old.rtmp.addr;
    new.http.addr = old.http.addr;
    new.admin.addr = old.admin.addr;
    new.rtmp.tls_addr = old.rtmp.tls_addr;
    new.http.tls_addr = old.http.tls_addr;
    new.tls.self_signed = old.tls.self_signed;
    new.hls.enabled = old.hls.enabled;
    new.http.player_dir = old.http.player_dir.clone();
    // The QoE aggregates are built once with their bounds.
    new.qoe = old.qoe.clone();
    new.record = old.record.clone();
    new.cluster = old.cluster.clone();
    new.pull = old.pull.clone();
    if old.admin.tokens.is_empty() {
        // The admin listener was not started; turning it on needs a restart.
        new.admin.tokens.clear();
    }
    new
}

/// The changed settings (by dotted name, never their values), split into those applied now
/// and those that need a restart.
fn classify(old: &Config, new: &Config) -> (Vec<String>, Vec<String>) {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(&toml::Value::try_from(old).ok(), "", &mut a);
    flatten(&toml::Value::try_from(new).ok(), "", &mut b);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let changed = keys.into_iter().filter(|k| a.get(*k) != b.get(*k));
    changed.cloned().partition(|k| !restart_only(k, old))
}

fn flatten(v: &Option<toml::Value>, prefix: &str, out: &mut BTreeMap<String, toml::Value>) {
    match v {
        Some(toml::Value::Table(t)) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&Some(v.clone()), &key, out);
            }
        }
        Some(other) => {
            out.insert(prefix.to_string(), other.clone());
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(text: &'static str, next: Arc<Mutex<&'static str>>) -> Control {
        let cfg = Config::from_toml(text).unwrap();
        let loader: Loader = Box::new(move || {
            let t = *next.lock().unwrap();
            Ok(Config::from_toml(t)?)
        });
        Control::new(cfg, Hub::new(Default::default()), None, Some(loader)).unwrap()
    }

    #[test]
    fn reload_applies_keys_and_reports_addresses() {
        let first = "[auth.publish_keys]\nlive = [\"old\"]\n";
        let next = Arc::new(Mutex::new(first));
        let c = control(first, next.clone());
        *next.lock().unwrap() = "[auth.publish_keys]\nlive = [\"new\"]\n\
             [rtmp]\naddr = \"127.0.0.1:1\"\nmax_connections = 7\n";
        let r = c.reload().unwrap();
        assert!(
            r.applied.iter().any(|k| k.starts_with("auth.publish_keys")),
            "{r:?}"
        );
        assert!(
            r.applied.contains(&"rtmp.max_connections".to_string()),
            "{r:?}"
        );
        assert_eq!(r.needs_restart, vec!["rtmp.addr".to_string()]);
        let cfg = c.config();
        assert_eq!(cfg.rtmp.max_connections, 7);
        assert_eq!(cfg.rtmp.addr.port(), 1935, "listener address kept");
        assert_eq!(cfg.auth.publish_keys["live"][0].secret(), "new");
    }

    #[test]
    fn broken_file_changes_nothing() {
        let first = "[auth]\nplay_tokens = [\"t\"]\n";
        let next = Arc::new(Mutex::new(first));
        let c = control(first, next.clone());
        for bad in [
            "[auth]\nplay_tokens = [\"t2\"\n",
            "[auth]\nplay_tokens = [\"t2\"]\nbanned = [\"not-an-ip\"]\n",
            "[auth]\nplay_tokens = [\"t2\"]\nhook_url = \"ftp://x\"\n",
        ] {
            *next.lock().unwrap() = bad;
            let e = c.reload().unwrap_err();
            assert!(matches!(e, ReloadError::Invalid(_)), "{e}");
            assert_eq!(c.config().auth.play_tokens[0].secret(), "t");
            assert!(c.config().auth.banned.is_empty());
        }
    }
}
