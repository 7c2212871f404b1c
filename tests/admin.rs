//! The admin API end to end: its token (401 without, 403 wrong), its own listener (404 on
//! the public port), `/metrics` placement, the client list with credential names, kicking
//! an ffmpeg publisher (a status, cut within a loose 3 s bound; viewers get the grace
//! period then the stream is offline), an HTTP-FLV viewer and an RTMP player (others
//! untouched), and the audit log.

use crate::common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const ADMIN: &str = "Authorization: Bearer adm-s3cret-1";

fn admin_toml() -> &'static str {
    "[admin]\ntokens = [{ name = \"ops\", secret = \"adm-s3cret-1\" }]\n"
}

fn admin_json(
    server: &ServerProc,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let addr = server.admin.expect("admin listener");
    let (status, body) = http_request(
        addr,
        method,
        path,
        &[ADMIN, "Content-Type: application/json"],
        body.as_bytes(),
    );
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        })
    };
    (status, json)
}

#[test]
fn admin_api_needs_its_token_on_its_own_listener() {
    let server = ServerProc::start(&format!(
        "{}[metrics]\nlistener = \"admin\"\n",
        admin_toml()
    ));
    let admin = server
        .admin
        .expect("admin listener with a token configured");
    assert_ne!(admin, server.http);
    for (method, path) in [
        ("GET", "/api/admin/clients"),
        ("DELETE", "/api/admin/clients/1"),
        ("POST", "/api/admin/streams/live/t/kick"),
        ("GET", "/api/admin/bans"),
        ("POST", "/api/admin/reload"),
        ("GET", "/api/admin/openapi.json"),
        ("GET", "/metrics"),
    ] {
        let (status, _) = http_request(admin, method, path, &[], b"");
        assert_eq!(status, 401, "{method} {path} without a token");
        let (status, _) = http_request(admin, method, path, &["Authorization: Bearer nope"], b"");
        assert_eq!(status, 403, "{method} {path} with a wrong token");
    }
    let (status, clients) = admin_json(&server, "GET", "/api/admin/clients", "");
    assert_eq!(status, 200);
    assert!(
        clients.as_array().is_some_and(|a| a.is_empty()),
        "{clients}"
    );

    // Not on the public port, token or not.
    for path in [
        "/api/admin/clients",
        "/api/admin/openapi.json",
        "/api/admin/bans",
    ] {
        let (status, _) = http_request(server.http, "GET", path, &[ADMIN], b"");
        assert_eq!(status, 404, "public GET {path}");
    }
    // `[metrics] listener = "admin"`: only there, behind the token.
    assert_eq!(http_get(server.http, "/metrics").0, 404);
    let (status, text) = http_request(admin, "GET", "/metrics", &[ADMIN], b"");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&text).contains("onair_connections"));

    let (status, doc) = admin_json(&server, "GET", "/api/admin/openapi.json", "");
    assert_eq!(status, 200);
    assert!(
        doc["paths"]["/api/admin/clients"]["get"].is_object(),
        "{doc}"
    );

    // Without a token the admin API is off: no listener, and /metrics stays public.
    let plain = ServerProc::start("");
    assert!(plain.admin.is_none(), "admin listener without a token");
    assert_eq!(http_get(plain.http, "/metrics").0, 200);
}

