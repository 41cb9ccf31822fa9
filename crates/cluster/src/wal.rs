//! A write-ahead log of CRC-framed records in preallocated segment files.
//!
//! Each record is framed as `len: u32 LE | crc: u32 LE | payload`, where `crc` is the CRC-32C of
//! the four length bytes followed by the payload. Segments are named `{id:010}.wal`, are
//! preallocated to `segment_bytes` (zero-filled), and are written strictly in order. An all-zero
//! header marks the end of the written data in a segment.
//!
//! Recovery reads every segment in order. A record that fails its CRC or runs past the end of
//! its segment is never returned. If the bad record is in the last segment and nothing but zeros
//! follows it, it is a torn final write (a crash mid-write): it is zeroed out and recovery
//! succeeds with the records before it. Anywhere else the log is damaged before its tail and
//! [`WalError::Corrupt`] names the file and byte offset.
//!
//! The WAL does not sync on its own: callers batch [`Wal::append`] calls and then call
//! [`Wal::sync`] once (group commit). Appends are framed into a buffer and reach the file with
//! one positioned write per batch ([`Wal::flush`], also done by `sync` and before a segment
//! rotation), not one seek and write per record.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes of a record header: length then CRC-32C.
pub const RECORD_HEADER_BYTES: u64 = 8;
/// The smallest segment size accepted, so that any sane record fits.
pub const SEGMENT_BYTES_MIN: u64 = 4096;

/// A WAL failure. Corruption names the file and byte offset of the first bad record.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "WAL record at {file}:{offset} is corrupt ({reason}); the log is damaged before its tail, \
         so this node refuses to start. Recover by deleting this node's data directory and \
         restarting it: it re-syncs its log and state from a peer"
    )]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("WAL record of {payload_bytes} bytes does not fit a {segment_bytes}-byte segment")]
    RecordTooLarge {
        payload_bytes: usize,
        segment_bytes: u64,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Frame one payload: header then payload.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        !payload.is_empty(),
        "empty WAL records are indistinguishable from zeros"
    );
    let len = u32::try_from(payload.len()).expect("record length fits u32");
    let len_bytes = len.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// One record read back during recovery, with the segment it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredRecord {
    pub segment_id: u64,
    /// Byte offset of the record's header in its segment.
    pub offset: u64,
    pub payload: Vec<u8>,
}

impl Wal {
    /// Path of a segment, for error messages.
    pub fn segment_path(&self, id: u64) -> PathBuf {
        segment_path(&self.dir, id)
    }
}

/// What recovery found besides the records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// A torn final record that was zeroed out: file and offset.
    pub torn_tail: Option<(PathBuf, u64)>,
    pub segment_count: usize,
}

/// An open WAL positioned for appending after the last good record.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    /// Ids of the segments on disk, ascending; the last is the one being written.
    segment_ids: Vec<u64>,
    current: File,
    current_path: PathBuf,
    /// Byte offset of the next record in the current segment (after `pending`).
    offset: u64,
    /// Length of the current segment file (a segment made with another size keeps its own).
    capacity: u64,
    /// Framed records not yet written, to go at `offset - pending.len()` in the current segment.
    pending: Vec<u8>,
    /// Segments filled since the last sync; they must be synced before we report durability.
    unsynced_full: Vec<File>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:010}.wal"))
}

