//! The data dictionary: the fields and messages twinsite's OCG-C FIX interface uses.
//!
//! Written by hand as two tables ([`FIELDS`], sorted by tag, and [`MESSAGES`]) rather than
//! generated: the set is small (about 150 fields, 24 messages), a table is easy to review against
//! the reference, and a test checks the invariants a generator would guarantee (sorted, unique,
//! every member defined, group delimiters first). Tags come from the FIX 5.0 SP2 / FIXT.1.1
//! repository plus the exchange's custom tag 5681 ExchangeTradeType.

use crate::message::{is_header_tag, Field, SessionRejectReason as R, Violation};
use crate::time::parse_utc_timestamp;

/// FIX data types, as far as validation needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Int,
    SeqNum,
    Length,
    NumInGroup,
    Qty,
    Price,
    Char,
    Boolean,
    String,
    MultipleCharValue,
    UtcTimestamp,
    Data,
}

/// One field: tag, FIX name, type and, if the field is an enumeration, its allowed values.
#[derive(Debug)]
pub struct FieldDef {
    pub tag: u32,
    pub name: &'static str,
    pub field_type: FieldType,
    pub values: &'static [&'static str],
}

/// A member of a message or group: a field or a nested group, required or not.
#[derive(Debug, Clone, Copy)]
pub enum Member {
    Field {
        tag: u32,
        required: bool,
    },
    Group {
        def: &'static GroupDef,
        required: bool,
    },
}

impl Member {
    pub fn tag(&self) -> u32 {
        match self {
            Member::Field { tag, .. } => *tag,
            Member::Group { def, .. } => def.count_tag,
        }
    }
    fn required(&self) -> bool {
        match self {
            Member::Field { required, .. } | Member::Group { required, .. } => *required,
        }
    }
}

/// A repeating group: its NumInGroup tag and members; the first member delimits entries.
#[derive(Debug)]
pub struct GroupDef {
    pub count_tag: u32,
    pub members: &'static [Member],
}

/// One message type.
#[derive(Debug)]
pub struct MessageDef {
    pub msg_type: &'static str,
    pub name: &'static str,
    pub members: &'static [Member],
}

const fn req(tag: u32) -> Member {
    Member::Field {
        tag,
        required: true,
    }
}
const fn opt(tag: u32) -> Member {
    Member::Field {
        tag,
        required: false,
    }
}
const fn group(def: &'static GroupDef) -> Member {
    Member::Group {
        def,
        required: false,
    }
}

use FieldType as T;

macro_rules! fields {
    ($( $tag:literal $name:ident $ty:ident $([$($v:literal),*])? ;)*) => {
        /// Every field twinsite knows, sorted by tag.
        pub const FIELDS: &[FieldDef] = &[
            $(FieldDef { tag: $tag, name: stringify!($name), field_type: T::$ty,
                values: &[$($($v),*)?] },)*
        ];
    };
}

