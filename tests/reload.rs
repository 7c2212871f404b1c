//! Live reload: after SIGHUP a new publish key works and the old one is refused, while a
//! stream published with the old key keeps every frame flowing to its viewer (60 s of
//! stream, as the issue asks; `ONAIR_RELOAD_SECS=N` shortens it for local runs). A broken file is
//! refused with its error (HTTP 422 on `POST /api/admin/reload`, a log line on SIGHUP)
//! and changes nothing; a listener-only setting is reported as needing a restart.

use crate::common;

use std::time::Duration;

use common::raw_rtmp::RawRtmp;
use common::viewers::{flv_play, SyntheticPublisher};
use common::*;
use onair_bench::media::{classify_video, VideoTag};
use onair_shared::flv::TAG_VIDEO;

const ADMIN: &str = "Authorization: Bearer adm-reload";
/// Seconds of stream the viewer must receive whole (at 30 fps).
const SECS: usize = 60;

fn frames() -> usize {
    let secs = std::env::var("ONAIR_RELOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SECS);
    secs * 30
}

fn config(key: &str, extra: &str) -> String {
    format!(
        "[admin]\ntokens = [\"adm-reload\"]\n\
         [auth.publish_keys]\nlive = [{{ name = \"k\", secret = \"{key}\" }}]\n{extra}"
    )
}

/// Whether publishing `live/{name}` with `key` is accepted (Publish.Start) or refused.
fn publish_accepted(server: &ServerProc, name: &str, key: &str) -> bool {
    let mut c = RawRtmp::connect(server.rtmp);
    c.handshake();
    c.connect_app("live");
    c.publish(&format!("{name}?key={key}"));
    let started = c.wait_for("NetStream.Publish.Start", Duration::from_secs(5));
    if !started {
        assert!(
            c.saw("NetStream.Publish.Unauthorized"),
            "neither started nor refused"
        );
    }
    started
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_keys_while_a_stream_keeps_every_frame() {
    let server = ServerProc::start_logged(&config("old-key", ""), "info");
    let frames = frames();
    let url = server.rtmp_url("live/keep?key=old-key");
    let publisher = SyntheticPublisher::start(&url, frames / 30 + 20).await;
    let http = server.http;
    let viewer = tokio::spawn(async move {
        let mut seqs = Vec::new();
        let limit = Duration::from_secs(frames as u64 / 30 * 3);
        flv_play(http, "/live/keep.flv", limit, |m| {
            if m.tag_type == TAG_VIDEO {
                if let VideoTag::Frame { seq, .. } = classify_video(&m.body) {
                    seqs.push(seq);
                }
            }
            seqs.len() < frames
        })
        .await
        .map(|()| seqs)
    });
    let admin = server.admin.unwrap();
    tokio::task::block_in_place(|| {
        wait_until("the viewer playing", Duration::from_secs(10), || {
            server
                .stream("live", "keep")
                .is_some_and(|s| s["viewers"]["flv"] == 1)
        });
        assert!(publish_accepted(&server, "probe-a", "old-key"));

        std::fs::write(server.config_path(), config("new-key", "")).unwrap();
        server.sighup();
        wait_until("the new key accepted", Duration::from_secs(10), || {
            publish_accepted(&server, "probe-b", "new-key")
        });
        assert!(
            !publish_accepted(&server, "probe-c", "old-key"),
            "old key after reload"
        );

        // A broken file: refused with its error, nothing changes.
        std::fs::write(server.config_path(), "[auth\npublish_keys = 3\n").unwrap();
        let (status, body) = http_request(admin, "POST", "/api/admin/reload", &[ADMIN], b"");
        let body = String::from_utf8_lossy(&body).to_string();
        assert_eq!(status, 422, "{body}");
        assert!(
            body.contains("onair.toml"),
            "the error names the file: {body}"
        );
        server.sighup();
        wait_until("SIGHUP's refusal logged", Duration::from_secs(10), || {
            server.log().matches("config reload refused").count() >= 2
        });
        assert!(
            publish_accepted(&server, "probe-d", "new-key"),
            "new key after a broken reload"
        );
        assert!(!publish_accepted(&server, "probe-e", "old-key"));

        // A listener-level setting is reported, not applied.
        std::fs::write(
            server.config_path(),
            config(
                "new-key",
                "[hls]\nenabled = false\n[hub]\nmax_streams = 50\n",
            ),
        )
        .unwrap();
        let (status, body) = http_request(admin, "POST", "/api/admin/reload", &[ADMIN], b"");
        assert_eq!(status, 200);
        let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            report["needs_restart"],
            serde_json::json!(["hls.enabled"]),
            "{report}"
        );
        assert_eq!(
            report["applied"],
            serde_json::json!(["hub.max_streams"]),
            "{report}"
        );
        assert!(
            !report.to_string().contains("new-key"),
            "a secret in the report"
        );
    });

    let seqs = viewer.await.unwrap().expect("the viewer kept playing");
    publisher.stop().await;
    assert_eq!(seqs.len(), frames);
    let gaps: Vec<_> = seqs.windows(2).filter(|w| w[1] != w[0] + 1).collect();
    assert!(
        gaps.is_empty(),
        "frames lost or reordered across reloads: {gaps:?}"
    );
    println!(
        "reload: {} frames (seq {}..={}) without a gap across 4 reloads",
        seqs.len(),
        seqs[0],
        seqs[seqs.len() - 1]
    );
}
