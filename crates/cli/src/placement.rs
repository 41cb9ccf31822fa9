//! CPU placement of a node process and of `bench cluster` (`cpus` in the cluster file,
//! `--cpus`): CPU lists, and pinning the whole process before it starts its runtime, so every
//! thread it starts later (tokio runtime, journal WAL writer, blocking pool) and every child
//! process inherits the same CPU set. The pinning itself is [`crate::affinity`].
//!
//! Why (docs/operations.md, "CPU placement"): on a small VM an idle vCPU is halted, and waking
//! a thread whose vCPU is halted costs tens of microseconds; a replicated order is a chain of
//! such wake-ups across three processes, so where the threads run decides much of its latency.

use anyhow::Context;

/// Parse a CPU list: `1`, `0,1`, `0-3`, `0-1,3`. Empty (or `none`) means no placement.
pub fn parse_cpus(s: &str) -> anyhow::Result<Vec<usize>> {
    let s = s.trim();
    if s.is_empty() || s == "none" {
        return Ok(Vec::new());
    }
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: usize = a
            .parse()
            .with_context(|| format!("CPU list {s:?}: {part:?} is not a CPU number or range"))?;
        let b: usize = b
            .parse()
            .with_context(|| format!("CPU list {s:?}: {part:?} is not a CPU number or range"))?;
        anyhow::ensure!(a <= b, "CPU list {s:?}: range {part:?} runs backwards");
        anyhow::ensure!(
            b < libc::CPU_SETSIZE as usize,
            "CPU list {s:?}: CPU {b} is out of range"
        );
        cpus.extend(a..=b);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// CPUs online on this machine (not this process's placement).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    n.max(1) as usize
}

/// `0-1,3` style text of a CPU list (for logs and reports).
pub fn cpus_text(cpus: &[usize]) -> String {
    if cpus.is_empty() {
        return "unpinned".into();
    }
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Pin this process (every thread it has, and so every thread and child process it starts
/// later) to `cpus`, with [`crate::affinity::pin_process`]. An empty list leaves the placement
/// to the OS.
pub fn pin_process(cpus: &[usize]) -> anyhow::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    crate::affinity::pin_process(cpus).with_context(|| format!("pin to CPUs {}", cpus_text(cpus)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_cpus("1").unwrap(), vec![1]);
        assert_eq!(parse_cpus("0-1,3").unwrap(), vec![0, 1, 3]);
        assert_eq!(parse_cpus(" 1, 0 ,1").unwrap(), vec![0, 1]);
        assert!(parse_cpus("").unwrap().is_empty());
        assert!(parse_cpus("none").unwrap().is_empty());
        assert!(parse_cpus("2-1").is_err());
        assert!(parse_cpus("a").is_err());
        assert!(parse_cpus("1-").is_err());
        assert!(parse_cpus("99999").is_err());
    }
}