fields! {
    7 BeginSeqNo SeqNum;
    8 BeginString String;
    9 BodyLength Length;
    10 CheckSum String;
    11 ClOrdID String;
    14 CumQty Qty;
    16 EndSeqNo Int;
    17 ExecID String;
    18 ExecInst MultipleCharValue;
    19 ExecRefID String;
    22 SecurityIDSource String ["8"];
    31 LastPx Price;
    32 LastQty Qty;
    34 MsgSeqNum SeqNum;
    35 MsgType String;
    36 NewSeqNo SeqNum;
    37 OrderID String;
    38 OrderQty Qty;
    39 OrdStatus Char ["0", "1", "2", "4", "6", "8", "A", "C", "E"];
    40 OrdType Char ["1", "2"];
    41 OrigClOrdID String;
    43 PossDupFlag Boolean;
    44 Price Price;
    45 RefSeqNum SeqNum;
    48 SecurityID String;
    49 SenderCompID String;
    52 SendingTime UtcTimestamp;
    54 Side Char ["1", "2", "5"];
    56 TargetCompID String;
    58 Text String;
    59 TimeInForce Char ["0", "3", "4", "9"];
    60 TransactTime UtcTimestamp;
    77 PositionEffect Char ["C"];
    97 PossResend Boolean;
    98 EncryptMethod Int ["0"];
    102 CxlRejReason Int;
    103 OrdRejReason Int;
    108 HeartBtInt Int;
    112 TestReqID String;
    122 OrigSendingTime UtcTimestamp;
    123 GapFillFlag Boolean;
    132 BidPx Price;
    133 OfferPx Price;
    134 BidSize Qty;
    135 OfferSize Qty;
    141 ResetSeqNumFlag Boolean ["N"];
    150 ExecType Char ["0", "4", "5", "8", "C", "D", "F", "H", "L"];
    151 LeavesQty Qty;
    207 SecurityExchange String ["XHKG"];
    295 NoQuoteEntries NumInGroup;
    297 QuoteStatus Int ["0", "1", "5", "9"];
    298 QuoteCancelType Int ["1"];
    300 QuoteRejectReason Int;
    371 RefTagID Int;
    372 RefMsgType String;
    373 SessionRejectReason Int;
    378 ExecRestatementReason Int;
    379 BusinessRejectRefID String;
    380 BusinessRejectReason Int;
    390 BidID String;
    434 CxlRejResponseTo Char ["1", "2"];
    447 PartyIDSource Char;
    448 PartyID String;
    452 PartyRole Int;
    453 NoPartyIDs NumInGroup;
    464 TestMessageIndicator Boolean;
    528 OrderCapacity Char ["A", "P"];
    529 OrderRestrictions MultipleCharValue ["2", "5", "6"];
    530 MassCancelRequestType Char ["1", "7", "9"];
    531 MassCancelResponse Char ["0", "1", "7", "9"];
    532 MassCancelRejectReason Int;
    537 QuoteType Int ["1"];
    553 Username String;
    554 Password String;
    574 MatchType String;
    789 NextExpectedMsgSeqNum SeqNum;
    880 TrdMatchID String;
    893 LastFragment Boolean;
    923 UserRequestID String;
    924 UserRequestType Int ["1", "2", "3", "4", "5"];
    925 NewPassword String;
    926 UserStatus Int;
    927 UserStatusText String;
    1057 AggressorIndicator Boolean;
    1090 MaxPriceLevels Int ["1"];
    1093 LotType Char ["1", "2"];
    1115 OrderCategory Char;
    1128 ApplVerID String ["9"];
    1137 DefaultApplVerID String ["9"];
    1166 QuoteMsgID String;
    1300 MarketSegmentID String;
    1328 RejectText String;
    1369 MassActionReportID String;
    1400 EncryptedPasswordMethod Int;
    1401 EncryptedPasswordLen Length;
    1402 EncryptedPassword Data;
    1403 EncryptedNewPasswordLen Length;
    1404 EncryptedNewPassword Data;
    1409 SessionStatus Int;
    1511 RequestResult Int;
    1512 TotNoPartyList Int;
    1535 InstrumentScopeOperator Int;
    1538 InstrumentScopeSecurityID String;
    1539 InstrumentScopeSecurityIDSource String;
    1610 NoThrottles NumInGroup;
    1611 ThrottleAction Int;
    1612 ThrottleType Int;
    1613 ThrottleNoMsgs Int;
    1614 ThrottleTimeInterval Int;
    1615 ThrottleTimeUnit Int;
    1616 InstrumentScopeSecurityExchange String;
    1656 NoInstrumentScopes NumInGroup;
    1671 NoPartyDetails NumInGroup;
    1691 PartyDetailID String;
    1692 PartyDetailIDSource Char;
    1693 PartyDetailRole Int;
    1770 EntitlementRequestID String;
    1771 EntitlementReportID String;
    1772 NoPartyEntitlements NumInGroup;
    1773 NoEntitlements NumInGroup;
    1774 EntitlementIndicator Boolean;
    1775 EntitlementType Int;
    1776 EntitlementID String;
    1777 NoEntitlementAttrib NumInGroup;
    1778 EntitlementAttribType Int;
    1779 EntitlementAttribDatatype Int;
    1780 EntitlementAttribValue String;
    1812 NoDisclosureInstructions NumInGroup;
    1813 DisclosureType Int;
    1814 DisclosureInstruction Int;
    1867 OfferID String;
    1868 NoValueChecks NumInGroup;
    1869 ValueCheckType Int ["1", "2"];
    1870 ValueCheckAction Int ["0", "1", "2"];
    5681 ExchangeTradeType Char ["M", "S", "Q", "P", "R", "V", "E", "O"];
}

