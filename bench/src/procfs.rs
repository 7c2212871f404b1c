//! Reading the server's (and our own) CPU time, resident memory and fd limit from /proc.
//! Parsers take the file text and are tested on their own; readers add the file access.

use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

/// CPU time of one process from the text of /proc/PID/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatCpu {
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
}

/// Parses /proc/PID/stat. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last ')'.
pub fn parse_stat(text: &str) -> Option<StatCpu> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // Fields after the name start at field 3 (state): ppid is field 4, utime 14, stime 15.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(StatCpu {
        ppid: u32::try_from(field(4)?).ok()?,
        ticks: field(14)?.checked_add(field(15)?)?,
    })
}

/// A `Key:   1234 kB` line of /proc/PID/status, in KiB.
pub fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_ascii_whitespace().next()?.parse().ok()
    })
}

/// The soft "Max open files" limit from /proc/self/limits (None for unlimited or unknown).
pub fn parse_nofile_soft(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn stat(pid: u32) -> Result<StatCpu> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    parse_stat(&text).with_context(|| format!("cannot parse /proc/{pid}/stat"))
}

pub fn self_ticks() -> Result<u64> {
    let text = fs::read_to_string("/proc/self/stat")?;
    Ok(parse_stat(&text)
        .context("cannot parse /proc/self/stat")?
        .ticks)
}

/// Summed utime + stime of `pids`, in clock ticks.
pub fn cpu_ticks(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|&p| stat(p).map(|s| s.ticks)).sum()
}

/// Summed utime + stime of the threads of `pids` whose /proc/PID/task/TID/comm is exactly
/// `name` (a server's named worker threads), in clock ticks, and how many there were.
/// Threads that ended are not counted; vanished pids count as 0.
pub fn thread_ticks(pids: &[u32], name: &str) -> (u64, usize) {
    let mut ticks = 0;
    let mut threads = 0;
    for pid in pids {
        let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in dir.filter_map(|e| e.ok()) {
            let path = task.path();
            let named = fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim_end() == name);
            if !named {
                continue;
            }
            if let Some(s) = fs::read_to_string(path.join("stat"))
                .ok()
                .and_then(|t| parse_stat(&t))
            {
                ticks += s.ticks;
                threads += 1;
            }
        }
    }
    (ticks, threads)
}

/// Memory of `pids`: summed VmRSS and the largest VmHWM, in KiB. Vanished pids count as 0.
pub fn memory_kib(pids: &[u32]) -> (u64, u64) {
    let mut rss = 0;
    let mut hwm = 0;
    for pid in pids {
        if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/status")) {
            rss += parse_status_kib(&text, "VmRSS").unwrap_or(0);
            hwm = hwm.max(parse_status_kib(&text, "VmHWM").unwrap_or(0));
        }
    }
    (rss, hwm)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux when that fails).
pub fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

pub fn nofile_soft_limit() -> Option<u64> {
    parse_nofile_soft(&fs::read_to_string("/proc/self/limits").ok()?)
}

fn all_pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Processes whose /proc/PID/comm is exactly `name`.
pub fn pids_by_name(name: &str) -> Vec<u32> {
    let mut pids: Vec<u32> = all_pids()
        .into_iter()
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// `pids` plus their children (an nginx master brings its workers), sorted and deduplicated.
pub fn with_children(pids: &[u32]) -> Vec<u32> {
    let mut set: BTreeSet<u32> = pids.iter().copied().collect();
    for p in all_pids() {
        if let Ok(s) = stat(p) {
            if pids.contains(&s.ppid) {
                set.insert(p);
            }
        }
    }
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm() {
        let text = "8629 (a) b (c) R 8566 8566 4932 0 -1 4194304 99 0 0 0 \
                    250 37 0 0 20 0 1 0 46845 3133440 365 18446744073709551615 0";
        assert_eq!(
            parse_stat(text),
            Some(StatCpu {
                ppid: 8566,
                ticks: 287
            })
        );
        assert_eq!(parse_stat("12 (x) R 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn stat_of_self() {
        assert!(self_ticks().is_ok());
        assert!(stat(std::process::id()).unwrap().ppid > 0);
    }

    #[test]
    fn threads_by_name() {
        let me = std::process::id();
        let comm = fs::read_to_string("/proc/self/comm").unwrap();
        let (_, main) = thread_ticks(&[me], comm.trim_end());
        assert!(main >= 1, "the main thread carries the process name");
        assert_eq!(thread_ticks(&[me], "no-such-thread"), (0, 0));
        assert_eq!(thread_ticks(&[u32::MAX], "x"), (0, 0));
    }

    #[test]
    fn status_fields() {
        let text = "Name:\tnginx\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nVmRSSx:\t1 kB\n";
        assert_eq!(parse_status_kib(text, "VmRSS"), Some(10240));
        assert_eq!(parse_status_kib(text, "VmHWM"), Some(20480));
        assert_eq!(parse_status_kib(text, "VmSwap"), None);
    }

    #[test]
    fn nofile_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_nofile_soft(text), Some(1024));
        assert_eq!(
            parse_nofile_soft("Max open files            unlimited            unlimited"),
            None
        );
    }
}
