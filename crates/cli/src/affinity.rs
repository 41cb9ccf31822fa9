//! CPU placement of this process's threads (Linux `sched_setaffinity`), for benchmarks whose
//! figure depends on which CPUs the two ends of a round trip run on.
//!
//! On a virtual machine an idle vCPU is halted, and waking a thread that sleeps on a halted vCPU
//! costs an inter-processor interrupt (about 40-50 µs on the VM of BENCHMARKS.md) where a
//! wake-up on the running vCPU costs a few µs. Left to the OS, which vCPU each end of a
//! ping-pong lands on is decided per phase by the scheduler's wake-up heuristics, so two phases
//! of one run (the gateway's round trips and the echo's) can land in different modes. A
//! [`Placement`] fixes it for both phases alike.

use std::io;

/// Where the client thread and the site's threads run during a round-trip phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Placement {
    /// Every thread of the process on one CPU: each hand-off is a wake-up on the running CPU.
    SameCpu,
    /// The client thread on one CPU, every other thread (the site's runtime) on another: each
    /// hand-off crosses CPUs, as between two machines' NICs (needs two CPUs).
    SplitCpus,
    /// No pinning: every thread may run on every CPU the process was given.
    Os,
}

impl Placement {
    pub fn name(self) -> &'static str {
        match self {
            Placement::SameCpu => "same_cpu",
            Placement::SplitCpus => "split_cpus",
            Placement::Os => "os",
        }
    }

    /// Pins the process for this placement, the calling thread being the client; returns the
    /// CPUs given to (client, everything else). `allowed` are the CPUs the process started with.
    pub fn apply(self, allowed: &[usize]) -> io::Result<(Vec<usize>, Vec<usize>)> {
        let (client, site) = match self {
            Placement::SameCpu => {
                let last = *allowed.last().ok_or_else(no_cpu)?;
                (vec![last], vec![last])
            }
            Placement::SplitCpus => {
                if allowed.len() < 2 {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "split_cpus needs two CPUs",
                    ));
                }
                (vec![allowed[0]], vec![allowed[allowed.len() - 1]])
            }
            Placement::Os => (allowed.to_vec(), allowed.to_vec()),
        };
        pin_process(&site)?;
        pin_thread(0, &client)?;
        Ok((client, site))
    }
}

fn no_cpu() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no CPU in the affinity mask")
}

/// The CPUs the calling thread may run on.
#[cfg(target_os = "linux")]
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// Pins one thread (`tid`, 0 = the calling thread) to `cpus`.
#[cfg(target_os = "linux")]
pub fn pin_thread(tid: i32, cpus: &[usize]) -> io::Result<()> {
    // SAFETY: as above; CPU_SET is bounds-checked against CPU_SETSIZE by the filter.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Pins every thread of this process to `cpus` (threads created later inherit the mask of the
/// thread that creates them).
#[cfg(target_os = "linux")]
pub fn pin_process(cpus: &[usize]) -> io::Result<()> {
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        match pin_thread(tid, cpus) {
            // A thread that ended since the listing.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            r => r?,
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "CPU placement is implemented for Linux only",
    ))
}

#[cfg(not(target_os = "linux"))]
pub fn pin_thread(_tid: i32, _cpus: &[usize]) -> io::Result<()> {
    allowed_cpus().map(|_| ())
}

#[cfg(not(target_os = "linux"))]
pub fn pin_process(_cpus: &[usize]) -> io::Result<()> {
    allowed_cpus().map(|_| ())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn pinning_moves_every_thread_and_restores() {
        let allowed = allowed_cpus().expect("affinity");
        assert!(!allowed.is_empty());
        let last = *allowed.last().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (back_tx, back_rx) = std::sync::mpsc::channel();
        let other = std::thread::spawn(move || {
            rx.recv().unwrap();
            back_tx.send(allowed_cpus().unwrap()).unwrap();
            rx.recv().ok();
        });
        let (client, site) = Placement::SameCpu.apply(&allowed).unwrap();
        assert_eq!((client.clone(), site), (vec![last], vec![last]));
        assert_eq!(allowed_cpus().unwrap(), client);
        tx.send(()).unwrap();
        assert_eq!(back_rx.recv().unwrap(), vec![last]);
        Placement::Os.apply(&allowed).unwrap();
        assert_eq!(allowed_cpus().unwrap(), allowed);
        drop(tx);
        other.join().unwrap();
    }
}
