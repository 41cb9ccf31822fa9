//! A minimal writer of classic pcap files (microsecond timestamps, LINKTYPE_ETHERNET) for what
//! the site publishes on multicast: each datagram becomes an Ethernet II / IPv4 / UDP frame, so
//! Wireshark, tcpdump and third-party OMD decoders read the file as a capture.
//!
//! Frames: destination MAC is the IPv4 multicast MAC (01:00:5e + low 23 bits of the group),
//! source MAC 02:00:00:00:00:01 (locally administered), IPv4 TTL 1, DF clear, a correct header
//! checksum, UDP checksum 0 (allowed for IPv4). Datagrams longer than 65,507 bytes are skipped.

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4};

/// pcap global header magic (microsecond resolution).
const MAGIC: u32 = 0xa1b2_c3d4;
const LINKTYPE_ETHERNET: u32 = 1;
const SNAPLEN: u32 = 65_535;
const ETH_LEN: usize = 14;
const IP_LEN: usize = 20;
const UDP_LEN: usize = 8;

/// Writes frames to any `Write` (a buffered file in the runtime).
pub struct PcapWriter<W: Write> {
    out: W,
    ip_id: u16,
    frame: Vec<u8>,
}

impl<W: Write> PcapWriter<W> {
    /// Write the global header.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&SNAPLEN.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter {
            out,
            ip_id: 0,
            frame: Vec::with_capacity(1_600),
        })
    }

    /// One UDP datagram from `src` to `dst` at `time_ns` (Unix nanoseconds).
    pub fn write_udp(
        &mut self,
        time_ns: u64,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> io::Result<()> {
        if payload.len() > 65_507 {
            return Ok(());
        }
        self.ip_id = self.ip_id.wrapping_add(1);
        let f = &mut self.frame;
        f.clear();
        // Ethernet II.
        let g = dst.ip().octets();
        if dst.ip().is_multicast() {
            f.extend_from_slice(&[0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]]);
        } else {
            f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
        }
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        // IPv4.
        let total = (IP_LEN + UDP_LEN + payload.len()) as u16;
        let ip_start = f.len();
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&self.ip_id.to_be_bytes());
        f.extend_from_slice(&[0, 0, 1, 17, 0, 0]);
        f.extend_from_slice(&src.ip().octets());
        f.extend_from_slice(&g);
        let checksum = ipv4_checksum(&f[ip_start..ip_start + IP_LEN]);
        f[ip_start + 10..ip_start + 12].copy_from_slice(&checksum.to_be_bytes());
        // UDP.
        f.extend_from_slice(&src.port().to_be_bytes());
        f.extend_from_slice(&dst.port().to_be_bytes());
        f.extend_from_slice(&((UDP_LEN + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&0u16.to_be_bytes());
        f.extend_from_slice(payload);
        // Record header.
        let len = f.len() as u32;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((time_ns / 1_000_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&(((time_ns / 1_000) % 1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&len.to_le_bytes());
        rec[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(&self.frame)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The Internet checksum of an IPv4 header (checksum field zero).
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A parsed frame of a file written by [`PcapWriter`] (for tests and the bench).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub time_ns: u64,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: Vec<u8>,
}

/// Read back an Ethernet/IPv4/UDP pcap file (independent parsing by offsets, checks the IPv4
/// checksum). Non-UDP frames are skipped.
pub fn read_udp_frames(bytes: &[u8]) -> Result<Vec<Frame>, String> {
    if bytes.len() < 24 || u32::from_le_bytes(bytes[0..4].try_into().unwrap()) != MAGIC {
        return Err("not a little-endian microsecond pcap file".into());
    }
    if u32::from_le_bytes(bytes[20..24].try_into().unwrap()) != LINKTYPE_ETHERNET {
        return Err("link type is not Ethernet".into());
    }
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let word = |o: usize| u32::from_le_bytes(bytes[at + o..at + o + 4].try_into().unwrap());
        let (sec, usec, incl) = (word(0), word(4), word(8) as usize);
        let start = at + 16;
        let Some(f) = bytes.get(start..start + incl) else {
            return Err(format!("truncated record at byte {at}"));
        };
        at = start + incl;
        if f.len() < ETH_LEN + IP_LEN + UDP_LEN || f[12..14] != [0x08, 0x00] || f[23] != 17 {
            continue;
        }
        let ip = &f[ETH_LEN..ETH_LEN + IP_LEN];
        if ipv4_checksum(ip) != 0 {
            return Err(format!("bad IPv4 checksum in record at byte {at}"));
        }
        let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
        let udp = &f[ETH_LEN + IP_LEN..];
        let udp_len = u16::from_be_bytes([udp[4], udp[5]]) as usize;
        if total != IP_LEN + udp_len || udp.len() < udp_len {
            return Err(format!("inconsistent lengths in record at byte {at}"));
        }
        let addr = |o: usize| Ipv4Addr::new(ip[o], ip[o + 1], ip[o + 2], ip[o + 3]);
        frames.push(Frame {
            time_ns: sec as u64 * 1_000_000_000 + usec as u64 * 1_000,
            src: SocketAddrV4::new(addr(12), u16::from_be_bytes([udp[0], udp[1]])),
            dst: SocketAddrV4::new(addr(16), u16::from_be_bytes([udp[2], udp[3]])),
            payload: udp[UDP_LEN..udp_len].to_vec(),
        });
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_hand_checked_header_bytes() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        let src = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 40_000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(239, 129, 1, 2), 51_001);
        w.write_udp(1_700_000_000_123_456_789, src, dst, b"hello")
            .unwrap();
        let bytes = w.into_inner();
        // Global header: magic, 2.4, snaplen, Ethernet.
        assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&bytes[4..8], &[2, 0, 4, 0]);
        assert_eq!(&bytes[20..24], &[1, 0, 0, 0]);
        let frame = &bytes[40..];
        // Multicast MAC of 239.129.1.2: 01:00:5e:01:01:02.
        assert_eq!(&frame[0..6], &[0x01, 0x00, 0x5e, 0x01, 0x01, 0x02]);
        assert_eq!(frame.len(), 14 + 20 + 8 + 5);
        assert_eq!(&bytes[32..36], &(47u32).to_le_bytes());
        let frames = read_udp_frames(&bytes).unwrap();
        assert_eq!(
            frames,
            vec![Frame {
                time_ns: 1_700_000_000_123_456_000,
                src,
                dst,
                payload: b"hello".to_vec(),
            }]
        );
    }

    #[test]
    fn checksum_of_a_known_header() {
        // Example header from RFC 1071 style worked examples (Wikipedia IPv4 checksum).
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_checksum(&h), 0xb861);
    }
}
