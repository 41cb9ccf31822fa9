//! The machine's floor for a replicated round trip (`twinsite bench cluster`): the least any
//! three-node journal with a durable quorum can take on this loopback and this disk.
//!
//! Four threads and nothing else: a client sends a 256-byte message to a leader; the leader
//! forwards it to two followers, writes it to its own preallocated file and fdatasyncs it,
//! then waits for the first follower's answer (a quorum of two of three: itself and one
//! follower); each follower writes and fdatasyncs the message in its own file before it
//! answers. No consensus, no encoding, no runtime: blocking sockets and `poll`. Each thread is
//! placed like the process it stands for (`--cpus`), so the floor sees the same wake-ups
//! between CPUs and the same three fdatasyncs on one disk as the cluster does; being threads
//! of one process they skip the address-space switch, which makes the floor, if anything, a
//! little lower than three processes would measure.

use anyhow::Context;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

const MSG: usize = 256;
const ACK: usize = 8;
/// How long any thread of the floor waits for its peer before the run fails (a stuck peer
/// ends the bench with an error instead of hanging it).
const PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the node threads run, as the nodes' own CPU lists (`bench_cluster::Placement::node`;
/// empty: not pinned, so a thread keeps the bench process's placement). The client runs on the
/// calling thread, which has the bench process's placement already.
pub struct FloorCpus {
    pub leader: Vec<usize>,
    pub backup: Vec<usize>,
    pub witness: Vec<usize>,
}

/// `warmup + orders` round trips through a fresh leader and two followers with their files in
/// `dir`; the latencies of the last `orders`, in nanoseconds.
pub fn round_trips(
    dir: &Path,
    warmup: usize,
    orders: usize,
    cpus: &FloorCpus,
) -> anyhow::Result<Vec<u64>> {
    let total = warmup + orders;
    let backup = follower(dir, "floor-backup", total, cpus.backup.clone())?;
    let witness = follower(dir, "floor-witness", total, cpus.witness.clone())?;
    let leader_listener = TcpListener::bind("127.0.0.1:0")?;
    let leader_addr = leader_listener.local_addr()?;
    let leader_file = preallocated(dir, "floor-leader", total * MSG)?;
    let leader_cpus = cpus.leader.clone();
    let (b_addr, w_addr) = (backup.0, witness.0);
    // The leader thread owns the connections; the client's end closing ends it.
    let leader = std::thread::Builder::new()
        .name("floor-leader".into())
        .spawn(move || -> anyhow::Result<()> {
            // Connected before anything can fail, so that a failure here closes the
            // followers' connections and ends them instead of leaving them in `accept`.
            let mut followers = [connect(b_addr)?, connect(w_addr)?];
            place(&leader_cpus)?;
            let mut c = accept(&leader_listener, "client connection")?;
            let mut msg = [0u8; MSG];
            // Answer bytes read from each follower so far.
            let mut acked = [0usize; 2];
            for n in 1..=total {
                c.read_exact(&mut msg)?;
                for f in followers.iter_mut() {
                    f.write_all(&msg)?;
                }
                leader_file.write_all_at(&msg, ((n - 1) * MSG) as u64)?;
                leader_file.sync_data()?;
                while acked.iter().all(|&a| a < n * ACK) {
                    let fds = followers.each_ref().map(AsRawFd::as_raw_fd);
                    wait_readable(fds, "follower's answer")?;
                    for (f, a) in followers.iter_mut().zip(acked.iter_mut()) {
                        *a += read_ready(f)?;
                    }
                }
                c.write_all(&msg)?;
            }
            // End each follower cleanly: it reads the end, and its last answers are read here
            // (closing with unread answers would reset its connection).
            for f in followers.iter_mut() {
                f.shutdown(std::net::Shutdown::Write)?;
                std::io::copy(f, &mut std::io::sink())?;
            }
            Ok(())
        })?;
    let client = (|| -> anyhow::Result<Vec<u64>> {
        let mut c = connect(leader_addr)?;
        let mut msg = [0x5au8; MSG];
        let mut v = Vec::with_capacity(orders);
        for i in 0..total {
            msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let t = Instant::now();
            c.write_all(&msg)?;
            c.read_exact(&mut msg)?;
            if i >= warmup {
                v.push(t.elapsed().as_nanos() as u64);
            }
        }
        Ok(v)
    })();
    // One failure breaks the others' connections: report every thread's error, since which
    // came first is not known here.
    let mut errors = Vec::new();
    for (who, t) in [
        ("backup", backup.1),
        ("witness", witness.1),
        ("leader", leader),
    ] {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(format!("{who}: {e:#}")),
            Err(_) => errors.push(format!("{who}: panicked")),
        }
    }
    for name in ["floor-leader", "floor-backup", "floor-witness"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    match client {
        Ok(v) if errors.is_empty() => Ok(v),
        Ok(_) => anyhow::bail!("the floor failed: {}", errors.join("; ")),
        Err(e) => {
            errors.push(format!("client: {e:#}"));
            anyhow::bail!("the floor failed: {}", errors.join("; "))
        }
    }
}

