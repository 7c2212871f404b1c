//! Blocking playlist reload (draft-pantos-hls-rfc8216bis 6.2.5.2): parse `_HLS_msn`,
//! `_HLS_part` and `_HLS_skip`, and decide from the segmenter's state whether to answer
//! now, hold the request until a part exists, or refuse it at once (400 for what can
//! never be asked, 404 for what will never come). Pure: the caller holds, bounded.

use std::time::Duration;

/// `_HLS_skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Skip {
    #[default]
    No,
    /// `YES`: skip old segments.
    Yes,
    /// `v2`: also skip old date ranges (onair has none, so the same as `Yes`).
    V2,
}

/// The LL-HLS part of a playlist request's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LlQuery {
    pub msn: Option<u64>,
    pub part: Option<u64>,
    pub skip: Skip,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("{name}={value:?} is not a non-negative decimal integer")]
    NotANumber { name: &'static str, value: String },
    #[error("{0} given more than once")]
    Repeated(&'static str),
    #[error("_HLS_part without _HLS_msn")]
    PartWithoutMsn,
    #[error("_HLS_skip={0:?} is neither YES nor v2")]
    BadSkip(String),
}

/// Longest value kept in an error message, so a huge query is not echoed whole.
const MAX_ECHO: usize = 32;

fn echo(v: &str) -> String {
    v.chars().take(MAX_ECHO).collect()
}

fn number(name: &'static str, v: &str) -> Result<u64, QueryError> {
    // Digits only: u64::from_str would take "+5"; "-1", "", "1e3" and overflow are errors.
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QueryError::NotANumber {
            name,
            value: echo(v),
        });
    }
    v.parse().map_err(|_| QueryError::NotANumber {
        name,
        value: echo(v),
    })
}

fn set_once(slot: &mut Option<u64>, name: &'static str, v: u64) -> Result<(), QueryError> {
    match slot.replace(v) {
        Some(_) => Err(QueryError::Repeated(name)),
        None => Ok(()),
    }
}

impl LlQuery {
    /// Parses a raw query string (without the `?`); other parameters are ignored.
    pub fn parse(raw: Option<&str>) -> Result<Self, QueryError> {
        let mut q = LlQuery::default();
        let mut seen_skip = false;
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "_HLS_msn" => set_once(&mut q.msn, "_HLS_msn", number("_HLS_msn", value)?)?,
                "_HLS_part" => set_once(&mut q.part, "_HLS_part", number("_HLS_part", value)?)?,
                "_HLS_skip" => {
                    if std::mem::replace(&mut seen_skip, true) {
                        return Err(QueryError::Repeated("_HLS_skip"));
                    }
                    q.skip = match value {
                        "YES" => Skip::Yes,
                        "v2" => Skip::V2,
                        other => return Err(QueryError::BadSkip(echo(other))),
                    };
                }
                _ => {}
            }
        }
        if q.part.is_some() && q.msn.is_none() {
            return Err(QueryError::PartWithoutMsn);
        }
        Ok(q)
    }

    pub fn wants_skip(&self) -> bool {
        self.skip != Skip::No
    }
}

/// What the segmenter has, as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadState {
    /// False once the publisher is gone or the stream went stale: nothing new will come.
    pub live: bool,
    /// The segment being built; every msn below it is complete.
    pub next_msn: u64,
    /// Complete parts of segment `next_msn`.
    pub next_parts: u64,
    /// Parts of segment `next_msn - 1` (0 when there is none).
    pub last_segment_parts: u64,
    /// Parts a segment usually has (segment target / part target, at least 1), to tell
    /// how far ahead a part of the segment after next is.
    pub parts_per_segment: u64,
    pub part_target: Duration,
}

impl ReloadState {
    /// The draft's Advance Part Limit: three parts, or 3 s of parts when parts are
    /// shorter than a second.
    pub fn advance_part_limit(&self) -> u64 {
        let ms = self.part_target.as_millis().max(1) as u64;
        if ms < 1000 {
            3000u64.div_ceil(ms)
        } else {
            3
        }
    }

