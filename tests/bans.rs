//! Bans at accept, with several loopback addresses as distinct clients: after N wrong
//! publish keys an address is refused on the RTMP and HTTP ports for the ban's duration and
//! then accepted again, logged once and counted in /metrics; operator bans (an address or a
//! CIDR range) through the admin API; config bans lifted by a reload. Other addresses are
//! served throughout.

use crate::common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::raw_rtmp::RawRtmp;
use common::*;

const ADMIN: &str = "Authorization: Bearer adm-bans";
const BAN_MS: u64 = 3000;

fn config(banned: &str) -> String {
    format!(
        "[admin]\ntokens = [\"adm-bans\"]\n\
         [auth]\nban_after_failures = 3\nban_window_ms = 30000\nban_duration_ms = {BAN_MS}\n\
         banned = [{banned}]\n\
         [auth.publish_keys]\nlive = [\"right-key\"]\n"
    )
}

/// True when a connection from `local` to `addr` is closed before the server says anything
/// (refused at accept); false when the server answers.
fn refused_at_accept(local: &str, addr: std::net::SocketAddr) -> bool {
    let Ok(mut s) = connect_from(local, addr) else {
        return true;
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // An RTMP C0+C1 or the start of an HTTP request: either port answers something.
    let mut hello = vec![3u8];
    hello.extend_from_slice(&[0u8; 1536]);
    if s.write_all(&hello).is_err() {
        return true;
    }
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// `GET /api/streams` from `local` answers 200.
fn served(local: &str, server: &ServerProc) -> bool {
    connect_from(local, server.http)
        .and_then(|mut s| http_exchange(&mut s, "GET", "/api/streams", &[], b""))
        .is_ok_and(|(status, _)| status == 200)
}

/// A publish with a wrong key from `local`, refused with its status.
fn wrong_key_from(local: &str, server: &ServerProc) {
    let mut c = RawRtmp::over(connect_from(local, server.rtmp).expect("connect"));
    c.handshake();
    c.connect_app("live");
    c.publish("t?key=guess");
    c.read_until_closed(Duration::from_secs(5))
        .expect("closed after a wrong key");
    assert!(c.saw("NetStream.Publish.Unauthorized"), "no refusal status");
}

#[test]
fn wrong_keys_ban_an_address_at_accept_for_the_duration() {
    let server = ServerProc::start_logged(&config(""), "info");
    // Two wrong keys from 127.0.0.3 stay under the limit of three.
    wrong_key_from("127.0.0.3", &server);
    wrong_key_from("127.0.0.3", &server);
    for _ in 0..3 {
        assert!(served("127.0.0.2", &server), "127.0.0.2 before its ban");
        wrong_key_from("127.0.0.2", &server);
    }
    let banned_at = Instant::now();
    for _ in 0..3 {
        assert!(
            refused_at_accept("127.0.0.2", server.rtmp),
            "RTMP from 127.0.0.2 while banned"
        );
        assert!(
            refused_at_accept("127.0.0.2", server.http),
            "HTTP from 127.0.0.2 while banned"
        );
    }
    assert!(served("127.0.0.3", &server), "127.0.0.3 is not banned");
    assert!(
        !refused_at_accept("127.0.0.3", server.rtmp),
        "RTMP from 127.0.0.3"
    );
    assert!(served("127.0.0.1", &server), "127.0.0.1 is not banned");

    assert_eq!(server.metric("onair_bans_total{source=\"auto\"}"), 1);
    assert!(server.metric("onair_refusals_total{reason=\"banned\"}") >= 6);
    let (status, bans) = http_request(
        server.admin.unwrap(),
        "GET",
        "/api/admin/bans",
        &[ADMIN],
        b"",
    );
    assert_eq!(status, 200);
    let bans: serde_json::Value = serde_json::from_slice(&bans).unwrap();
    assert_eq!(bans[0]["address"], "127.0.0.2/32", "{bans}");
    assert_eq!(bans[0]["source"], "auto");

    // Lifted after the duration (bound: 3x), with 127.0.0.3 served all along.
    wait_until(
        "127.0.0.2 accepted again",
        Duration::from_millis(3 * BAN_MS),
        || {
            assert!(served("127.0.0.3", &server));
            served("127.0.0.2", &server)
        },
    );
    let lifted_after = banned_at.elapsed();
    assert!(
        lifted_after >= Duration::from_millis(BAN_MS * 8 / 10),
        "lifted after {lifted_after:?}, before its {BAN_MS} ms"
    );
    assert!(!refused_at_accept("127.0.0.2", server.rtmp));
    let log = server.log();
    let lines = log.lines().filter(|l| l.contains("address banned")).count();
    assert_eq!(
        lines, 1,
        "the ban is logged once, not per refused attempt:\n{log}"
    );
    println!("ban lifted {lifted_after:?} after it started ({BAN_MS} ms)");
}

#[test]
fn operator_and_config_bans() {
    let server = ServerProc::start(&config("\"127.0.0.6\""));
    let admin = server.admin.unwrap();
    let json = [ADMIN, "Content-Type: application/json"];
    assert!(refused_at_accept("127.0.0.6", server.http), "config ban");

    let (status, body) = http_request(
        admin,
        "POST",
        "/api/admin/bans",
        &json,
        br#"{"address": "127.0.0.4/31", "duration_ms": 60000, "reason": "test"}"#,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    for ip in ["127.0.0.4", "127.0.0.5"] {
        assert!(
            refused_at_accept(ip, server.http),
            "{ip} in the banned range"
        );
        assert!(
            refused_at_accept(ip, server.rtmp),
            "{ip} in the banned range"
        );
    }
    assert!(served("127.0.0.3", &server));
    assert!(served("127.0.0.2", &server));

    for bad in [
        &br#"{"address": "nope", "duration_ms": 1000}"#[..],
        br#"{"address": "127.0.0.9", "duration_ms": 0}"#,
        br#"{"address": "127.0.0.9", "duration_ms": 18446744073709551615}"#,
    ] {
        let (status, _) = http_request(admin, "POST", "/api/admin/bans", &json, bad);
        assert_eq!(status, 422, "{}", String::from_utf8_lossy(bad));
    }
    let (status, _) = http_request(admin, "POST", "/api/admin/bans", &json, b"{not json");
    assert_eq!(status, 400);

    let (status, _) = http_request(
        admin,
        "DELETE",
        "/api/admin/bans/127.0.0.4%2F31",
        &[ADMIN],
        b"",
    );
    assert_eq!(status, 204);
    assert!(served("127.0.0.5", &server), "range lifted");
    let (status, _) = http_request(
        admin,
        "DELETE",
        "/api/admin/bans/127.0.0.4%2F31",
        &[ADMIN],
        b"",
    );
    assert_eq!(status, 404);
    let (status, _) = http_request(admin, "DELETE", "/api/admin/bans/127.0.0.6", &[ADMIN], b"");
    assert_eq!(status, 409, "a config ban is lifted in the file");

    // Taken out of the file and reloaded: lifted.
    std::fs::write(server.config_path(), config("")).unwrap();
    let (status, body) = http_request(admin, "POST", "/api/admin/reload", &[ADMIN], b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(served("127.0.0.6", &server), "config ban lifted by reload");
}