/// Parties (453): broker ids, location and BCAN are carried as party ids (see `app`).
pub static PARTIES: GroupDef = GroupDef {
    count_tag: 453,
    members: &[req(448), opt(447), opt(452)],
};
/// ValueChecksGrp (1868): the FIX form of binary Execution Instructions.
pub static VALUE_CHECKS: GroupDef = GroupDef {
    count_tag: 1868,
    members: &[req(1869), req(1870)],
};
/// DisclosureInstructionGrp (1812).
pub static DISCLOSURE: GroupDef = GroupDef {
    count_tag: 1812,
    members: &[req(1813), req(1814)],
};
/// QuotCxlEntriesGrp (295), instrument only.
pub static QUOTE_CANCEL_ENTRIES: GroupDef = GroupDef {
    count_tag: 295,
    members: &[req(48), opt(22), opt(207)],
};
/// ThrottleParamsGrp (1610).
pub static THROTTLES: GroupDef = GroupDef {
    count_tag: 1610,
    members: &[req(1611), opt(1612), opt(1613), opt(1614), opt(1615)],
};
pub static PARTY_DETAILS: GroupDef = GroupDef {
    count_tag: 1671,
    members: &[req(1691), opt(1692), opt(1693)],
};
pub static ENTITLEMENT_ATTRIBUTES: GroupDef = GroupDef {
    count_tag: 1777,
    members: &[req(1778), opt(1779), opt(1780)],
};
pub static INSTRUMENT_SCOPES: GroupDef = GroupDef {
    count_tag: 1656,
    members: &[req(1535), opt(1538), opt(1539), opt(1616)],
};
pub static ENTITLEMENTS: GroupDef = GroupDef {
    count_tag: 1773,
    members: &[
        req(1774),
        opt(1775),
        opt(1776),
        group(&ENTITLEMENT_ATTRIBUTES),
        group(&INSTRUMENT_SCOPES),
    ],
};
pub static PARTY_ENTITLEMENTS: GroupDef = GroupDef {
    count_tag: 1772,
    members: &[group(&PARTY_DETAILS), group(&ENTITLEMENTS)],
};

/// The fields a new order and a cancel/replace share.
pub const ORDER_FIELDS: &[Member] = &[
    group(&PARTIES),
    req(48),
    req(22),
    opt(207),
    req(60),
    req(54),
    req(40),
    opt(44),
    req(38),
    opt(59),
    opt(77),
    opt(529),
    opt(1090),
    opt(528),
    opt(58),
    opt(18),
    group(&VALUE_CHECKS),
    group(&DISCLOSURE),
    opt(1093),
];

macro_rules! members {
    ($($m:expr),* $(,)?) => { &[$($m),*] };
}

