//! Codec errors. Framing errors ([`DecodeError::is_fatal`]) mean the byte stream can no longer
//! be trusted and the connection must be dropped; body errors leave the stream intact and are
//! answered with a session-level Reject by the server.

/// A problem with one field value, before the message and bit are known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("field runs past the end of the message")]
    Truncated,
    #[error("string of {len} characters exceeds the limit of {max}")]
    StringTooLong { len: usize, max: usize },
    #[error("string is not ASCII or contains a NUL")]
    BadString,
    #[error("variable-length string has length 0 (the length must count the NUL)")]
    BadVarLength,
    #[error("value {0} is not defined for this field")]
    BadEnum(u64),
    #[error("mandatory field at bit {0} of a repeating block is missing")]
    MissingInBlock(u16),
    #[error("undefined bit {0} set in a repeating block's presence map")]
    UndefinedBitInBlock(u16),
}

/// Errors while decoding OCG-C bytes. `msg` is the message type, `bit` the body field's bit
/// position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame starts with 0x{0:02x}, not STX 0x02")]
    BadStx(u8),
    #[error("frame length {0} is outside 58..=max frame length")]
    BadLength(u16),
    #[error("CRC-32C mismatch: frame says 0x{received:08x}, computed 0x{computed:08x}")]
    BadCrc { received: u32, computed: u32 },
    #[error("header field {field} has an invalid value")]
    BadHeader { field: &'static str },
    #[error("message is shorter than its fields")]
    Truncated { msg: u8, bit: u16 },
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    #[error("message type {msg}: mandatory field at bit {bit} is missing")]
    MissingMandatoryField { msg: u8, bit: u16 },
    #[error("message type {msg}: bit {bit} is set but no field is defined there")]
    UndefinedBitSet { msg: u8, bit: u16 },
    #[error("message type {msg}, bit {bit}: string of {len} characters exceeds {max}")]
    StringTooLong {
        msg: u8,
        bit: u16,
        len: usize,
        max: usize,
    },
    #[error("message type {msg}, bit {bit}: string is not ASCII")]
    BadString { msg: u8, bit: u16 },
    #[error("message type {msg}, bit {bit}: variable-length string with length 0")]
    BadVarLength { msg: u8, bit: u16 },
    #[error("message type {msg}, bit {bit}: value {value} is not defined")]
    BadEnum { msg: u8, bit: u16, value: u64 },
    #[error("message type {msg}: {extra} bytes after the last present field")]
    TrailingBytes { msg: u8, extra: usize },
}

impl DecodeError {
    /// Framing errors: the stream is unusable and the connection must be dropped (silently,
    /// reference §1.3 for a bad CRC).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            DecodeError::BadStx(_)
                | DecodeError::BadLength(_)
                | DecodeError::BadCrc { .. }
                | DecodeError::BadHeader { .. }
        )
    }

    /// The session-level Reject code (reference §1.5) for a body error, and the bit of the
    /// field at fault.
    pub fn reject_code(&self) -> (u16, Option<u16>) {
        use crate::enums::MessageRejectCode as C;
        let (code, bit) = match *self {
            DecodeError::MissingMandatoryField { bit, .. } => (C::RequiredFieldMissing, Some(bit)),
            DecodeError::UndefinedBitSet { bit, .. } => (C::UndefinedField, Some(bit)),
            DecodeError::BadEnum { bit, .. } => (C::ValueIncorrect, Some(bit)),
            DecodeError::StringTooLong { bit, .. }
            | DecodeError::BadString { bit, .. }
            | DecodeError::BadVarLength { bit, .. }
            | DecodeError::Truncated { bit, .. } => (C::IncorrectDataFormat, Some(bit)),
            DecodeError::UnknownMessageType(_) => (C::InvalidMessageType, None),
            _ => (C::Other, None),
        };
        (code.to_wire(), bit)
    }

    pub(crate) fn from_field(e: FieldError, msg: u8, bit: u16) -> Self {
        match e {
            FieldError::Truncated => DecodeError::Truncated { msg, bit },
            FieldError::StringTooLong { len, max } => {
                DecodeError::StringTooLong { msg, bit, len, max }
            }
            FieldError::BadString => DecodeError::BadString { msg, bit },
            FieldError::BadVarLength => DecodeError::BadVarLength { msg, bit },
            FieldError::BadEnum(value) => DecodeError::BadEnum { msg, bit, value },
            // Errors inside a repeating block are reported at the group's own bit.
            FieldError::MissingInBlock(_) => DecodeError::MissingMandatoryField { msg, bit },
            FieldError::UndefinedBitInBlock(_) => DecodeError::UndefinedBitSet { msg, bit },
        }
    }
}

/// Errors while encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("encoded frame of {0} bytes exceeds the UInt16 length field")]
    FrameTooLong(usize),
}