fn list_segment_ids(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut ids = Vec::new();
    for dirent in fs::read_dir(dir).map_err(io_error(dir))? {
        let dirent = dirent.map_err(io_error(dir))?;
        let name = dirent.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".wal") {
            if let Ok(id) = stem.parse::<u64>() {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// The outcome of scanning one segment's bytes.
#[derive(Debug, PartialEq, Eq)]
enum ScanEnd {
    /// Clean end of data at this offset.
    Clean(u64),
    /// A bad record at `offset`; `tail_is_zero` says whether only zeros follow it.
    Bad {
        offset: u64,
        end: u64,
        tail_is_zero: bool,
        reason: String,
    },
}

/// Scan a segment's bytes, pushing good payloads, stopping at the end marker or the first bad
/// record. Pure: no I/O, never panics on any input.
fn scan_segment(bytes: &[u8], payloads: &mut Vec<(u64, Vec<u8>)>) -> ScanEnd {
    let total = bytes.len() as u64;
    let mut offset: u64 = 0;
    loop {
        if offset == total {
            return ScanEnd::Clean(offset);
        }
        let at = offset as usize;
        if total - offset < RECORD_HEADER_BYTES {
            if all_zero(&bytes[at..]) {
                return ScanEnd::Clean(offset);
            }
            return bad_record(bytes, offset, total, "header runs past segment end");
        }
        let len_bytes: [u8; 4] = bytes[at..at + 4].try_into().expect("4 bytes");
        let crc_bytes: [u8; 4] = bytes[at + 4..at + 8].try_into().expect("4 bytes");
        let len = u64::from(u32::from_le_bytes(len_bytes));
        let crc = u32::from_le_bytes(crc_bytes);
        if len == 0 && crc == 0 {
            // The end marker: everything after it must still be the preallocated zeros.
            if all_zero(&bytes[at..]) {
                return ScanEnd::Clean(offset);
            }
            return ScanEnd::Bad {
                offset,
                end: offset + RECORD_HEADER_BYTES,
                tail_is_zero: false,
                reason: "data after the end-of-log marker".into(),
            };
        }
        let body_start = offset + RECORD_HEADER_BYTES;
        if len == 0 || len > total - body_start {
            return bad_record(bytes, offset, body_start, "length runs past segment end");
        }
        let body = &bytes[body_start as usize..(body_start + len) as usize];
        let expected = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), body);
        if expected != crc {
            let reason = format!("crc32c mismatch: stored {crc:#010x}, computed {expected:#010x}");
            return bad_record(bytes, offset, body_start + len, &reason);
        }
        payloads.push((offset, body.to_vec()));
        offset = body_start + len;
    }
}

fn bad_record(bytes: &[u8], offset: u64, end: u64, reason: &str) -> ScanEnd {
    let end = end.min(bytes.len() as u64);
    ScanEnd::Bad {
        offset,
        end,
        tail_is_zero: all_zero(&bytes[end as usize..]),
        reason: reason.to_string(),
    }
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

impl Wal {
    /// Open (or create) the WAL in `dir`, recover every good record in order, truncate a torn
    /// final record, and position for appending.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
    ) -> Result<(Wal, Vec<RecoveredRecord>, RecoveryReport), WalError> {
        assert!(segment_bytes >= SEGMENT_BYTES_MIN);
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut segment_ids = list_segment_ids(dir)?;
        let mut records = Vec::new();
        let mut report = RecoveryReport::default();
        let mut append_offset = 0;
        for (position, id) in segment_ids.iter().enumerate() {
            let is_last = position + 1 == segment_ids.len();
            append_offset = recover_segment(dir, *id, is_last, &mut records, &mut report)?;
        }
        if segment_ids.is_empty() {
            create_segment(dir, 0, segment_bytes)?;
            segment_ids.push(0);
            append_offset = 0;
        }
        let last = *segment_ids.last().expect("at least one segment");
        let current_path = segment_path(dir, last);
        let current = OpenOptions::new()
            .write(true)
            .open(&current_path)
            .map_err(io_error(&current_path))?;
        let current_len = current.metadata().map_err(io_error(&current_path))?.len();
        assert!(append_offset <= current_len);
        report.segment_count = segment_ids.len();
        let wal = Wal {
            dir: dir.to_path_buf(),
            segment_bytes,
            segment_ids,
            current,
            current_path,
            offset: append_offset,
            capacity: current_len,
            pending: Vec::new(),
            unsynced_full: Vec::new(),
        };
        Ok((wal, records, report))
    }

    /// Append one record (not yet written nor durable: see [`Wal::flush`] and [`Wal::sync`]).
    /// Rotates to a fresh segment when the record does not fit; returns the id of the segment
    /// the record goes to.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, WalError> {
        let framed_bytes = payload.len() as u64 + RECORD_HEADER_BYTES;
        if framed_bytes > self.segment_bytes {
            return Err(WalError::RecordTooLarge {
                payload_bytes: payload.len(),
                segment_bytes: self.segment_bytes,
            });
        }
        if self.offset + framed_bytes > self.capacity {
            self.rotate()?;
        }
        frame(payload, &mut self.pending);
        self.offset += framed_bytes;
        Ok(self.current_segment_id())
    }

    /// Write every appended record to the page cache with one positioned write (not durable).
    pub fn flush(&mut self) -> Result<(), WalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let at = self.offset - self.pending.len() as u64;
        let result = self.current.write_all_at(&self.pending, at);
        self.pending.clear();
        result.map_err(io_error(&self.current_path))
    }

    /// Make every appended record durable: write them, then fdatasync.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.flush()?;
        for full in self.unsynced_full.drain(..) {
            full.sync_data().map_err(io_error(&self.dir))?;
        }
        self.current
            .sync_data()
            .map_err(io_error(&self.current_path))
    }

    pub fn current_segment_id(&self) -> u64 {
        *self.segment_ids.last().expect("at least one segment")
    }

    pub fn segment_ids(&self) -> &[u64] {
        &self.segment_ids
    }

    /// Delete the given segments (never the current one).
    pub fn remove_segments(&mut self, ids: &[u64]) -> Result<(), WalError> {
        let current = self.current_segment_id();
        for id in ids {
            assert_ne!(*id, current, "the segment being written is never removed");
            let path = segment_path(&self.dir, *id);
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
        self.segment_ids.retain(|id| !ids.contains(id));
        sync_dir(&self.dir)
    }

    fn rotate(&mut self) -> Result<(), WalError> {
        self.flush()?;
        let next = self.current_segment_id() + 1;
        let file = create_segment(&self.dir, next, self.segment_bytes)?;
        let path = segment_path(&self.dir, next);
        let full = std::mem::replace(&mut self.current, file);
        self.unsynced_full.push(full);
        self.current_path = path;
        self.segment_ids.push(next);
        self.offset = 0;
        self.capacity = self.segment_bytes;
        Ok(())
    }
}

