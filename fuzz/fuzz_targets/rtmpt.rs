//! RTMPT requests as the HTTP listener parses them: any path through `parse_path` (what it
//! accepts must be a well-formed session id and number), and any run of request numbers
//! through one session's `Sequence` (what it accepts must count up by one from 0 or 1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use onair_server::rtmpt::protocol::{parse_path, Command, Sequence, MAX_ID_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = (split as usize).min(rest.len());
    let (path, numbers) = rest.split_at(split);
    if let Ok(path) = std::str::from_utf8(path) {
        if let Some(Ok(req)) = parse_path(path) {
            match (req.command, req.session) {
                (Command::Ident | Command::Open, None) => {}
                (Command::Send | Command::Idle | Command::Close, Some((id, n))) => {
                    assert!(!id.is_empty() && id.len() <= MAX_ID_LEN);
                    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
                    assert!(path.starts_with(&format!("/{}/{id}/", req.command.name())));
                    assert!(path.ends_with(&n.to_string()));
                }
                other => panic!("command and session disagree: {other:?}"),
            }
        }
    }
    let mut seq = Sequence::default();
    let mut last: Option<u64> = None;
    for &b in numbers {
        // Numbers near the last accepted one, so runs of accepts happen.
        let n = match last {
            Some(l) => l.saturating_add(b as u64 % 4).saturating_sub(1),
            None => b as u64 % 3,
        };
        if seq.accept(n).is_ok() {
            match last {
                None => assert!(n <= 1, "first number {n} accepted"),
                Some(l) => assert_eq!(n, l + 1),
            }
            last = Some(n);
        }
    }
});
