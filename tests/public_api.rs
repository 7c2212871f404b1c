//! The public API identifies no client: with a keyed publisher connected from loopback, no
//! field of `/api/streams` holds its address, its port or its key. `[api] public_list =
//! false` hides the list while a stream stays readable and playable by name, and
//! `private_apps` leaves apps out of the list.

use crate::common;

use std::time::Duration;

use common::viewers::SyntheticPublisher;
use common::*;

const SECRET: &str = "pub-s3cret-7781";

/// Local ports of this machine's TCP connections to `server_port` on loopback (the
/// publisher's side), read from /proc/net/tcp.
fn client_ports_to(server_port: u16) -> Vec<u16> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split_whitespace().skip(1);
            let local = cols.next()?;
            let remote = cols.next()?;
            let port = |a: &str| u16::from_str_radix(a.rsplit(':').next()?, 16).ok();
            (port(remote)? == server_port)
                .then(|| port(local))
                .flatten()
        })
        .collect()
}

/// Every key path and leaf of a JSON value, as (path, leaf).
fn leaves(v: &serde_json::Value, path: String, out: &mut Vec<(String, serde_json::Value)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                leaves(v, format!("{path}.{k}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                leaves(v, format!("{path}[{i}]"), out);
            }
        }
        leaf => out.push((path, leaf.clone())),
    }
}

fn assert_identifies_no_client(json: &serde_json::Value, ports: &[u16]) {
    let mut all = Vec::new();
    leaves(json, String::new(), &mut all);
    assert!(!all.is_empty(), "nothing listed: {json}");
    for (path, leaf) in &all {
        let lower = path.to_ascii_lowercase();
        for word in ["addr", "ip", "port", "peer", "key", "token", "secret"] {
            assert!(
                !lower.rsplit('.').next().unwrap_or("").contains(word),
                "field {path} names a client detail ({word}): {json}"
            );
        }
        match leaf {
            serde_json::Value::String(s) => {
                assert!(!s.contains(SECRET), "{path} holds the key: {s}");
                assert!(
                    s.parse::<std::net::IpAddr>().is_err()
                        && s.parse::<std::net::SocketAddr>().is_err()
                        && !s.contains("127.0.0.1"),
                    "{path} holds an address: {s}"
                );
                for p in ports {
                    let digits = p.to_string();
                    let has_port = s
                        .split(|c: char| !c.is_ascii_digit())
                        .any(|tok| tok == digits);
                    assert!(!has_port, "{path} holds the client port {p}: {s}");
                }
            }
            serde_json::Value::Number(n) => {
                for p in ports {
                    assert_ne!(
                        n.as_u64(),
                        Some(u64::from(*p)),
                        "{path} holds the client port {p}"
                    );
                }
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_list_shows_no_address_port_or_key() {
    let server = ServerProc::start(&format!(
        "[auth]\nrequire_publish_key = true\n[auth.publish_keys]\nlive = [\"{SECRET}\"]\n"
    ));
    let publisher =
        SyntheticPublisher::start(&server.rtmp_url(&format!("live/cam?key={SECRET}")), 10).await;
    let http = server.http;
    let rtmp_port = server.rtmp.port();
    let (list, one, ports) = tokio::task::spawn_blocking(move || {
        wait_until(
            "live/cam listed with video",
            Duration::from_secs(15),
            || {
                let (status, body) = http_get(http, "/api/streams");
                status == 200 && String::from_utf8_lossy(&body).contains("\"width\"")
            },
        );
        let (_, list) = http_get(http, "/api/streams");
        let (status, one) = http_get(http, "/api/streams/live/cam");
        assert_eq!(status, 200, "one stream by name");
        (list, one, client_ports_to(rtmp_port))
    })
    .await
    .unwrap();
    assert!(!ports.is_empty(), "the publisher's connection is visible");
    for raw in [&list, &one] {
        let text = String::from_utf8_lossy(raw);
        assert!(!text.contains(SECRET), "key leaked: {text}");
        assert!(!text.contains("127.0.0.1"), "address leaked: {text}");
        let json: serde_json::Value = serde_json::from_slice(raw).expect("json");
        assert_identifies_no_client(&json, &ports);
    }
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(list[0]["name"], "cam");
    assert_eq!(list[0]["live"], true);
    assert_eq!(list[0]["publishes"], 1);
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_list_is_404_while_streams_stay_readable_by_name() {
    let server = ServerProc::start("[api]\npublic_list = false\n");
    let publisher = SyntheticPublisher::start(&server.rtmp_url("live/quiet"), 10).await;
    let http = server.http;
    tokio::task::spawn_blocking(move || {
        let (status, body) = http_get(http, "/api/streams");
        assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
        wait_until(
            "live/quiet readable by name",
            Duration::from_secs(15),
            || http_get(http, "/api/streams/live/quiet").0 == 200,
        );
        assert_eq!(http_get(http, "/api/streams/live/other").0, 404);
        // The stream itself still plays by its URL.
        let flv = streams(&format!("http://{http}/live/quiet.flv"));
        assert!(flv.iter().any(|s| s["codec_name"] == "h264"), "{flv:?}");
    })
    .await
    .unwrap();
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_apps_are_left_out_of_the_list() {
    let server = ServerProc::start("[api]\nprivate_apps = [\"backstage\"]\n");
    let open = SyntheticPublisher::start(&server.rtmp_url("live/open"), 10).await;
    let hidden = SyntheticPublisher::start(&server.rtmp_url("backstage/hidden"), 10).await;
    let http = server.http;
    tokio::task::spawn_blocking(move || {
        wait_until(
            "backstage/hidden readable by name",
            Duration::from_secs(15),
            || http_get(http, "/api/streams/backstage/hidden").0 == 200,
        );
        let (status, body) = http_get(http, "/api/streams");
        assert_eq!(status, 200);
        let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let names: Vec<_> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{}/{}",
                    s["app"].as_str().unwrap(),
                    s["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(names, vec!["live/open".to_string()]);
    })
    .await
    .unwrap();
    open.stop().await;
    hidden.stop().await;
}