/// Read one segment's good records into `records`; returns the offset after the last good one.
/// A bad record is a torn tail (zeroed, logged) only in the last segment with zeros after it.
fn recover_segment(
    dir: &Path,
    id: u64,
    is_last: bool,
    records: &mut Vec<RecoveredRecord>,
    report: &mut RecoveryReport,
) -> Result<u64, WalError> {
    let path = segment_path(dir, id);
    let mut bytes = Vec::new();
    File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_error(&path))?;
    let mut payloads = Vec::new();
    let append_offset = match scan_segment(&bytes, &mut payloads) {
        ScanEnd::Clean(end) => end,
        ScanEnd::Bad {
            offset,
            end,
            tail_is_zero,
            reason,
        } => {
            if !(is_last && tail_is_zero) {
                return Err(WalError::Corrupt {
                    file: path,
                    offset,
                    reason,
                });
            }
            tracing::warn!(file = %path.display(), offset, %reason,
                "WAL: torn final record (crash mid-write), truncating it");
            zero_range(&path, offset, end)?;
            report.torn_tail = Some((path.clone(), offset));
            offset
        }
    };
    records.extend(
        payloads
            .into_iter()
            .map(|(offset, payload)| RecoveredRecord {
                segment_id: id,
                offset,
                payload,
            }),
    );
    Ok(append_offset)
}

/// Create a zero-filled segment of `segment_bytes`, durable (file and directory entry).
fn create_segment(dir: &Path, id: u64, segment_bytes: u64) -> Result<File, WalError> {
    let path = segment_path(dir, id);
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_error(&path))?;
    // Write real zeros rather than only set_len: a sparse file makes every later fdatasync
    // also allocate blocks and update extent metadata, which costs several times more.
    let zeros = vec![0u8; 1 << 20];
    let mut remaining = segment_bytes;
    let mut writer = &file;
    while remaining > 0 {
        let chunk = remaining.min(zeros.len() as u64) as usize;
        writer.write_all(&zeros[..chunk]).map_err(io_error(&path))?;
        remaining -= chunk as u64;
    }
    file.sync_all().map_err(io_error(&path))?;
    sync_dir(dir)?;
    Ok(file)
}

