//! Fields, messages, the standard header, and the reasons FIX gives for rejecting a message.

use serde::{Deserialize, Serialize};
use twinsite_core::Timestamp;

use crate::time::parse_utc_timestamp;

/// A field value: text, held inline up to 24 bytes (almost every FIX value), so reading a
/// message does not allocate per field. Derefs to `str`.
pub type FieldValue = compact_str::CompactString;

/// One `tag=value` pair. Values are kept as text; typed access goes through [`Message`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub tag: u32,
    pub value: FieldValue,
}

impl Field {
    pub fn new(tag: u32, value: impl Into<FieldValue>) -> Field {
        Field {
            tag,
            value: value.into(),
        }
    }
}

/// An application or session message without the standard header and trailer: the session
/// layer adds BeginString, BodyLength, SenderCompID, TargetCompID, MsgSeqNum, SendingTime,
/// PossDupFlag, OrigSendingTime and CheckSum. `body` keeps wire order, so repeating groups are
/// written as a count field followed by their entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Inline (no allocation): MsgType is one or two characters.
    pub msg_type: FieldValue,
    pub body: Vec<Field>,
}

impl Message {
    pub fn new(msg_type: &str) -> Message {
        Message {
            msg_type: msg_type.into(),
            body: Vec::new(),
        }
    }

    /// Append a field (builder style).
    pub fn with(mut self, tag: u32, value: impl Into<FieldValue>) -> Message {
        self.body.push(Field::new(tag, value));
        self
    }

    /// Append a field if the value is present.
    pub fn with_opt<V: Into<FieldValue>>(self, tag: u32, value: Option<V>) -> Message {
        match value {
            Some(v) => self.with(tag, v),
            None => self,
        }
    }

    pub fn push(&mut self, tag: u32, value: impl Into<FieldValue>) {
        self.body.push(Field::new(tag, value));
    }

    /// First top-level-or-nested occurrence of `tag`. For tags that may repeat inside groups use
    /// [`Message::group`].
    pub fn get(&self, tag: u32) -> Option<&str> {
        self.body
            .iter()
            .find(|f| f.tag == tag)
            .map(|f| f.value.as_str())
    }

    /// The entries of the repeating group counted by `count_tag`, each a slice of fields in
    /// wire order (nested groups included). Uses the dictionary to know the group's members.
    pub fn group(&self, count_tag: u32) -> Vec<&[Field]> {
        // Most messages have no group: no dictionary lookup then.
        if !self.body.iter().any(|f| f.tag == count_tag) {
            return Vec::new();
        }
        crate::dictionary::group_entries(&self.msg_type, &self.body, count_tag)
    }

    pub fn is_admin(&self) -> bool {
        is_admin_msg_type(&self.msg_type)
    }
}

/// Session-level message types: these are gap-filled, never replayed.
pub fn is_admin_msg_type(msg_type: &str) -> bool {
    matches!(msg_type, "0" | "1" | "2" | "3" | "4" | "5" | "A")
}

/// Tags of the FIXT.1.1 standard header twinsite accepts. OnBehalfOf*/DeliverTo* (115, 116,
/// 128, 129, 144, 145, 370) are not used by OCG-C, so they are unknown tags here and rejected.
pub const HEADER_TAGS: &[u32] = &[
    8, 9, 35, 34, 43, 49, 50, 52, 56, 57, 97, 122, 142, 143, 369, 1128,
];

pub fn is_header_tag(tag: u32) -> bool {
    header_index(tag).is_some()
}

/// Position of `tag` in [`HEADER_TAGS`] (a jump table, not a scan: every received field is
/// looked up).
fn header_index(tag: u32) -> Option<u32> {
    Some(match tag {
        8 => 0,
        9 => 1,
        35 => 2,
        34 => 3,
        43 => 4,
        49 => 5,
        50 => 6,
        52 => 7,
        56 => 8,
        57 => 9,
        97 => 10,
        122 => 11,
        142 => 12,
        143 => 13,
        369 => 14,
        1128 => 15,
        _ => return None,
    })
}

/// The standard header of a received message, read leniently: each field is `None` if absent
/// or malformed, and the session layer decides what that costs. Text values are held inline
/// (reading a header does not allocate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub begin_string: FieldValue,
    pub msg_type: FieldValue,
    pub msg_seq_num: Option<u64>,
    pub sender_comp_id: Option<FieldValue>,
    pub target_comp_id: Option<FieldValue>,
    pub sending_time: Option<Timestamp>,
    pub sending_time_present: bool,
    pub poss_dup: bool,
    pub poss_resend: bool,
    pub orig_sending_time: Option<Timestamp>,
    pub orig_sending_time_present: bool,
}