type Follower = (
    std::net::SocketAddr,
    std::thread::JoinHandle<anyhow::Result<()>>,
);

fn follower(dir: &Path, name: &str, total: usize, cpus: Vec<usize>) -> anyhow::Result<Follower> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let file = preallocated(dir, name, total * MSG)?;
    let t =
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || -> anyhow::Result<()> {
                let mut s = accept(&listener, "leader connection")?;
                place(&cpus)?;
                let mut msg = [0u8; MSG];
                // Until the leader closes the connection (it still reads this follower's answers
                // after the other follower's have come).
                for n in 0.. {
                    match s.read_exact(&mut msg) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                        Err(e) => return Err(e.into()),
                    }
                    file.write_all_at(&msg, (n * MSG) as u64)?;
                    file.sync_data()?;
                    s.write_all(&msg[..ACK])?;
                }
                Ok(())
            })?;
    Ok((addr, t))
}

/// A zero-filled file of at least `bytes`, synced, so that each write into it is an overwrite
/// and its fdatasync flushes data only (as the nodes' preallocated WAL segments). Also the
/// fdatasync probe's file.
pub(crate) fn preallocated(dir: &Path, name: &str, bytes: usize) -> anyhow::Result<File> {
    let path = dir.join(name);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all_at(&vec![0u8; bytes.next_multiple_of(4096)], 0)?;
    f.sync_all()?;
    Ok(f)
}

fn connect(addr: std::net::SocketAddr) -> anyhow::Result<TcpStream> {
    configure(TcpStream::connect_timeout(&addr, PEER_TIMEOUT)?)
}

/// No Nagle delay (each message is a round trip), and a bounded wait for the peer.
fn configure(s: TcpStream) -> anyhow::Result<TcpStream> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(PEER_TIMEOUT))?;
    s.set_write_timeout(Some(PEER_TIMEOUT))?;
    Ok(s)
}

/// Pin the calling thread to `cpus` (empty: leave it where it is).
fn place(cpus: &[usize]) -> anyhow::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    crate::affinity::pin_thread(0, cpus).context("place a floor thread")
}

/// Block until one of `fds` is readable (an answer, or a connection to accept); `what` names
/// the awaited peer in the error after `PEER_TIMEOUT`.
fn wait_readable<const N: usize>(fds: [std::os::fd::RawFd; N], what: &str) -> anyhow::Result<()> {
    let mut fds = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    let timeout_ms = PEER_TIMEOUT.as_millis() as libc::c_int;
    loop {
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if r == 0 {
            anyhow::bail!("no {what} within {PEER_TIMEOUT:?}");
        }
        if r > 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e.into());
        }
    }
}

/// The next connection to `listener`, within `PEER_TIMEOUT` (a peer that failed before
/// connecting must not leave this thread, and the bench, waiting for ever).
fn accept(listener: &TcpListener, what: &str) -> anyhow::Result<TcpStream> {
    wait_readable([listener.as_raw_fd()], what)?;
    configure(listener.accept()?.0)
}

/// The answer bytes that can be read from `f` without blocking.
fn read_ready(f: &mut TcpStream) -> anyhow::Result<usize> {
    let mut buf = [0u8; ACK * 64];
    let mut bytes = 0usize;
    loop {
        // MSG_DONTWAIT: read what is there, without making the socket non-blocking.
        // SAFETY: `buf` is valid for writes of its length.
        let r = unsafe {
            libc::recv(
                f.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if r > 0 {
            bytes += r as usize;
            continue;
        }
        if r == 0 {
            anyhow::bail!("a floor follower closed its connection");
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::WouldBlock => break,
            std::io::ErrorKind::Interrupted => continue,
            _ => return Err(e.into()),
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the floor runs its round trips end to end and cleans up its files.
    #[test]
    fn floor_round_trips_complete_and_leave_no_file() {
        let dir = std::env::temp_dir().join(format!("twinsite-floor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let none = FloorCpus {
            leader: vec![],
            backup: vec![],
            witness: vec![],
        };
        let v = round_trips(&dir, 5, 40, &none).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(v.len(), 40);
        assert!(v.iter().all(|&ns| ns > 0));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
