//! The openraft type configuration. Nothing here is re-exported: the rest of twinsite sees only
//! [`crate::Journal`] and its plain types.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An opaque command, as proposed by the application.
///
/// In JSON (WAL records, raft messages) its bytes are one lowercase hex string: serde's default
/// for a `Vec<u8>` is an array of numbers, about four characters per byte and slow to parse. A
/// journal written before this change (arrays) still reads: both forms decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command(#[serde(with = "hex_bytes")] pub Vec<u8>);

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command({} bytes)", self.0.len())
    }
}

/// The application state machine's reply to one command.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply(#[serde(with = "hex_bytes")] pub Vec<u8>);

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reply({} bytes)", self.0.len())
    }
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = u64,
        Node = openraft::BasicNode,
        AsyncRuntime = crate::runtime::Rt,
);

pub type C = TypeConfig;
pub type Entry = openraft::type_config::alias::EntryOf<C>;
pub type LogId = openraft::type_config::alias::LogIdOf<C>;
pub type Vote = openraft::type_config::alias::VoteOf<C>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<C>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<C>;
pub type Snapshot = openraft::type_config::alias::SnapshotOf<C, Vec<u8>>;

/// Bytes as a lowercase hex string in human-readable formats (JSON: status output, old WAL
/// records), which decode a hex string or an array of numbers; as plain bytes in binary ones
/// (the wire and WAL encoding, `crate::wire`).
mod hex_bytes {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    const DIGITS: &[u8; 16] = b"0123456789abcdef";

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return s.serialize_bytes(bytes);
        }
        let mut out = Vec::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push(DIGITS[usize::from(b >> 4)]);
            out.push(DIGITS[usize::from(b & 0x0f)]);
        }
        s.serialize_str(std::str::from_utf8(&out).expect("hex digits are ASCII"))
    }

    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a hex string or an array of bytes")
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<Vec<u8>, E> {
            let v = v.as_bytes();
            if !v.len().is_multiple_of(2) {
                return Err(E::custom("odd number of hex digits"));
            }
            v.chunks_exact(2)
                .map(|pair| match (nibble(pair[0]), nibble(pair[1])) {
                    (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
                    _ => Err(E::custom("not a hex digit")),
                })
                .collect()
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(BytesVisitor)
        } else {
            d.deserialize_byte_buf(BytesVisitor)
        }
    }

    #[cfg(test)]
    mod tests {
        use crate::types::Command;

        #[test]
        fn commands_are_hex_in_json_and_old_arrays_still_decode() {
            let cmd = Command(vec![0, 1, 0xab, 0xff, 0x10]);
            let json = serde_json::to_string(&cmd).unwrap();
            assert_eq!(json, "\"0001abff10\"");
            assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), cmd);
            let old: Command = serde_json::from_str("[0,1,171,255,16]").unwrap();
            assert_eq!(old, cmd);
            assert!(serde_json::from_str::<Command>("\"0g\"").is_err());
            assert!(serde_json::from_str::<Command>("\"012\"").is_err());
            assert!(serde_json::from_str::<Command>("[256]").is_err());
        }

        #[test]
        fn commands_are_plain_bytes_in_the_binary_encoding() {
            let cmd = Command(vec![0, 1, 0xab, 0xff, 0x10]);
            let bytes = crate::wire::encode(&cmd).unwrap();
            // A length prefix, then the bytes themselves.
            assert_eq!(bytes, [5, 0, 1, 0xab, 0xff, 0x10]);
            assert_eq!(crate::wire::decode::<Command>(&bytes).unwrap(), cmd);
            assert!(crate::wire::decode::<Command>(&bytes[..4]).is_err());
        }
    }
}