    /// Whether the playlist already holds segment `msn` (with `part`: that part or a later one).
    pub fn has(&self, msn: u64, part: Option<u64>) -> bool {
        match part {
            None => msn < self.next_msn,
            Some(p) => {
                if msn.saturating_add(1) < self.next_msn {
                    // Segment msn and the next are complete: part p, or the next segment's
                    // part 0 when p is past msn's last part, exists.
                    true
                } else if msn.saturating_add(1) == self.next_msn {
                    // A part index past a segment's last part means part 0 of the next.
                    p < self.last_segment_parts || self.next_parts > 0
                } else if msn == self.next_msn {
                    p < self.next_parts
                } else {
                    false
                }
            }
        }
    }

    fn has_content(&self) -> bool {
        self.next_msn > 0 || self.next_parts > 0
    }
}

/// Why a request is refused with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("_HLS_msn={msn} is past the last segment plus two (at most {limit})")]
    MsnTooFar { msn: u64, limit: u64 },
    #[error("_HLS_part={part} of segment {msn} is more than {limit} parts ahead")]
    PartTooFar { msn: u64, part: u64, limit: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Render the playlist now.
    Now,
    /// Hold the request until `ReloadState::has(msn, part)` (then render), within the
    /// caller's bounds (a held-request limit and a timeout of a few target durations).
    Hold { msn: u64, part: Option<u64> },
    /// 400 at once: the request is malformed or asks for what cannot be asked.
    BadRequest(Refusal),
    /// 404 at once: what it waits for will never come (the stream ended or went stale).
    NotFound,
}

