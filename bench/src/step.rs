//! The stepping search of the K-core mode: the largest viewer count whose run met the latency
//! bound, found by doubling from a start until a run fails, then bisecting. Sans-IO: it
//! proposes counts and is told how each run went; the runs are the caller's.

/// Doubling, then bisection, to a resolution.
#[derive(Debug, Clone)]
pub struct MaxSearch {
    start: u32,
    limit: u32,
    /// Stop when the gap between the best pass and the lowest fail is at most this fraction
    /// of the pass (and at least 1 viewer).
    resolution: f64,
    /// Every run so far: (viewers, passed).
    runs: Vec<(u32, bool)>,
}

impl MaxSearch {
    /// Starts at `start` viewers and never proposes more than `limit`.
    pub fn new(start: u32, limit: u32, resolution: f64) -> Self {
        let limit = limit.max(1);
        Self {
            start: start.clamp(1, limit),
            limit,
            resolution: resolution.max(0.0),
            runs: Vec::new(),
        }
    }

    /// The lowest count that failed.
    fn failed(&self) -> Option<u32> {
        self.runs.iter().filter(|r| !r.1).map(|r| r.0).min()
    }

    /// The next viewer count to run, or None when the search is done.
    pub fn next(&self) -> Option<u32> {
        match (self.best(), self.failed()) {
            (None, None) => Some(self.start),
            (Some(p), None) => (p < self.limit).then(|| p.saturating_mul(2).min(self.limit)),
            (None, Some(f)) => (f > 1).then_some(f / 2),
            (Some(p), Some(f)) => {
                let gap = f.saturating_sub(p);
                let enough = (p as f64 * self.resolution).max(1.0);
                (gap as f64 > enough).then_some(p + gap / 2)
            }
        }
    }

    /// How the run at `viewers` went.
    pub fn record(&mut self, viewers: u32, passed: bool) {
        self.runs.push((viewers, passed));
    }

    /// The largest count that passed below every failed one (a noisy pass above a fail
    /// does not count), if any did.
    pub fn best(&self) -> Option<u32> {
        let failed = self.failed();
        self.runs
            .iter()
            .filter(|r| r.1 && failed.is_none_or(|f| r.0 < f))
            .map(|r| r.0)
            .max()
    }
}

/// The publish and play URLs of one step: the stream name (the publish URL's last path
/// segment) gets `-KEY`, in the publish URL and where the play URL names it last (an RTMP
/// URL or an HTTP-FLV path like `/live/NAME.flv`).
pub fn step_urls(publish: &str, play: &str, key: &str) -> anyhow::Result<(String, String)> {
    let cut = publish.split('?').next().unwrap_or(publish);
    let name = cut
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| anyhow::anyhow!("no stream name in {publish:?}"))?;
    let renamed = format!("{name}-{key}");
    let at = play.rfind(name).ok_or_else(|| {
        anyhow::anyhow!("the play URL {play:?} does not name the stream {name:?}")
    })?;
    let new_play = format!("{}{renamed}{}", &play[..at], &play[at + name.len()..]);
    let at = cut.len() - name.len();
    let new_publish = format!("{}{renamed}{}", &publish[..at], &publish[cut.len()..]);
    Ok((new_publish, new_play))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_gets_a_stream_of_its_own() {
        let p = "rtmp://127.0.0.1:1935/live/bench";
        assert_eq!(
            step_urls(p, p, "s2").unwrap(),
            (
                "rtmp://127.0.0.1:1935/live/bench-s2".to_string(),
                "rtmp://127.0.0.1:1935/live/bench-s2".to_string()
            )
        );
        let (_, flv) = step_urls(p, "http://127.0.0.1:8080/live/bench.flv", "s1").unwrap();
        assert_eq!(flv, "http://127.0.0.1:8080/live/bench-s1.flv");
        let (publish, _) = step_urls("rtmp://h/live/x?token=1", "rtmp://h/live/x", "s3").unwrap();
        assert_eq!(publish, "rtmp://h/live/x-s3?token=1");
        assert!(step_urls("rtmp://h/live/", "rtmp://h/live/", "s1").is_err());
        assert!(step_urls(p, "http://h/other.flv", "s1").is_err());
    }

    /// Runs the search against a machine that serves up to `capacity` viewers.
    fn search(capacity: u32, start: u32, limit: u32) -> (Option<u32>, Vec<u32>) {
        let mut s = MaxSearch::new(start, limit, 0.05);
        let mut tried = Vec::new();
        while let Some(n) = s.next() {
            assert!(tried.len() < 64, "no end: {tried:?}");
            tried.push(n);
            s.record(n, n <= capacity);
        }
        (s.best(), tried)
    }

    #[test]
    fn doubles_then_bisects_to_five_percent() {
        let (best, tried) = search(3000, 500, 20_000);
        assert_eq!(&tried[..4], &[500, 1000, 2000, 4000]);
        let best = best.unwrap();
        assert!((2850..=3000).contains(&best), "{best} after {tried:?}");
        assert!(tried.len() <= 10, "{tried:?}");
    }

    #[test]
    fn stops_at_the_limit_and_halves_below_the_start() {
        assert_eq!(
            search(50_000, 500, 8000),
            (Some(8000), vec![500, 1000, 2000, 4000, 8000])
        );
        let (best, tried) = search(100, 500, 8000);
        assert_eq!(&tried[..3], &[500, 250, 125]);
        assert!((95..=100).contains(&best.unwrap()), "{tried:?}");
        let (best, tried) = search(0, 4, 100);
        assert_eq!((best, tried), (None, vec![4, 2, 1]));
    }

    #[test]
    fn a_noisy_pass_above_a_fail_is_not_the_best() {
        let mut s = MaxSearch::new(100, 1000, 0.05);
        s.record(100, true);
        s.record(200, false);
        s.record(400, true);
        assert_eq!(s.best(), Some(100), "400 passed, but 200 failed below it");
        assert_eq!(s.next(), Some(150));
        s.record(150, true);
        assert_eq!(s.best(), Some(150));
    }
}