/// Every message type twinsite sends or accepts.
pub static MESSAGES: &[MessageDef] = &[
    MessageDef {
        msg_type: "0",
        name: "Heartbeat",
        members: members![opt(112)],
    },
    MessageDef {
        msg_type: "1",
        name: "TestRequest",
        members: members![req(112)],
    },
    MessageDef {
        msg_type: "2",
        name: "ResendRequest",
        members: members![req(7), req(16)],
    },
    MessageDef {
        msg_type: "3",
        name: "Reject",
        members: members![req(45), opt(371), opt(372), opt(373), opt(58)],
    },
    MessageDef {
        msg_type: "4",
        name: "SequenceReset",
        members: members![opt(123), req(36)],
    },
    MessageDef {
        msg_type: "5",
        name: "Logout",
        members: members![opt(1409), opt(58)],
    },
    MessageDef {
        msg_type: "A",
        name: "Logon",
        members: members![
            req(98),
            req(108),
            req(789),
            opt(141),
            opt(554),
            opt(925),
            opt(1400),
            opt(1401),
            opt(1402),
            opt(1403),
            opt(1404),
            opt(1409),
            req(1137),
            opt(464),
            opt(58),
        ],
    },
    MessageDef {
        msg_type: "j",
        name: "BusinessMessageReject",
        members: members![opt(45), req(372), opt(379), req(380), opt(58)],
    },
    MessageDef {
        msg_type: "D",
        name: "NewOrderSingle",
        members: members![req(11)],
    },
    MessageDef {
        msg_type: "F",
        name: "OrderCancelRequest",
        members: members![
            req(11),
            opt(41),
            opt(37),
            group(&PARTIES),
            req(48),
            req(22),
            opt(207),
            req(54),
            req(60),
            opt(58),
        ],
    },
    MessageDef {
        msg_type: "G",
        name: "OrderCancelReplaceRequest",
        members: members![req(11), req(41), opt(37)],
    },
    MessageDef {
        msg_type: "q",
        name: "OrderMassCancelRequest",
        members: members![
            req(11),
            group(&PARTIES),
            req(530),
            opt(48),
            opt(22),
            opt(207),
            opt(54),
            opt(1300),
            req(60),
            opt(58),
        ],
    },
    MessageDef {
        msg_type: "8",
        name: "ExecutionReport",
        members: members![
            req(37),
            opt(11),
            opt(41),
            req(17),
            req(150),
            req(39),
            group(&PARTIES),
            req(48),
            opt(22),
            opt(207),
            req(54),
            opt(40),
            opt(44),
            opt(38),
            opt(59),
            opt(77),
            opt(529),
            opt(1090),
            opt(528),
            opt(58),
            opt(1328),
            req(14),
            req(151),
            opt(32),
            opt(31),
            opt(60),
            opt(103),
            opt(378),
            opt(1093),
            opt(574),
            opt(19),
            opt(1115),
            opt(880),
            opt(5681),
            opt(1057),
        ],
    },
    MessageDef {
        msg_type: "9",
        name: "OrderCancelReject",
        members: members![
            req(37),
            req(11),
            opt(41),
            req(39),
            req(434),
            opt(102),
            opt(58),
            opt(1328),
            opt(60),
        ],
    },
    MessageDef {
        msg_type: "r",
        name: "OrderMassCancelReport",
        members: members![
            opt(11),
            req(1369),
            req(530),
            req(531),
            opt(532),
            group(&PARTIES),
            opt(48),
            opt(22),
            opt(207),
            opt(54),
            opt(1300),
            req(60),
            opt(58),
            opt(1328),
        ],
    },
    MessageDef {
        msg_type: "S",
        name: "Quote",
        members: members![
            req(390),
            req(1867),
            group(&PARTIES),
            req(48),
            req(22),
            opt(207),
            opt(537),
            opt(54),
            req(132),
            req(133),
            req(134),
            req(135),
            req(60),
            opt(77),
            opt(529),
            opt(58),
            group(&VALUE_CHECKS),
        ],
    },
    MessageDef {
        msg_type: "Z",
        name: "QuoteCancel",
        members: members![
            req(1166),
            req(298),
            group(&PARTIES),
            group(&QUOTE_CANCEL_ENTRIES),
        ],
    },
    MessageDef {
        msg_type: "AI",
        name: "QuoteStatusReport",
        members: members![
            group(&PARTIES),
            opt(48),
            opt(22),
            opt(207),
            opt(390),
            opt(1867),
            opt(537),
            req(60),
            opt(1166),
            opt(298),
            req(297),
            opt(300),
            opt(58),
            opt(1328),
        ],
    },
    MessageDef {
        msg_type: "BE",
        name: "UserRequest",
        members: members![req(923), req(924), req(553)],
    },
    MessageDef {
        msg_type: "BF",
        name: "UserResponse",
        members: members![req(923), req(553), opt(926), opt(927), group(&THROTTLES)],
    },
    MessageDef {
        msg_type: "CU",
        name: "PartyEntitlementsRequest",
        members: members![req(1770)],
    },
    MessageDef {
        msg_type: "CV",
        name: "PartyEntitlementsReport",
        members: members![
            req(1771),
            opt(1770),
            opt(1511),
            opt(1512),
            opt(893),
            opt(58),
            group(&PARTY_ENTITLEMENTS),
        ],
    },
];

/// Standard FIX message types twinsite knows exist but does not support: a message of one of
/// these types gets a BusinessMessageReject (380=3), any other unknown type a Reject (373=11).
pub const UNSUPPORTED_MSG_TYPES: &[&str] = &[
    "6", "7", "B", "C", "E", "H", "J", "K", "L", "M", "N", "P", "Q", "R", "T", "V", "W", "X", "Y",
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "k", "l", "m", "n", "o", "p", "s", "t", "u", "v",
    "w", "x", "y", "z", "AA", "AB", "AC", "AD", "AE", "AF", "AG", "AH", "AJ", "AK", "AL", "AM",
    "AN", "AO", "AP", "AQ", "AR", "AS", "AT", "AU", "AV", "AW", "AX", "AY", "AZ", "BA", "BB", "BC",
    "BD", "BG", "BH", "BI", "BJ", "BK", "BL", "BM", "BN", "BO", "BP", "BQ", "BR", "BS", "BT", "BU",
    "BV", "BW", "BX", "BY", "BZ", "CA", "CB", "CC", "CD", "CE", "CF", "CG", "CH", "CI", "CJ", "CK",
    "CL", "CM", "CN", "CO", "CP", "CQ", "CR", "CS", "CT", "CW", "CX", "CY", "CZ",
];

