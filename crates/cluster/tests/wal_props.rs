//! Property test of WAL recovery: write random records, then damage the segment files by a
//! random truncation (a crash mid-write leaves zeros in the preallocated space) or a random bit
//! flip (media corruption). Recovery must never panic and never return a record that was not
//! written: it returns a prefix of the written records, or reports corruption with a position.

use std::fs;
use std::path::PathBuf;

use proptest::prelude::*;
use twinsite_cluster::wal::{Wal, WalError, SEGMENT_BYTES_MIN};

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "twinsite-walprop-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn segment_files(dir: &PathBuf) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

#[derive(Debug, Clone)]
enum Damage {
    /// Zero everything from this fraction of the written bytes onwards (a torn tail).
    Truncate(f64),
    /// Flip one bit at this fraction of all segment bytes.
    Flip(f64, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Damage::Truncate),
        ((0.0..1.0f64), 0u8..8).prop_map(|(at, bit)| Damage::Flip(at, bit)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn recovery_returns_a_prefix_or_reports_corruption(
        records in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 1..60),
        damage in damage(),
    ) {
        let dir = temp_dir();
        {
            let (mut wal, _, _) = Wal::open(&dir, SEGMENT_BYTES_MIN).unwrap();
            for r in &records {
                wal.append(r).unwrap();
            }
            wal.sync().unwrap();
        }
        let files = segment_files(&dir);
        let mut image: Vec<u8> = Vec::new();
        let mut bounds = Vec::new();
        for f in &files {
            let bytes = fs::read(f).unwrap();
            bounds.push((image.len(), bytes.len()));
            image.extend_from_slice(&bytes);
        }
        let truncated_at = match damage {
            Damage::Truncate(at) => {
                // Only the last segment can be torn; earlier ones were full and synced.
                let (last_start, last_len) = *bounds.last().unwrap();
                let cut = last_start + ((last_len as f64) * at) as usize;
                image[cut..].fill(0);
                Some(cut)
            }
            Damage::Flip(at, bit) => {
                let last = image.len() - 1;
                let i = (((image.len() as f64) * at) as usize).min(last);
                image[i] ^= 1 << bit;
                None
            }
        };
        for (f, (start, len)) in files.iter().zip(&bounds) {
            fs::write(f, &image[*start..start + len]).unwrap();
        }
        match Wal::open(&dir, SEGMENT_BYTES_MIN) {
            Ok((_, recovered, _)) => {
                prop_assert!(recovered.len() <= records.len());
                for (got, want) in recovered.iter().zip(&records) {
                    prop_assert_eq!(&got.payload, want);
                }
                if let Some(cut) = truncated_at {
                    // Every record that ended before the cut survives.
                    let (last_start, _) = *bounds.last().unwrap();
                    let mut offset = 0usize;
                    let mut segment_index = 0usize;
                    let mut expected = 0usize;
                    // Walk the records through the segments the way the writer placed them.
                    for r in &records {
                        let framed = r.len() + 8;
                        if offset + framed > bounds[segment_index].1 {
                            segment_index += 1;
                            offset = 0;
                        }
                        let end = bounds[segment_index].0 + offset + framed;
                        if bounds[segment_index].0 < last_start || end <= cut {
                            expected += 1;
                        } else {
                            break;
                        }
                        offset += framed;
                    }
                    prop_assert_eq!(recovered.len(), expected);
                }
            }
            Err(WalError::Corrupt { file, .. }) => {
                prop_assert!(truncated_at.is_none(), "a torn tail is not corruption");
                prop_assert!(files.contains(&file));
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
