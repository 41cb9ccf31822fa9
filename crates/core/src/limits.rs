//! Every limit twinsite enforces or documents, in one place. Values marked *configurable* are
//! defaults: the crates that use them take them from configuration.
//! Sources: `shared/reference/ocg-c-and-trading-rules.md` (OCG) and `omd-c-and-omd-cc.md` (OMD).

// ---- Matching rules (OCG reference §5) ----
/// Maximum board-lot order size, in board lots.
pub const MAX_ORDER_BOARD_LOTS: u64 = 3_000;
/// 9-times rule: price must be below 9x and above 1/9 of the nominal price.
pub const NINE_TIMES_FACTOR: i64 = 9;
/// 24-spread rule: passive orders within 24 spreads of the best price.
pub const MAX_SPREADS_FROM_BEST: u32 = 24;
/// Enhanced / special limit orders may trade through up to this many price queues.
pub const MAX_MATCH_QUEUES: u32 = 10;
/// Enhanced limit input: ask >= best bid - 9 spreads, bid <= best ask + 9 spreads.
pub const ENHANCED_LIMIT_SPREADS: u32 = 9;
/// POS at-auction limit band: +-15% of previous close (basis points).
pub const POS_BAND_BPS: i64 = 1_500;
/// CAS band: +-5% of the reference price (basis points).
pub const CAS_BAND_BPS: i64 = 500;
/// CAS reference price: median of this many nominal prices...
pub const CAS_REFERENCE_SAMPLES: usize = 5;
/// ...taken at this interval in the last minute of continuous trading.
pub const CAS_REFERENCE_INTERVAL_SECS: u32 = 15;
/// Client order ids are numeric 1..=99,999,999 (OCG-C); FIX ids may be alphanumeric.
pub const MAX_NUMERIC_CLORDID: u64 = 99_999_999;
/// Amendment chain limit.
pub const MAX_AMEND_CHAIN: u64 = 99_999_999;

// ---- OCG-C session (OCG reference §1) ----
/// Frame header length: STX(1) Length(2) Type(1) Seq(4) PossDup(1) PossResend(1) CompID(12) Bitmap(32).
pub const OCG_HEADER_LEN: usize = 54;
/// Frame trailer: CRC-32C.
pub const OCG_TRAILER_LEN: usize = 4;
pub const OCG_COMP_ID_LEN: usize = 12;
pub const OCG_BITMAP_LEN: usize = 32;
/// Heartbeat interval (configurable).
pub const OCG_HEARTBEAT_SECS: u64 = 20;
/// Silent heartbeat intervals before a Test Request.
pub const OCG_TEST_REQUEST_AFTER_INTERVALS: u32 = 3;
/// Further silent intervals before logout.
pub const OCG_LOGOUT_AFTER_INTERVALS: u32 = 3;
/// Failed logons before the Comp ID is locked.
pub const OCG_MAX_LOGON_FAILURES: u32 = 3;
/// Minimum password length.
pub const OCG_MIN_PASSWORD_LEN: usize = 8;
/// Password expiry.
pub const OCG_PASSWORD_EXPIRY_DAYS: u32 = 90;
/// Registered source IPs per session.
pub const OCG_MAX_SOURCE_IPS: usize = 4;
/// Lookup endpoints a client tries in order.
pub const OCG_LOOKUP_ENDPOINTS: usize = 4;
/// Back-off between lookup attempts.
pub const OCG_LOOKUP_BACKOFF_SECS: u64 = 5;
/// Client wait after a dropped connection before reconnecting.
pub const OCG_RECONNECT_WAIT_SECS: u64 = 10;
/// Throttle: messages per second per throttle unit (configurable).
pub const OCG_THROTTLE_MSGS_PER_UNIT: u32 = 2;
/// Free-text field limits.
pub const OCG_TEXT_MAX: usize = 50;
pub const OCG_REASON_MAX: usize = 75;

// ---- OMD-C / OMD-CC (OMD reference §1, §3) ----
/// Maximum UDP payload per packet.
pub const OMD_MAX_PAYLOAD: usize = 1_472;
/// Packet header length.
pub const OMD_PACKET_HEADER_LEN: usize = 16;
/// Messages retained per channel for retransmission.
pub const OMD_RTS_RETAINED_PER_CHANNEL: u32 = 50_000;
/// Messages per retransmission request.
pub const OMD_RTS_MAX_PER_REQUEST: u32 = 10_000;
/// Retransmission requests per user per day.
pub const OMD_RTS_MAX_REQUESTS_PER_DAY: u32 = 1_000;
/// The RTS client must echo heartbeats within this many seconds.
pub const OMD_RTS_HEARTBEAT_ECHO_SECS: u64 = 5;
/// Aggregate order book depth (levels per side) for Securities Standard.
pub const OMD_BOOK_LEVELS: usize = 10;
/// Stock Connect Daily Quota Balance is NULL while at least this share (percent) remains.
pub const OMD_DQB_NULL_ABOVE_PERCENT: u64 = 30;
/// Int64 null value.
pub const OMD_INT64_NULL: i64 = i64::MIN;

// ---- China Connect northbound (OCG reference §4) ----
/// Daily quota per link, RMB (configurable).
pub const CC_DAILY_QUOTA_RMB: u64 = 52_000_000_000;
/// Buy orders in multiples of this many shares.
pub const CC_BUY_LOT: u64 = 100;
/// Maximum shares per order.
pub const CC_MAX_ORDER_SHARES: u64 = 1_000_000;
/// Tick, in 1/1000 RMB.
pub const CC_TICK: i64 = 10;
/// Daily price limits (basis points): main board, ChiNext/STAR, risk alert.
pub const CC_LIMIT_MAIN_BPS: i64 = 1_000;
pub const CC_LIMIT_GROWTH_BPS: i64 = 2_000;
pub const CC_LIMIT_RISK_ALERT_BPS: i64 = 500;