pub fn field(tag: u32) -> Option<&'static FieldDef> {
    // Every field of every message is looked up here: an index by tag (built once, a few KB)
    // instead of a binary search.
    static BY_TAG: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
    let by_tag = BY_TAG.get_or_init(|| {
        let max = FIELDS.iter().map(|f| f.tag as usize).max().unwrap_or(0);
        let mut v = vec![0u16; max + 1];
        for (i, f) in FIELDS.iter().enumerate() {
            // Position + 1; 0 = not a field. Far fewer than 65,535 fields.
            v[f.tag as usize] = u16::try_from(i + 1).unwrap_or(0);
        }
        v
    });
    match by_tag.get(usize::try_from(tag).ok()?) {
        Some(&i) if i > 0 => FIELDS.get(usize::from(i) - 1),
        _ => None,
    }
}

pub fn message(msg_type: &str) -> Option<&'static MessageDef> {
    MESSAGES.iter().find(|m| m.msg_type == msg_type)
}

/// Members of a message, top level. NewOrderSingle and OrderCancelReplaceRequest are their ids
/// plus the shared order fields ([`ORDER_FIELDS`]).
pub fn message_members(def: &'static MessageDef) -> Vec<Member> {
    members_of(def).to_vec()
}

/// [`message_members`] without allocating: the lists of D and G are joined once.
fn members_of(def: &'static MessageDef) -> &'static [Member] {
    static JOINED: std::sync::OnceLock<[Vec<Member>; 2]> = std::sync::OnceLock::new();
    let joined = |t: &str| -> &'static [Member] {
        let lists = JOINED.get_or_init(|| {
            ["D", "G"].map(|t| {
                let mut members = message(t).map_or_else(Vec::new, |d| d.members.to_vec());
                members.extend_from_slice(ORDER_FIELDS);
                members
            })
        });
        &lists[usize::from(t == "G")]
    };
    match def.msg_type {
        "D" | "G" => joined(def.msg_type),
        _ => def.members,
    }
}

/// Most members a level (message or group entry) may have: the set of tags seen at one level
/// is a bit mask over member positions (checked by a test).
const LEVEL_MEMBERS_MAX: usize = 128;

/// Check a message body (no header/trailer tags) against the dictionary: defined tags, tags
/// allowed for this message, no empty values, data formats, enumerations, repeating-group
/// structure, no duplicate tags at any level, required fields present.
pub fn validate(msg_type: &str, body: &[Field]) -> Result<(), Violation> {
    let def = message(msg_type).ok_or_else(|| {
        Violation::new(
            R::InvalidMsgType,
            Some(35),
            format!("MsgType {msg_type} is not supported"),
        )
    })?;
    for f in body {
        check_value(f)?;
    }
    let members = members_of(def);
    let mut pos = 0;
    validate_level(members, body, &mut pos, false)?;
    if let Some(f) = body.get(pos) {
        return Err(undefined_here(f.tag, def.name));
    }
    Ok(())
}

fn undefined_here(tag: u32, where_: &str) -> Violation {
    if field(tag).is_some() {
        Violation::new(
            R::TagNotDefinedForThisMessageType,
            Some(tag),
            format!("tag {tag} is not defined for {where_}"),
        )
    } else {
        Violation::new(
            R::InvalidTagNumber,
            Some(tag),
            format!("tag {tag} is not a known field"),
        )
    }
}

/// Consume the fields of one level (a message body or one group entry) starting at `pos`.
/// Stops at the first field that is not a member of this level, or (inside a group) at a
/// repeated tag, which starts the next entry.
fn validate_level(
    members: &[Member],
    body: &[Field],
    pos: &mut usize,
    in_group: bool,
) -> Result<(), Violation> {
    // Bit i: member i was seen at this level.
    let mut seen: u128 = 0;
    // Fields usually come in member order: look from after the last one found.
    let mut hint = 0;
    while let Some(f) = body.get(*pos) {
        let Some(index) = find_member(members, f.tag, hint) else {
            if in_group {
                break;
            }
            if is_header_tag(f.tag) {
                return Err(Violation::new(
                    R::TagSpecifiedOutOfRequiredOrder,
                    Some(f.tag),
                    format!("header tag {} in the body", f.tag),
                ));
            }
            return Err(undefined_here(f.tag, "this message"));
        };
        let bit = 1u128 << index.min(LEVEL_MEMBERS_MAX - 1);
        if seen & bit != 0 {
            if in_group {
                break;
            }
            return Err(Violation::new(
                R::TagAppearsMoreThanOnce,
                Some(f.tag),
                format!("tag {} appears more than once", f.tag),
            ));
        }
        seen |= bit;
        hint = index + 1;
        *pos += 1;
        if let Member::Group { def, .. } = &members[index] {
            validate_group(def, f, body, pos)?;
        }
    }
    for (i, m) in members.iter().enumerate() {
        if m.required() && seen & (1u128 << i.min(LEVEL_MEMBERS_MAX - 1)) == 0 {
            return Err(Violation::new(
                R::RequiredTagMissing,
                Some(m.tag()),
                format!("required tag {} missing", m.tag()),
            ));
        }
    }
    Ok(())
}