fn zero_range(path: &Path, start: u64, end: u64) -> Result<(), WalError> {
    assert!(start <= end);
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    let zeros = vec![0u8; (end - start) as usize];
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.write_all(&zeros))
        .and_then(|_| file.sync_data())
        .map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "twinsite-wal-{name}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn payloads(recovered: &[RecoveredRecord]) -> Vec<Vec<u8>> {
        recovered.iter().map(|r| r.payload.clone()).collect()
    }

    #[test]
    fn records_round_trip_across_segments() {
        let dir = temp_dir("round-trip");
        let written: Vec<Vec<u8>> = (0..500u32)
            .map(|i| vec![(i % 250) as u8 + 1; 40 + i as usize % 30])
            .collect();
        {
            let (mut wal, recovered, _) = Wal::open(&dir, SEGMENT_BYTES_MIN).unwrap();
            assert!(recovered.is_empty());
            for p in &written {
                wal.append(p).unwrap();
            }
            wal.sync().unwrap();
            assert!(wal.segment_ids().len() > 3, "small segments rotate");
        }
        let (mut wal, recovered, report) = Wal::open(&dir, SEGMENT_BYTES_MIN).unwrap();
        assert_eq!(payloads(&recovered), written);
        assert_eq!(report.torn_tail, None);
        // Appending after recovery continues the same log.
        wal.append(b"after").unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, recovered, _) = Wal::open(&dir, SEGMENT_BYTES_MIN).unwrap();
        assert_eq!(recovered.last().unwrap().payload, b"after");
        assert_eq!(recovered.len(), written.len() + 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn torn_final_record_is_truncated() {
        let dir = temp_dir("torn");
        {
            let (mut wal, _, _) = Wal::open(&dir, SEGMENT_BYTES_MIN).unwrap();
            wal.append(b"first").unwrap();
            wal.append(b"second record").unwrap();
            wal.sync().unwrap();
        }
        // Tear the second record: keep its header, zero its last bytes.
        let path = segment_path(&dir, 0);
        let mut bytes = fs::read(&path).unwrap();
        let second = RECORD_HEADER_BYTES as usize + 5;
        bytes[second + 8 + 6..second + 8 + 13].fill(0);
        fs::write(&path, &bytes).unwrap();
        let (mut wal, recovered, report) = Wal::open(&dir, SEGMENT_BYTES_MIN).unwrap();
        assert_eq!(payloads(&recovered), vec![b"first".to_vec()]);
        assert_eq!(report.torn_tail, Some((path.clone(), second as u64)));
        wal.append(b"third").unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, recovered, report) = Wal::open(&dir, SEGMENT_BYTES_MIN).unwrap();
        assert_eq!(
            payloads(&recovered),
            vec![b"first".to_vec(), b"third".to_vec()]
        );
        assert_eq!(report.torn_tail, None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corruption_before_the_tail_is_reported_with_file_and_offset() {
        let dir = temp_dir("corrupt");
        {
            let (mut wal, _, _) = Wal::open(&dir, SEGMENT_BYTES_MIN).unwrap();
            for i in 0..10u8 {
                wal.append(&[i + 1; 16]).unwrap();
            }
            wal.sync().unwrap();
        }
        let path = segment_path(&dir, 0);
        let mut bytes = fs::read(&path).unwrap();
        let third = 2 * (RECORD_HEADER_BYTES as usize + 16);
        bytes[third + 10] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let err = Wal::open(&dir, SEGMENT_BYTES_MIN).unwrap_err();
        match &err {
            WalError::Corrupt { file, offset, .. } => {
                assert_eq!(file, &path);
                assert_eq!(*offset, third as u64);
            }
            other => panic!("expected corruption, got {other}"),
        }
        let message = err.to_string();
        assert!(message.contains("0000000000.wal:"), "{message}");
        assert!(
            message.contains("deleting this node's data directory"),
            "{message}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scan_never_panics_on_garbage() {
        let mut payloads = Vec::new();
        for len in 0..64usize {
            let garbage: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = scan_segment(&garbage, &mut payloads);
        }
    }
}
