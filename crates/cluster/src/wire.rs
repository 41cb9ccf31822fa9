//! The binary encoding of raft messages on the wire and of raft log records in the WAL:
//! postcard (serde, compact, not self-describing). A command's bytes travel as they are, not
//! as text.
//!
//! Both ends of a connection run the same build, so the network format has no version byte.
//! The WAL is read back by later builds: [`decode_record`] also reads the JSON records written
//! by builds before this encoding (a JSON record starts with `{`, a postcard one with its
//! variant number, 0 to 3).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Append the encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), String> {
    let buf = std::mem::take(out);
    match postcard::to_extend(value, buf) {
        Ok(buf) => {
            *out = buf;
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The encoding of `value`.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    encode_into(&mut out, value)?;
    Ok(out)
}

/// Decode one whole value; trailing bytes are an error.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(format!("{} bytes after the end of the message", rest.len())),
        Err(e) => Err(e.to_string()),
    }
}

/// Decode a WAL record: postcard, or JSON as written by earlier builds.
pub(crate) fn decode_record<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.first() == Some(&b'{') {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    } else {
        decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use openraft::entry::RaftEntry;
    use openraft::raft::AppendEntriesRequest;
    use openraft::testing::log_id;
    use proptest::prelude::*;

    use super::*;
    use crate::net::{Request, Response};
    use crate::types::{Command, Entry, Vote, C};

    fn append(commands: &[Vec<u8>]) -> Request {
        Request::StreamAppend(AppendEntriesRequest::<C> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id::<C>(3, 1, 9)),
            entries: commands
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    Entry::new_normal(log_id::<C>(3, 1, 10 + i as u64), Command(c.clone()))
                })
                .collect(),
            leader_commit: Some(log_id::<C>(3, 1, 8)),
        })
    }

    proptest! {
        /// Goal: a raft message survives the encoding unchanged, and its command bytes are
        /// carried as they are (the frame is barely longer than the commands).
        #[test]
        fn append_requests_round_trip(commands in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
            let request = append(&commands);
            let bytes = encode(&request).unwrap();
            let payload: usize = commands.iter().map(Vec::len).sum();
            prop_assert!(bytes.len() <= payload + 64 + 16 * commands.len());
            let back: Request = decode(&bytes).unwrap();
            prop_assert_eq!(format!("{back:?}"), format!("{request:?}"));
            // Every proper prefix is an error, never a panic or a shorter message.
            for cut in 0..bytes.len() {
                prop_assert!(decode::<Request>(&bytes[..cut]).is_err());
            }
        }

        /// Goal: arbitrary bytes from a peer decode to an error or a message, never a panic.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<Request>(&bytes);
            let _ = decode::<Response>(&bytes);
            let _ = decode_record::<Request>(&bytes);
        }
    }
}