/// Position of `tag` among `members`, searched from `hint` on, then before it.
fn find_member(members: &[Member], tag: u32, hint: usize) -> Option<usize> {
    let hint = hint.min(members.len());
    members[hint..]
        .iter()
        .position(|m| m.tag() == tag)
        .map(|i| i + hint)
        .or_else(|| members[..hint].iter().position(|m| m.tag() == tag))
}

fn validate_group(
    def: &'static GroupDef,
    count_field: &Field,
    body: &[Field],
    pos: &mut usize,
) -> Result<(), Violation> {
    let count: usize = count_field.value.parse().map_err(|_| {
        Violation::new(
            R::IncorrectDataFormat,
            Some(def.count_tag),
            "bad NumInGroup",
        )
    })?;
    let delimiter = def.members[0].tag();
    for entry in 0..count {
        match body.get(*pos) {
            Some(f) if f.tag == delimiter => validate_level(def.members, body, pos, true)?,
            Some(f) if entry > 0 || def.members.iter().any(|m| m.tag() == f.tag) => {
                return Err(Violation::new(
                    if def.members.iter().any(|m| m.tag() == f.tag) {
                        R::RepeatingGroupFieldsOutOfOrder
                    } else {
                        R::IncorrectNumInGroupCount
                    },
                    Some(def.count_tag),
                    format!(
                        "group {} entry {entry} does not start with tag {delimiter}",
                        def.count_tag
                    ),
                ))
            }
            _ => {
                return Err(Violation::new(
                    R::IncorrectNumInGroupCount,
                    Some(def.count_tag),
                    format!(
                        "group {} declares {count} entries, found {entry}",
                        def.count_tag
                    ),
                ))
            }
        }
    }
    if body
        .get(*pos)
        .is_some_and(|f| def.members.iter().any(|m| m.tag() == f.tag))
    {
        return Err(Violation::new(
            R::IncorrectNumInGroupCount,
            Some(def.count_tag),
            format!(
                "group {} has more entries than its count {count}",
                def.count_tag
            ),
        ));
    }
    Ok(())
}

/// Per-field checks that do not depend on position: defined, non-empty, format, enumeration.
fn check_value(f: &Field) -> Result<(), Violation> {
    let Some(def) = field(f.tag) else {
        return Err(Violation::new(
            R::InvalidTagNumber,
            Some(f.tag),
            format!("tag {} is not a known field", f.tag),
        ));
    };
    let v = f.value.as_str();
    if v.is_empty() {
        return Err(Violation::new(
            R::TagSpecifiedWithoutAValue,
            Some(f.tag),
            format!("{} has no value", def.name),
        ));
    }
    if !format_ok(def.field_type, v) {
        return Err(Violation::new(
            R::IncorrectDataFormat,
            Some(f.tag),
            format!(
                "{} value {v:?} is not a valid {:?}",
                def.name, def.field_type
            ),
        ));
    }
    let in_enum = |s: &str| def.values.is_empty() || def.values.contains(&s);
    let enum_ok = if def.field_type == T::MultipleCharValue {
        v.split(' ').all(in_enum)
    } else {
        in_enum(v)
    };
    if !enum_ok {
        return Err(Violation::new(
            R::ValueIsIncorrect,
            Some(f.tag),
            format!("{} value {v:?} is out of range", def.name),
        ));
    }
    Ok(())
}

fn format_ok(t: FieldType, v: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|c| c.is_ascii_digit());
    match t {
        T::Int => digits(v.strip_prefix('-').unwrap_or(v)),
        T::SeqNum | T::Length | T::NumInGroup => digits(v),
        T::Qty | T::Price => {
            let s = v.strip_prefix('-').unwrap_or(v);
            let (int, frac) = s.split_once('.').unwrap_or((s, ""));
            (digits(int) || (int.is_empty() && digits(frac))) && (frac.is_empty() || digits(frac))
        }
        T::Char => v.len() == 1 && v.as_bytes()[0] > b' ' && v.as_bytes()[0] < 0x7f,
        T::Boolean => v == "Y" || v == "N",
        T::MultipleCharValue => v.split(' ').all(|c| c.len() == 1),
        T::UtcTimestamp => parse_utc_timestamp(v).is_some(),
        T::String | T::Data => !v.contains('\u{1}') || t == T::Data,
    }
}