#[test]
fn kick_a_publisher_and_a_viewer() {
    let grace = Duration::from_millis(2000);
    let server = ServerProc::start_logged(
        &format!(
            "{}[hub]\npublisher_grace_ms = {}\n[auth.publish_keys]\nlive = [{{ name = \"studio-obs\", secret = \"pk-9931\" }}]\n",
            admin_toml(),
            grace.as_millis()
        ),
        "info",
    );
    let dir = TempDir::new("onair-kick");
    let ffmpeg_log = dir.path.join("ffmpeg.log");
    let mut ffmpeg = TestPush::small()
        .size("320x240")
        .stderr(Stdio::from(
            std::fs::File::create(&ffmpeg_log).expect("ffmpeg log"),
        ))
        .start(&server.rtmp_url("live/t?key=pk-9931"));
    server.wait_live("live", "t");
    let kicked_viewer = Watcher::start(&server, "/live/t.flv");
    wait_until("first viewer listed", Duration::from_secs(10), || {
        let (_, c) = admin_json(&server, "GET", "/api/admin/clients", "");
        c.as_array()
            .is_some_and(|a| a.iter().any(|c| c["role"] == "viewer"))
    });
    let kept = Watcher::start(&server, "/live/t.flv");

    // The list: the publisher with its key's name, both viewers, never a secret.
    let mut clients = serde_json::Value::Null;
    wait_until(
        "publisher and two viewers listed",
        Duration::from_secs(10),
        || {
            clients = admin_json(&server, "GET", "/api/admin/clients", "").1;
            let a = clients.as_array().cloned().unwrap_or_default();
            a.iter()
                .filter(|c| c["role"] == "viewer" && c["bytes"].as_u64() > Some(0))
                .count()
                == 2
                && a.iter()
                    .any(|c| c["role"] == "publisher" && c["bytes"].as_u64() > Some(0))
        },
    );
    let text = clients.to_string();
    assert!(
        !text.contains("pk-9931"),
        "a secret in the client list: {text}"
    );
    let list = clients.as_array().unwrap();
    let publisher = list.iter().find(|c| c["role"] == "publisher").unwrap();
    assert_eq!(publisher["credential"], "studio-obs", "{publisher}");
    assert_eq!(publisher["protocol"], "rtmp");
    assert_eq!(publisher["stream"], "live/t");
    assert!(publisher["address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(publisher["duration_s"].as_f64().unwrap() > 0.0);
    let viewers: Vec<u64> = list
        .iter()
        .filter(|c| c["role"] == "viewer")
        .map(|c| {
            assert_eq!(c["protocol"], "flv");
            c["id"].as_u64().unwrap()
        })
        .collect();

    assert_eq!(
        admin_json(&server, "DELETE", "/api/admin/clients/999999", "").0,
        404
    );
    assert_eq!(
        admin_json(&server, "DELETE", "/api/admin/clients/abc", "").0,
        400
    );
    assert_eq!(
        admin_json(&server, "POST", "/api/admin/streams/live/nothing/kick", "").0,
        404
    );

    // Kick one viewer (the first one, lower id): it is closed, the other keeps receiving.
    let (status, info) = admin_json(
        &server,
        "DELETE",
        &format!("/api/admin/clients/{}", viewers[0]),
        "",
    );
    assert_eq!(status, 200, "{info}");
    wait_until("kicked viewer closed", Duration::from_secs(3), || {
        kicked_viewer.cut.load(std::sync::atomic::Ordering::Relaxed)
    });
    kept.assert_flowing(
        kept.bytes.load(std::sync::atomic::Ordering::Relaxed),
        "kicking another viewer",
    );

    // An RTMP player kicked: told why, then closed; the FLV viewer is untouched.
    let mut player = common::raw_rtmp::RawRtmp::connect(server.rtmp);
    player.handshake();
    player.connect_app("live");
    player.play("t");
    assert!(player.wait_for("NetStream.Play.Start", Duration::from_secs(5)));
    let mut rtmp_viewer = None;
    wait_until("the RTMP player listed", Duration::from_secs(5), || {
        let (_, c) = admin_json(&server, "GET", "/api/admin/clients", "");
        rtmp_viewer = c.as_array().and_then(|a| {
            a.iter()
                .find(|c| c["role"] == "viewer" && c["protocol"] == "rtmp")
                .and_then(|c| c["id"].as_u64())
        });
        rtmp_viewer.is_some()
    });
    let path = format!("/api/admin/clients/{}", rtmp_viewer.unwrap());
    assert_eq!(admin_json(&server, "DELETE", &path, "").0, 200);
    player
        .read_until_closed(Duration::from_secs(3))
        .expect("kicked RTMP player closed");
    assert!(
        player.saw("kicked by the server operator"),
        "no status for the player"
    );
    kept.assert_flowing(
        kept.bytes.load(std::sync::atomic::Ordering::Relaxed),
        "kicking an RTMP player",
    );

    // Kick the stream: ffmpeg is told and cut (target 1 s, bound 3 s).
    let (status, body) = admin_json(&server, "POST", "/api/admin/streams/live/t/kick", "");
    assert_eq!(status, 200, "{body}");
    let kicked_at = Instant::now();
    assert_eq!(body["kicked"][0]["credential"], "studio-obs");
    wait_until("ffmpeg cut by the kick", Duration::from_secs(3), || {
        matches!(ffmpeg.0.try_wait(), Ok(Some(_)))
    });
    let cut_after = kicked_at.elapsed();
    let mut said = String::new();
    std::fs::File::open(&ffmpeg_log)
        .and_then(|mut f| f.read_to_string(&mut said))
        .expect("ffmpeg log");
    assert!(
        said.contains("kicked by the server operator"),
        "ffmpeg saw no status: {said}"
    );

    // Its viewer waits out the grace period (the publisher might return), then the stream
    // is offline: it leaves the public list and the viewer's body ends (it leaves the
    // client list; the connection itself may stay open for another request).
    wait_until(
        "stream offline and its viewer gone after the grace period",
        grace + Duration::from_secs(4),
        || {
            let (_, c) = admin_json(&server, "GET", "/api/admin/clients", "");
            server.stream("live", "t").is_none() && c.as_array().is_some_and(|a| a.is_empty())
        },
    );
    let offline_after = kicked_at.elapsed();
    assert!(
        offline_after >= grace.mul_f32(0.8),
        "viewer dropped {offline_after:?} after the kick, before the {grace:?} grace period"
    );
    println!(
        "kick: ffmpeg cut {cut_after:?} after the request; stream offline after {offline_after:?}"
    );

    let log = server.log();
    for action in ["list_clients", "kick_client", "kick_stream"] {
        assert!(
            log.lines().any(|l| l.contains("admin action")
                && l.contains("ops")
                && l.contains(action)
                && l.contains("resource")),
            "no audit line for {action}:\n{log}"
        );
    }
    assert!(
        !log.contains("adm-s3cret-1") && !log.contains("pk-9931"),
        "a secret in the log"
    );
}
