//! Enumerated field values (reference §1.5, §1.9-§1.11). Fields whose value list the reference
//! gives completely are Rust enums and an undefined value is a decode error (`BadEnum`). Reject
//! and reason codes, which the exchange may extend, are plain integers with named constants so
//! that a client never loses a whole Execution Report over a new code.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::wire::{Reader, WireField};

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident : $repr:ty { $($(#[$vm:meta])* $var:ident = $val:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* $var),* }
        impl $name {
            /// Every defined value, in the reference's order.
            pub const ALL: &'static [$name] = &[$($name::$var),*];
            pub fn to_wire(self) -> $repr {
                match self { $($name::$var => $val),* }
            }
            pub fn from_wire(v: $repr) -> Option<Self> {
                $(if v == $val { return Some($name::$var); })*
                None
            }
        }
        impl WireField for $name {
            fn put(&self, out: &mut Vec<u8>) {
                self.to_wire().put(out)
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, FieldError> {
                let v = <$repr>::get(r)?;
                $name::from_wire(v).ok_or(FieldError::BadEnum(v as u64))
            }
        }
    };
}

wire_enum!(
    /// Session Status (Logon, Logout).
    SessionStatus: u8 {
        Active = 0,
        PasswordChanged = 1,
        PasswordDueToExpire = 2,
        NewPasswordViolatesPolicy = 3,
        LogoutComplete = 4,
        InvalidUsernameOrPassword = 5,
        AccountLocked = 6,
        LogonsNotAllowed = 7,
        PasswordExpired = 8,
        PasswordChangeRequired = 100,
        Other = 101,
    }
);

wire_enum!(
    /// Message Reject Code (session-level Reject).
    MessageRejectCode: u16 {
        RequiredFieldMissing = 1,
        FieldNotDefinedForMessage = 2,
        UndefinedField = 3,
        FieldWithoutValue = 4,
        ValueIncorrect = 5,
        IncorrectDataFormat = 6,
        CompIdProblem = 9,
        InvalidMessageType = 11,
        FieldRepeated = 13,
        Other = 99,
    }
);

wire_enum!(
    /// Lookup Response Status.
    LookupStatus: u8 { Accepted = 0, Rejected = 1 }
);

wire_enum!(
    /// Lookup Reject Code.
    LookupRejectCode: u8 {
        InvalidClient = 0,
        InvalidServiceType = 1,
        InvalidProtocol = 2,
        ClientBlocked = 3,
        Other = 4,
    }
);

wire_enum!(
    /// Sequence Reset Gap Fill (Byte). Absent means Reset.
    GapFill: u8 { GapFill = b'Y', Reset = b'N' }
);

wire_enum!(
    /// Test Message Indicator (Logon).
    TestMessageIndicator: u8 { Production = 0, Test = 1 }
);

wire_enum!(
    /// Business Reject Code.
    BusinessRejectCode: u16 {
        Other = 0,
        UnknownId = 1,
        UnknownSecurity = 2,
        UnsupportedMessageType = 3,
        ApplicationNotAvailable = 4,
        ConditionallyRequiredFieldMissing = 5,
        ThrottleLimitExceeded = 8,
    }
);

wire_enum!(
    /// Side. Sell Short is a wire value; the book only has buy and sell.
    Side: u8 { Buy = 1, Sell = 2, SellShort = 5 }
);

impl Side {
    /// The side of the book.
    pub fn book_side(self) -> twinsite_core::Side {
        match self {
            Side::Buy => twinsite_core::Side::Buy,
            Side::Sell | Side::SellShort => twinsite_core::Side::Sell,
        }
    }
}

wire_enum!(
    /// Order Type.
    OrdType: u8 { Market = 1, Limit = 2 }
);

wire_enum!(
    /// Time In Force.
    TimeInForce: u8 { Day = 0, ImmediateOrCancel = 3, FillOrKill = 4, AtCrossing = 9 }
);

wire_enum!(
    /// Position Effect.
    PositionEffect: u8 { Close = 1 }
);

wire_enum!(
    /// Order Capacity.
    OrderCapacity: u8 { Agency = 1, Principal = 2 }
);

wire_enum!(
    /// Lot Type. Absent means board lot.
    LotType: u8 { OddLot = 1, BoardLot = 2 }
);

wire_enum!(
    /// Exec Type (Byte).
    ExecType: u8 {
        New = b'0',
        Reject = b'8',
        Expire = b'C',
        Trade = b'F',
        Cancel = b'4',
        Amend = b'5',
        TradeCancel = b'H',
        TriggeredBySystem = b'L',
        CancelReject = b'X',
        AmendReject = b'Y',
    }
);

wire_enum!(
    /// Order Status.
    OrdStatus: u8 {
        New = 0,
        PartiallyFilled = 1,
        Filled = 2,
        Cancelled = 4,
        PendingCancel = 6,
        Rejected = 8,
        PendingNew = 10,
        Expired = 12,
        PendingAmend = 14,
    }
);

wire_enum!(
    /// Match Type.
    MatchType: u8 { AutoMatch = 4, CrossAuction = 5 }
);

wire_enum!(
    /// Order Category.
    OrderCategory: u8 { InternalCross = 1 }
);

wire_enum!(
    /// Aggressor Indicator.
    AggressorIndicator: u8 { Passive = 0, Aggressor = 1 }
);

wire_enum!(
    /// Mass Cancel Request Type.
    MassCancelRequestType: u8 { Security = 1, All = 7, MarketSegment = 9 }
);

wire_enum!(
    /// Mass Cancel Response.
    MassCancelResponse: u8 { Rejected = 0, Security = 1, All = 7, MarketSegment = 9 }
);

wire_enum!(
    /// Quote Status.
    QuoteStatus: u8 { Accepted = 0, CancelForSymbol = 1, Rejected = 5, NotFound = 9 }
);

/// Order Reject Code values (Execution Report bit 26).
pub mod order_reject_code {
    pub const EXCEEDS_LIMIT: u16 = 3;
    pub const DUPLICATE_ORDER: u16 = 6;
    pub const INCORRECT_QUANTITY: u16 = 13;
    pub const PRICE_OUTSIDE_BAND: u16 = 16;
    pub const REFERENCE_PRICE_UNAVAILABLE: u16 = 19;
    pub const NOTIONAL_EXCEEDS_THRESHOLD: u16 = 20;
    pub const OTHER: u16 = 99;
    pub const PRICE_OUTSIDE_BAND_NO_OVERRIDE: u16 = 101;
    pub const PRICE_OUTSIDE_BAND_102: u16 = 102;
}

/// Cancel Reject Code values (Execution Report bit 29).
pub mod cancel_reject_code {
    pub const TOO_LATE: u16 = 0;
    pub const UNKNOWN_ORDER: u16 = 1;
    pub const PENDING_CANCEL_OR_REPLACE: u16 = 3;
    pub const DUPLICATE_CLORDID: u16 = 6;
    pub const OTHER: u16 = 99;
}

/// Exec Restatement Reason values (Execution Report bit 28).
pub mod exec_restatement_reason {
    pub const HALT_OR_VCM: u16 = 6;
    pub const MARKET_OPERATIONS: u16 = 8;
    pub const FAILED_CANCEL_REPLACE: u16 = 100;
    pub const OBO_SINGLE: u16 = 101;
    pub const OBO_MASS: u16 = 102;
    pub const MASS_CANCEL_BY_BROKER: u16 = 103;
    pub const CANCEL_ON_DISCONNECT: u16 = 104;
    pub const BROKER_SUSPENDED: u16 = 105;
    pub const EP_SUSPENDED: u16 = 106;
    pub const SYSTEM_CANCEL: u16 = 107;
}

/// Security ID Source value the exchange accepts (Exchange Symbol).
pub const SECURITY_ID_SOURCE_EXCHANGE_SYMBOL: u8 = 8;
/// Security Exchange value.
pub const SECURITY_EXCHANGE_XHKG: &str = "XHKG";
/// Lookup Request Type of Service: Order Input.
pub const LOOKUP_SERVICE_ORDER_INPUT: u8 = 1;
/// Lookup Request Protocol Type: Binary.
pub const LOOKUP_PROTOCOL_BINARY: u8 = 1;
/// Lookup Request Protocol Type: FIX. INFERRED: the reference documents only 1 = Binary (its
/// FIX section found no connection procedure); a Protocol Type field implies other values, and
/// 2 for FIX is the plausible one. The Lookup Service answers it with the FIX gateway's
/// endpoints for a FIX Comp ID (see `LookupService::fix_gateways`).
pub const LOOKUP_PROTOCOL_FIX: u8 = 2;