/// Entries of the group counted by `count_tag` anywhere in a valid message body.
pub fn group_entries<'a>(msg_type: &str, body: &'a [Field], count_tag: u32) -> Vec<&'a [Field]> {
    let Some(def) = message(msg_type) else {
        return Vec::new();
    };
    match find_group(members_of(def), count_tag) {
        Some(gdef) => entries_from(body, gdef),
        None => Vec::new(),
    }
}

/// Entries of a group nested inside one entry of an outer group (for example NoEntitlements
/// inside NoPartyEntitlements): `entry` is a slice [`group_entries`] returned.
pub fn nested_group_entries(entry: &[Field], count_tag: u32) -> Vec<&[Field]> {
    let gdef = MESSAGES
        .iter()
        .find_map(|m| find_group(members_of(m), count_tag));
    match gdef {
        Some(gdef) => entries_from(entry, gdef),
        None => Vec::new(),
    }
}

fn entries_from<'a>(fields: &'a [Field], gdef: &'static GroupDef) -> Vec<&'a [Field]> {
    let Some(start) = fields.iter().position(|f| f.tag == gdef.count_tag) else {
        return Vec::new();
    };
    let count: usize = fields[start].value.parse().unwrap_or(0);
    let mut entries = Vec::with_capacity(count.min(64));
    let mut pos = start + 1;
    for _ in 0..count {
        let begin = pos;
        if fields.get(pos).map(|f| f.tag) != Some(gdef.members[0].tag()) {
            break;
        }
        skip_entry(gdef.members, fields, &mut pos);
        entries.push(&fields[begin..pos]);
    }
    entries
}

fn skip_entry(members: &[Member], body: &[Field], pos: &mut usize) {
    let mut seen: u128 = 0;
    while let Some(f) = body.get(*pos) {
        let Some(index) = members.iter().position(|m| m.tag() == f.tag) else {
            break;
        };
        let bit = 1u128 << index.min(LEVEL_MEMBERS_MAX - 1);
        if seen & bit != 0 {
            break;
        }
        seen |= bit;
        let m = &members[index];
        *pos += 1;
        if let Member::Group { def, .. } = m {
            let n: usize = f.value.parse().unwrap_or(0);
            for _ in 0..n {
                skip_entry(def.members, body, pos);
            }
        }
    }
}