impl Header {
    /// A header with its BeginString and MsgType and no other field yet.
    pub fn new(begin_string: FieldValue, msg_type: FieldValue) -> Header {
        Header {
            begin_string,
            msg_type,
            msg_seq_num: None,
            sender_comp_id: None,
            target_comp_id: None,
            sending_time: None,
            sending_time_present: false,
            poss_dup: false,
            poss_resend: false,
            orig_sending_time: None,
            orig_sending_time_present: false,
        }
    }
}

/// A framed message split into header and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub header: Header,
    /// Body fields in wire order (no header or trailer tags).
    pub message: Message,
    /// A header tag appeared after the first body tag (SessionRejectReason 14).
    pub header_out_of_order: Option<u32>,
    /// A header tag appeared twice.
    pub header_duplicate: Option<u32>,
}

/// Why a framed message cannot be read at all: FIX treats these as garbled and ignores them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GarbledError {
    #[error(transparent)]
    Tokenize(#[from] crate::codec::TokenizeError),
    #[error("the first three fields must be 8, 9 and 35")]
    BadPrefix,
    #[error("MsgType (35) is empty")]
    EmptyMsgType,
}

/// Split a checksum-valid frame into header and body. The fields are read in one pass
/// ([`crate::codec::Tokens`]): each body value is copied once, into the body, and header values
/// are held inline.
/// One standard-header field's value into the header (the tags `read_frame` keeps; others
/// are ignored).
fn set_header_field(header: &mut Header, tag: u32, v: &str) {
    match tag {
        34 => header.msg_seq_num = parse_seq_num(v),
        49 => header.sender_comp_id = Some(v.into()),
        56 => header.target_comp_id = Some(v.into()),
        52 => {
            header.sending_time_present = true;
            header.sending_time = parse_utc_timestamp(v);
        }
        43 => header.poss_dup = v == "Y",
        97 => header.poss_resend = v == "Y",
        122 => {
            header.orig_sending_time_present = true;
            header.orig_sending_time = parse_utc_timestamp(v);
        }
        _ => {}
    }
}

pub fn read_frame(frame: &[u8]) -> Result<Received, GarbledError> {
    let mut tokens = crate::codec::Tokens::new(frame);
    // The first three fields must be 8, 9 and 35; the last one 10. A malformed prefix is
    // reported only if the whole frame tokenizes (a tokenizing error comes first).
    let mut prefix: [(u32, &str); 3] = [(0, ""); 3];
    let mut count = 0;
    for slot in prefix.iter_mut() {
        match tokens.next() {
            Some(f) => {
                *slot = f?;
                count += 1;
            }
            None => break,
        }
    }
    let bad_prefix = count < 3 || prefix[0].0 != 8 || prefix[1].0 != 9 || prefix[2].0 != 35;
    let mut header = Header::new(prefix[0].1.into(), prefix[2].1.into());
    let mut body = Vec::with_capacity(24);
    let mut header_out_of_order = None;
    let mut header_duplicate = None;
    // Bit i: HEADER_TAGS[i] was seen.
    let mut seen: u32 = 0;
    // The field before the current one: it was the trailer only if nothing follows it.
    let mut last: Option<(u32, &str)> = None;
    for field in tokens {
        let field = field?;
        let Some((tag, v)) = last.replace(field) else {
            continue;
        };
        let Some(index) = header_index(tag) else {
            body.push(Field::new(tag, v));
            continue;
        };
        if matches!(tag, 8 | 9 | 35) || seen & (1 << index) != 0 {
            header_duplicate.get_or_insert(tag);
            continue;
        }
        seen |= 1 << index;
        if !body.is_empty() {
            header_out_of_order.get_or_insert(tag);
        }
        set_header_field(&mut header, tag, v);
    }
    if bad_prefix {
        return Err(GarbledError::BadPrefix);
    }
    if header.msg_type.is_empty() {
        return Err(GarbledError::EmptyMsgType);
    }
    if last.is_none_or(|(tag, _)| tag != 10) {
        return Err(GarbledError::BadPrefix);
    }
    Ok(Received {
        message: Message {
            msg_type: header.msg_type.clone(),
            body,
        },
        header,
        header_out_of_order,
        header_duplicate,
    })
}

/// A positive sequence number without sign or leading zeros... leading zeros are tolerated.
pub fn parse_seq_num(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|&n| n > 0)
}

/// FIX SessionRejectReason (373) values twinsite sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionRejectReason {
    InvalidTagNumber = 0,
    RequiredTagMissing = 1,
    TagNotDefinedForThisMessageType = 2,
    UndefinedTag = 3,
    TagSpecifiedWithoutAValue = 4,
    ValueIsIncorrect = 5,
    IncorrectDataFormat = 6,
    CompIdProblem = 9,
    SendingTimeAccuracyProblem = 10,
    InvalidMsgType = 11,
    TagAppearsMoreThanOnce = 13,
    TagSpecifiedOutOfRequiredOrder = 14,
    RepeatingGroupFieldsOutOfOrder = 15,
    IncorrectNumInGroupCount = 16,
    Other = 99,
}