/// The answer to a playlist request, given its parsed query (or the parse error).
pub fn decide(query: &Result<LlQuery, QueryError>, s: &ReloadState) -> Decision {
    let q = match query {
        Ok(q) => q,
        Err(e) => return Decision::BadRequest(Refusal::Query(e.clone())),
    };
    let Some(msn) = q.msn else {
        // A plain (or delta) reload: answer as soon as there is anything to list.
        return if s.has_content() {
            Decision::Now
        } else if s.live {
            Decision::Hold {
                msn: 0,
                part: Some(0),
            }
        } else {
            Decision::NotFound
        };
    };
    // "greater than the Media Sequence Number of the last Media Segment in the current
    // Playlist plus two": the last complete segment is next_msn - 1.
    let limit = s.next_msn.saturating_add(1);
    if msn > limit {
        return Decision::BadRequest(Refusal::MsnTooFar { msn, limit });
    }
    if let Some(part) = q.part {
        // Parts between the last complete one and the one asked for.
        let ahead = if msn == s.next_msn {
            part.saturating_add(1).saturating_sub(s.next_parts)
        } else if msn == limit {
            s.parts_per_segment
                .max(1)
                .saturating_sub(s.next_parts)
                .saturating_add(part)
                .saturating_add(1)
        } else {
            0
        };
        let max = s.advance_part_limit();
        if ahead > max {
            return Decision::BadRequest(Refusal::PartTooFar {
                msn,
                part,
                limit: max,
            });
        }
    }
    if s.has(msn, q.part) {
        Decision::Now
    } else if s.live {
        Decision::Hold { msn, part: q.part }
    } else {
        Decision::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(raw: &str) -> Result<LlQuery, QueryError> {
        LlQuery::parse(Some(raw))
    }

    /// Segments 0..=9 complete (5 parts each), segment 10 has 2 parts; 200 ms parts.
    fn state() -> ReloadState {
        ReloadState {
            live: true,
            next_msn: 10,
            next_parts: 2,
            last_segment_parts: 5,
            parts_per_segment: 5,
            part_target: Duration::from_millis(200),
        }
    }

    #[test]
    fn parses_queries() {
        assert_eq!(LlQuery::parse(None), Ok(LlQuery::default()));
        assert_eq!(
            q("_HLS_msn=10&_HLS_part=3&_HLS_skip=YES"),
            Ok(LlQuery {
                msn: Some(10),
                part: Some(3),
                skip: Skip::Yes
            })
        );
        assert_eq!(
            q("token=abc&_HLS_skip=v2&variant=ts"),
            Ok(LlQuery {
                msn: None,
                part: None,
                skip: Skip::V2
            })
        );
        assert!(q("_HLS_skip=v2").unwrap().wants_skip());
        assert_eq!(q("_HLS_msn=0").unwrap().msn, Some(0));
        assert_eq!(q("&&_HLS_msn=7&").unwrap().msn, Some(7));
    }

    #[test]
    fn garbage_and_negative_values_are_errors() {
        for bad in [
            "_HLS_msn=-1",
            "_HLS_msn=+5",
            "_HLS_msn=",
            "_HLS_msn",
            "_HLS_msn=abc",
            "_HLS_msn=1e3",
            "_HLS_msn=0x10",
            "_HLS_msn=%31",
            "_HLS_msn= 1",
            "_HLS_msn=18446744073709551616",
            "_HLS_msn=1&_HLS_part=-2",
            "_HLS_msn=1&_HLS_part=1.5",
        ] {
            assert!(
                matches!(q(bad), Err(QueryError::NotANumber { .. })),
                "{bad}: {:?}",
                q(bad)
            );
        }
        assert_eq!(q("_HLS_part=1"), Err(QueryError::PartWithoutMsn));
        assert_eq!(
            q("_HLS_msn=1&_HLS_msn=2"),
            Err(QueryError::Repeated("_HLS_msn"))
        );
        assert_eq!(
            q("_HLS_msn=1&_HLS_part=0&_HLS_part=0"),
            Err(QueryError::Repeated("_HLS_part"))
        );
        assert_eq!(
            q("_HLS_skip=YES&_HLS_skip=YES"),
            Err(QueryError::Repeated("_HLS_skip"))
        );
        assert_eq!(q("_HLS_skip=yes"), Err(QueryError::BadSkip("yes".into())));
        // A huge value is not echoed whole.
        let long = format!("_HLS_msn={}", "9x".repeat(5000));
        match q(&long) {
            Err(QueryError::NotANumber { value, .. }) => assert_eq!(value.len(), MAX_ECHO),
            other => panic!("{other:?}"),
        }
        // Every parse error is a 400, never a hold.
        assert_eq!(
            decide(&q("_HLS_msn=-1"), &state()),
            Decision::BadRequest(Refusal::Query(QueryError::NotANumber {
                name: "_HLS_msn",
                value: "-1".into()
            }))
        );
    }

    #[test]
    fn answers_now_what_exists() {
        let s = state();
        for raw in [
            "",
            "_HLS_skip=YES",
            "_HLS_msn=9",
            "_HLS_msn=0",
            "_HLS_msn=9&_HLS_part=4",
            "_HLS_msn=10&_HLS_part=1",
            // Past segment 9's last part: part 0 of segment 10, which exists.
            "_HLS_msn=9&_HLS_part=5",
            "_HLS_msn=9&_HLS_part=1000",
            // Long gone from the window: later segments answer it.
            "_HLS_msn=2&_HLS_part=3",
        ] {
            assert_eq!(decide(&q(raw), &s), Decision::Now, "{raw}");
        }
    }

    #[test]
    fn holds_for_the_next_part_or_segment() {
        let s = state();
        assert_eq!(
            decide(&q("_HLS_msn=10&_HLS_part=2"), &s),
            Decision::Hold {
                msn: 10,
                part: Some(2)
            }
        );
        assert_eq!(
            decide(&q("_HLS_msn=10"), &s),
            Decision::Hold {
                msn: 10,
                part: None
            }
        );
        // Last complete + 2 is the furthest one may wait for.
        assert_eq!(
            decide(&q("_HLS_msn=11"), &s),
            Decision::Hold {
                msn: 11,
                part: None
            }
        );
        assert_eq!(
            decide(&q("_HLS_msn=11&_HLS_part=0"), &s),
            Decision::Hold {
                msn: 11,
                part: Some(0)
            }
        );
        // The first segment's parts: nothing yet.
        let empty = ReloadState {
            next_msn: 0,
            next_parts: 0,
            last_segment_parts: 0,
            ..s
        };
        assert_eq!(
            decide(&q(""), &empty),
            Decision::Hold {
                msn: 0,
                part: Some(0)
            }
        );
        assert_eq!(
            decide(&q("_HLS_msn=0&_HLS_part=0"), &empty),
            Decision::Hold {
                msn: 0,
                part: Some(0)
            }
        );
        // Segment 10 with no part yet: part 5 of segment 9 is part 0 of 10, not there.
        let fresh = ReloadState { next_parts: 0, ..s };
        assert_eq!(
            decide(&q("_HLS_msn=9&_HLS_part=5"), &fresh),
            Decision::Hold {
                msn: 9,
                part: Some(5)
            }
        );
        // A hold ends when the part comes.
        let later = ReloadState { next_parts: 3, ..s };
        assert!(later.has(10, Some(2)));
        assert_eq!(decide(&q("_HLS_msn=10&_HLS_part=2"), &later), Decision::Now);
    }

    #[test]
    fn refuses_the_far_future_at_once() {
        let s = state();
        assert_eq!(
            decide(&q("_HLS_msn=12"), &s),
            Decision::BadRequest(Refusal::MsnTooFar { msn: 12, limit: 11 })
        );
        assert_eq!(
            decide(&q(&format!("_HLS_msn={}", u64::MAX)), &s),
            Decision::BadRequest(Refusal::MsnTooFar {
                msn: u64::MAX,
                limit: 11
            })
        );
        // 200 ms parts: the Advance Part Limit is 15 parts (3 s).
        assert_eq!(s.advance_part_limit(), 15);
        // Segment 10 has parts 0 and 1: part 16 is 15 ahead (allowed), 17 is not.
        assert!(matches!(
            decide(&q("_HLS_msn=10&_HLS_part=16"), &s),
            Decision::Hold { .. }
        ));
        assert_eq!(
            decide(&q("_HLS_msn=10&_HLS_part=17"), &s),
            Decision::BadRequest(Refusal::PartTooFar {
                msn: 10,
                part: 17,
                limit: 15
            })
        );
        // Segment 11: 3 parts left of segment 10, then parts 0..=p of 11.
        assert!(matches!(
            decide(&q("_HLS_msn=11&_HLS_part=11"), &s),
            Decision::Hold { .. }
        ));
        assert!(matches!(
            decide(&q("_HLS_msn=11&_HLS_part=12"), &s),
            Decision::BadRequest(Refusal::PartTooFar { .. })
        ));
        assert!(matches!(
            decide(&q(&format!("_HLS_msn=10&_HLS_part={}", u64::MAX)), &s),
            Decision::BadRequest(Refusal::PartTooFar { .. })
        ));
        // Parts of a second or more: the limit is three parts.
        let long_parts = ReloadState {
            part_target: Duration::from_secs(1),
            ..s
        };
        assert_eq!(long_parts.advance_part_limit(), 3);
    }

    #[test]
    fn a_stream_that_ended_answers_404_for_what_will_never_come() {
        let gone = ReloadState {
            live: false,
            ..state()
        };
        assert_eq!(
            decide(&q("_HLS_msn=10&_HLS_part=2"), &gone),
            Decision::NotFound
        );
        assert_eq!(decide(&q("_HLS_msn=11"), &gone), Decision::NotFound);
        // What exists is still served; the far future is still a 400.
        assert_eq!(decide(&q("_HLS_msn=10&_HLS_part=1"), &gone), Decision::Now);
        assert_eq!(decide(&q(""), &gone), Decision::Now);
        assert!(matches!(
            decide(&q("_HLS_msn=99"), &gone),
            Decision::BadRequest(Refusal::MsnTooFar { .. })
        ));
        let never_started = ReloadState {
            live: false,
            next_msn: 0,
            next_parts: 0,
            last_segment_parts: 0,
            ..state()
        };
        assert_eq!(decide(&q(""), &never_started), Decision::NotFound);
    }
}