fn find_group(members: &[Member], count_tag: u32) -> Option<&'static GroupDef> {
    members.iter().find_map(|m| match m {
        Member::Group { def, .. } if def.count_tag == count_tag => Some(*def),
        Member::Group { def, .. } => find_group(def.members, count_tag),
        Member::Field { .. } => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lookup_finds_every_field_and_nothing_else() {
        for tag in 0..7_000u32 {
            let expected = FIELDS.iter().find(|f| f.tag == tag).map(|f| f.name);
            assert_eq!(field(tag).map(|f| f.name), expected, "tag {tag}");
        }
        assert!(field(u32::MAX).is_none());
    }

    fn all_members(members: &[Member], out: &mut Vec<Member>) {
        for m in members {
            out.push(*m);
            if let Member::Group { def, .. } = m {
                all_members(def.members, out);
            }
        }
    }

    #[test]
    fn field_table_is_sorted_and_unique() {
        for w in FIELDS.windows(2) {
            assert!(w[0].tag < w[1].tag, "{} then {}", w[0].tag, w[1].tag);
        }
    }

    #[test]
    fn every_member_is_defined_with_the_right_type() {
        for def in MESSAGES {
            let mut members = Vec::new();
            all_members(&message_members(def), &mut members);
            for m in members {
                let f = field(m.tag()).unwrap_or_else(|| panic!("{} tag {}", def.name, m.tag()));
                let is_group = matches!(m, Member::Group { .. });
                assert_eq!(is_group, f.field_type == T::NumInGroup, "{}", f.name);
                assert!(
                    !is_header_tag(m.tag()),
                    "{} has header tag {}",
                    def.name,
                    m.tag()
                );
            }
        }
    }

    #[test]
    fn every_level_fits_the_seen_mask() {
        fn check(members: &[Member]) {
            assert!(members.len() <= LEVEL_MEMBERS_MAX);
            for m in members {
                if let Member::Group { def, .. } = m {
                    check(def.members);
                }
            }
        }
        for def in MESSAGES {
            check(members_of(def));
        }
    }

    #[test]
    fn message_types_are_unique_and_not_marked_unsupported() {
        for (i, a) in MESSAGES.iter().enumerate() {
            assert!(!UNSUPPORTED_MSG_TYPES.contains(&a.msg_type), "{}", a.name);
            for b in &MESSAGES[i + 1..] {
                assert_ne!(a.msg_type, b.msg_type);
            }
        }
    }

    fn body(pairs: &[(u32, &str)]) -> Vec<Field> {
        pairs.iter().map(|(t, v)| Field::new(*t, *v)).collect()
    }

    fn order() -> Vec<(u32, &'static str)> {
        vec![
            (11, "1"),
            (453, "2"),
            (448, "1234"),
            (452, "1"),
            (448, "5678"),
            (452, "3"),
            (48, "5"),
            (22, "8"),
            (207, "XHKG"),
            (60, "20231125-01:30:00.000"),
            (54, "1"),
            (40, "2"),
            (44, "38.5"),
            (38, "400"),
        ]
    }

    fn reason(pairs: &[(u32, &str)]) -> Option<(R, Option<u32>)> {
        validate("D", &body(pairs))
            .err()
            .map(|v| (v.reason, v.ref_tag_id))
    }

    #[test]
    fn valid_order_passes_and_groups_are_readable() {
        assert_eq!(reason(&order()), None);
        let b = body(&order());
        let parties = group_entries("D", &b, 453);
        assert_eq!(parties.len(), 2);
        assert_eq!(parties[1][0], Field::new(448, "5678"));
    }

    #[test]
    fn each_violation_gets_its_reason() {
        let mut missing = order();
        missing.retain(|(t, _)| *t != 38);
        assert_eq!(reason(&missing), Some((R::RequiredTagMissing, Some(38))));

        let mut dup = order();
        dup.push((44, "38.6"));
        assert_eq!(reason(&dup), Some((R::TagAppearsMoreThanOnce, Some(44))));

        let mut unknown = order();
        unknown.push((9999, "x"));
        assert_eq!(reason(&unknown), Some((R::InvalidTagNumber, Some(9999))));

        let mut wrong_msg = order();
        wrong_msg.push((1369, "x"));
        assert_eq!(
            reason(&wrong_msg),
            Some((R::TagNotDefinedForThisMessageType, Some(1369)))
        );

        let mut empty = order();
        empty.push((58, ""));
        assert_eq!(
            reason(&empty),
            Some((R::TagSpecifiedWithoutAValue, Some(58)))
        );

        let mut bad_enum = order();
        bad_enum[10] = (54, "7");
        assert_eq!(reason(&bad_enum), Some((R::ValueIsIncorrect, Some(54))));

        let mut bad_format = order();
        bad_format[13] = (38, "4x0");
        assert_eq!(
            reason(&bad_format),
            Some((R::IncorrectDataFormat, Some(38)))
        );

        let mut bad_count = order();
        bad_count[1] = (453, "3");
        assert_eq!(
            reason(&bad_count),
            Some((R::IncorrectNumInGroupCount, Some(453)))
        );

        let mut short_count = order();
        short_count[1] = (453, "1");
        assert_eq!(
            reason(&short_count),
            Some((R::IncorrectNumInGroupCount, Some(453)))
        );

        let mut out_of_order = order();
        out_of_order.swap(2, 3);
        assert_eq!(
            reason(&out_of_order),
            Some((R::RepeatingGroupFieldsOutOfOrder, Some(453)))
        );

        assert_eq!(
            validate("ZZ", &[]).map_err(|v| v.reason),
            Err(R::InvalidMsgType)
        );
    }

    #[test]
    fn nested_groups_validate() {
        let report = body(&[
            (1771, "R1"),
            (1772, "1"),
            (1671, "1"),
            (1691, "1234"),
            (1773, "2"),
            (1774, "Y"),
            (1775, "0"),
            (1774, "Y"),
            (1775, "1"),
            (1777, "1"),
            (1778, "4000"),
            (1780, "1000"),
        ]);
        assert_eq!(validate("CV", &report), Ok(()));
        assert_eq!(group_entries("CV", &report, 1773).len(), 2);
        assert_eq!(group_entries("CV", &report, 1772).len(), 1);
    }

    #[test]
    fn replace_request_has_order_fields() {
        let mut replace = order();
        replace.insert(1, (41, "0"));
        assert_eq!(validate("G", &body(&replace)), Ok(()));
    }
}