impl SessionRejectReason {
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// A message-level violation: the Reject (35=3) to send, in data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason:?} (373={}) on tag {ref_tag_id:?}: {text}", .reason.code())]
pub struct Violation {
    pub reason: SessionRejectReason,
    pub ref_tag_id: Option<u32>,
    pub text: String,
}

impl Violation {
    pub fn new(
        reason: SessionRejectReason,
        ref_tag_id: Option<u32>,
        text: impl Into<String>,
    ) -> Self {
        Violation {
            reason,
            ref_tag_id,
            text: text.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode, BEGIN_STRING};

    #[test]
    fn read_frame_splits_header_and_body() {
        let bytes = encode(
            BEGIN_STRING,
            &[
                Field::new(35, "D"),
                Field::new(49, "CO01"),
                Field::new(56, "HKEX"),
                Field::new(34, "7"),
                Field::new(43, "Y"),
                Field::new(52, "20231125-01:02:03.456"),
                Field::new(122, "20231125-01:02:00"),
                Field::new(11, "1"),
            ],
        );
        let r = read_frame(&bytes).unwrap();
        assert_eq!(r.header.msg_seq_num, Some(7));
        assert!(r.header.poss_dup);
        assert!(r.header.orig_sending_time.is_some());
        assert_eq!(r.message.body, vec![Field::new(11, "1")]);
        assert_eq!(r.header_out_of_order, None);
    }

    #[test]
    fn header_tag_after_body_is_flagged() {
        let bytes = encode(
            BEGIN_STRING,
            &[
                Field::new(35, "0"),
                Field::new(112, "x"),
                Field::new(34, "2"),
            ],
        );
        assert_eq!(read_frame(&bytes).unwrap().header_out_of_order, Some(34));
    }

    /// The reading rules spelt out the simple way (every field tokenized first, then the
    /// prefix, the trailer, and the header fields between): `read_frame` must agree.
    fn read_frame_reference(frame: &[u8]) -> Result<Received, GarbledError> {
        let fields = crate::codec::tokenize(frame)?;
        if fields.len() < 4 || fields[0].tag != 8 || fields[1].tag != 9 || fields[2].tag != 35 {
            return Err(GarbledError::BadPrefix);
        }
        if fields[2].value.is_empty() {
            return Err(GarbledError::EmptyMsgType);
        }
        if fields[fields.len() - 1].tag != 10 {
            return Err(GarbledError::BadPrefix);
        }
        let mut header = Header::new(fields[0].value.clone(), fields[2].value.clone());
        let (mut body, mut out_of_order, mut duplicate, mut seen) =
            (Vec::new(), None, None, Vec::new());
        for f in &fields[3..fields.len() - 1] {
            if !is_header_tag(f.tag) {
                body.push(f.clone());
                continue;
            }
            if matches!(f.tag, 8 | 9 | 35) || seen.contains(&f.tag) {
                duplicate.get_or_insert(f.tag);
                continue;
            }
            seen.push(f.tag);
            if !body.is_empty() {
                out_of_order.get_or_insert(f.tag);
            }
            set_header_field(&mut header, f.tag, f.value.as_str());
        }
        Ok(Received {
            message: Message {
                msg_type: header.msg_type.clone(),
                body,
            },
            header,
            header_out_of_order: out_of_order,
            header_duplicate: duplicate,
        })
    }

    proptest::proptest! {
        #![proptest_config(crate::proptest_config(2048))]
        #[test]
        fn read_frame_agrees_with_the_reference(parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("8=FIXT.1.1\x01".to_string()),
                proptest::strategy::Just("9=12\x01".to_string()),
                proptest::strategy::Just("35=D\x01".to_string()),
                proptest::strategy::Just("35=\x01".to_string()),
                proptest::strategy::Just("10=123\x01".to_string()),
                proptest::strategy::Just("52=20231125-01:02:03.456\x01".to_string()),
                proptest::strategy::Just("95=3\x0196=a\x01b\x01".to_string()),
                "(8|9|10|34|35|43|49|52|56|97|122|11|44|38)=[A-Z0-9]{0,3}\x01",
                "[0-9=\x01A]{1,4}",
            ], 0..16)) {
            let bytes = parts.concat().into_bytes();
            proptest::prop_assert_eq!(read_frame(&bytes), read_frame_reference(&bytes));
        }
    }

    #[test]
    fn header_index_is_the_position_in_header_tags() {
        for tag in 0..2_000u32 {
            let expected = HEADER_TAGS.iter().position(|&t| t == tag).map(|i| i as u32);
            assert_eq!(header_index(tag), expected, "tag {tag}");
        }
    }

    #[test]
    fn msg_type_must_be_third() {
        let bytes = encode(BEGIN_STRING, &[Field::new(34, "1"), Field::new(35, "0")]);
        assert_eq!(read_frame(&bytes), Err(GarbledError::BadPrefix));
    }
}
