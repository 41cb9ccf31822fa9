//! Small single-record files (vote, snapshot): one WAL frame, replaced atomically.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use crate::wal::{frame, RECORD_HEADER_BYTES};

/// Write `payload` framed with its CRC to `path`: temporary file, fsync, rename, fsync the
/// directory. After this returns the new contents survive a crash.
pub fn write_atomic(path: &Path, payload: &[u8]) -> io::Result<()> {
    let mut framed = Vec::with_capacity(payload.len() + RECORD_HEADER_BYTES as usize);
    frame(payload, &mut framed);
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp)?;
        file.write_all(&framed)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    File::open(dir)?.sync_all()
}

/// Check and unwrap a framed file; the error says what is wrong.
pub fn decode(bytes: &[u8]) -> Result<&[u8], String> {
    let header = RECORD_HEADER_BYTES as usize;
    if bytes.len() < header {
        return Err(format!(
            "file of {} bytes is shorter than its header",
            bytes.len()
        ));
    }
    let len_bytes: [u8; 4] = bytes[0..4].try_into().expect("4 bytes");
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(len_bytes) as usize;
    if bytes.len() - header != len {
        return Err(format!(
            "length {len} does not match file size {}",
            bytes.len()
        ));
    }
    let body = &bytes[header..];
    let expected = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), body);
    if expected != crc {
        return Err(format!(
            "crc32c mismatch: stored {crc:#010x}, computed {expected:#010x}"
        ));
    }
    Ok(body)
}

/// Check the one-record file format used by the vote and snapshot files.
#[cfg(test)]
mod tests {
    #[test]
    fn framed_file_round_trip() {
        let dir = std::env::temp_dir().join(format!("twinsite-vote-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vote");
        crate::framed_file::write_atomic(&path, b"{\"x\":1}").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(crate::framed_file::decode(&bytes).unwrap(), b"{\"x\":1}");
        let mut damaged = bytes.clone();
        damaged[9] ^= 1;
        assert!(crate::framed_file::decode(&damaged).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
