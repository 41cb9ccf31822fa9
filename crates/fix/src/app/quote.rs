//! Quote (S), QuoteCancel (Z) and QuoteStatusReport (AI): the market maker's two-sided quote.

use twinsite_core::{Price, Qty, SecurityCode, Timestamp};

use super::{
    format_time, optional, parse_price, parse_qty, parse_security, parse_time, parse_u32, push_opt,
    required, write_instrument, MappingError, OrderSide, Parties, ValueCheck,
};
use crate::message::{Field, Message};

/// Quote (S): replaces the previous live quote for the instrument; each side then lives as a
/// limit order whose ClOrdID is the side's id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quote {
    pub bid_id: String,
    pub offer_id: String,
    pub parties: Parties,
    pub security: SecurityCode,
    /// QuoteType (537): 1 tradable.
    pub quote_type: Option<u32>,
    /// Side (54) = 5 marks the offer as a short sell.
    pub side: Option<OrderSide>,
    pub bid_px: Price,
    pub offer_px: Price,
    pub bid_size: Qty,
    pub offer_size: Qty,
    pub transact_time: Timestamp,
    pub position_close: bool,
    pub order_restrictions: Option<String>,
    pub text: Option<String>,
    pub value_checks: Vec<ValueCheck>,
}

impl Quote {
    pub fn to_message(&self) -> Message {
        let mut m = Message::new("S")
            .with(390, self.bid_id.clone())
            .with(1867, self.offer_id.clone());
        self.parties.write(&mut m);
        write_instrument(&mut m, self.security);
        push_opt(&mut m, 537, self.quote_type.map(|t| t.to_string()));
        push_opt(&mut m, 54, self.side.map(|s| s.code().to_string()));
        m.push(132, self.bid_px.to_string());
        m.push(133, self.offer_px.to_string());
        m.push(134, self.bid_size.to_string());
        m.push(135, self.offer_size.to_string());
        m.push(60, format_time(self.transact_time));
        if self.position_close {
            m.push(77, "C");
        }
        push_opt(&mut m, 529, self.order_restrictions.clone());
        push_opt(&mut m, 58, self.text.clone());
        if !self.value_checks.is_empty() {
            m.push(1868, self.value_checks.len().to_string());
            for c in &self.value_checks {
                m.push(1869, c.check_type.to_string());
                m.push(1870, c.action.to_string());
            }
        }
        m
    }

    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        let value_checks = m
            .group(1868)
            .iter()
            .map(|entry| {
                let get = |tag| field_u32(entry, tag);
                Ok(ValueCheck {
                    check_type: get(1869)?,
                    action: get(1870)?,
                })
            })
            .collect::<Result<Vec<_>, MappingError>>()?;
        Ok(Quote {
            bid_id: required(m, 390)?.to_string(),
            offer_id: required(m, 1867)?.to_string(),
            parties: Parties::read(m)?,
            security: parse_security(m)?,
            quote_type: optional(m, 537).map(|v| parse_u32(537, v)).transpose()?,
            side: optional(m, 54).map(OrderSide::from_code).transpose()?,
            bid_px: parse_price(132, required(m, 132)?)?,
            offer_px: parse_price(133, required(m, 133)?)?,
            bid_size: parse_qty(134, required(m, 134)?)?,
            offer_size: parse_qty(135, required(m, 135)?)?,
            transact_time: parse_time(60, required(m, 60)?)?,
            position_close: optional(m, 77) == Some("C"),
            order_restrictions: optional(m, 529).map(str::to_string),
            text: optional(m, 58).map(str::to_string),
            value_checks,
        })
    }
}

fn field_u32(entry: &[Field], tag: u32) -> Result<u32, MappingError> {
    let v = entry
        .iter()
        .find(|f| f.tag == tag)
        .map(|f| f.value.as_str())
        .ok_or_else(|| MappingError::missing(tag))?;
    parse_u32(tag, v)
}

/// QuoteCancel (Z).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuoteCancel {
    pub quote_msg_id: String,
    /// QuoteCancelType (298): 1 cancel for the listed securities.
    pub cancel_type: u32,
    pub parties: Parties,
    pub securities: Vec<SecurityCode>,
}

impl QuoteCancel {
    pub fn to_message(&self) -> Message {
        let mut m = Message::new("Z")
            .with(1166, self.quote_msg_id.clone())
            .with(298, self.cancel_type.to_string());
        self.parties.write(&mut m);
        if !self.securities.is_empty() {
            m.push(295, self.securities.len().to_string());
            for s in &self.securities {
                write_instrument(&mut m, *s);
            }
        }
        m
    }

    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        let securities = m
            .group(295)
            .iter()
            .map(|entry| {
                let entry_message = Message {
                    msg_type: "Z".into(),
                    body: entry.to_vec(),
                };
                parse_security(&entry_message)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(QuoteCancel {
            quote_msg_id: required(m, 1166)?.to_string(),
            cancel_type: parse_u32(298, required(m, 298)?)?,
            parties: Parties::read(m)?,
            securities,
        })
    }
}

/// QuoteStatus (297) values.
pub mod quote_status {
    pub const ACCEPTED: u32 = 0;
    pub const CANCEL_FOR_SYMBOL: u32 = 1;
    pub const REJECTED: u32 = 5;
    pub const NOT_FOUND: u32 = 9;
}

/// QuoteStatusReport (AI): OCG-C sends it for rejects.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuoteStatusReport {
    pub parties: Parties,
    pub security: Option<SecurityCode>,
    pub bid_id: Option<String>,
    pub offer_id: Option<String>,
    pub quote_type: Option<u32>,
    pub transact_time: Timestamp,
    pub quote_msg_id: Option<String>,
    pub cancel_type: Option<u32>,
    pub status: u32,
    /// QuoteRejectReason (300): OCG-C Quote Reject Code.
    pub reject_reason: Option<u32>,
    pub text: Option<String>,
    pub reject_text: Option<String>,
}

impl QuoteStatusReport {
    pub fn to_message(&self) -> Message {
        let mut m = Message::new("AI");
        self.parties.write(&mut m);
        if let Some(s) = self.security {
            write_instrument(&mut m, s);
        }
        push_opt(&mut m, 390, self.bid_id.clone());
        push_opt(&mut m, 1867, self.offer_id.clone());
        push_opt(&mut m, 537, self.quote_type.map(|t| t.to_string()));
        m.push(60, format_time(self.transact_time));
        push_opt(&mut m, 1166, self.quote_msg_id.clone());
        push_opt(&mut m, 298, self.cancel_type.map(|t| t.to_string()));
        m.push(297, self.status.to_string());
        push_opt(&mut m, 300, self.reject_reason.map(|r| r.to_string()));
        push_opt(&mut m, 58, self.text.clone());
        push_opt(&mut m, 1328, self.reject_text.clone());
        m
    }

    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        let number = |tag| optional(m, tag).map(|v| parse_u32(tag, v)).transpose();
        let text = |tag| optional(m, tag).map(str::to_string);
        Ok(QuoteStatusReport {
            parties: Parties::read(m)?,
            security: match optional(m, 48) {
                Some(_) => Some(parse_security(m)?),
                None => None,
            },
            bid_id: text(390),
            offer_id: text(1867),
            quote_type: number(537)?,
            transact_time: parse_time(60, required(m, 60)?)?,
            quote_msg_id: text(1166),
            cancel_type: number(298)?,
            status: parse_u32(297, required(m, 297)?)?,
            reject_reason: number(300)?,
            text: text(58),
            reject_text: text(1328),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dictionary::validate;
    use twinsite_core::BrokerId;

    fn t() -> Timestamp {
        Timestamp::from_secs(1_700_000_000)
    }

    #[test]
    fn quote_messages_round_trip_and_validate() {
        let quote = Quote {
            bid_id: "B1".into(),
            offer_id: "O1".into(),
            parties: Parties {
                submitting_broker: Some(BrokerId(1234)),
                bcan: Some("BCAN1".into()),
                ..Parties::default()
            },
            security: SecurityCode(700),
            quote_type: Some(1),
            side: Some(OrderSide::SellShort),
            bid_px: Price(380_000),
            offer_px: Price(380_200),
            bid_size: Qty(100),
            offer_size: Qty(200),
            transact_time: t(),
            position_close: false,
            order_restrictions: Some("5".into()),
            text: None,
            value_checks: vec![ValueCheck {
                check_type: 2,
                action: 0,
            }],
        };
        let m = quote.to_message();
        assert_eq!(validate("S", &m.body), Ok(()));
        assert_eq!(Quote::from_message(&m), Ok(quote));

        let cancel = QuoteCancel {
            quote_msg_id: "Q1".into(),
            cancel_type: 1,
            parties: Parties::default(),
            securities: vec![SecurityCode(700), SecurityCode(5)],
        };
        let m = cancel.to_message();
        assert_eq!(validate("Z", &m.body), Ok(()));
        assert_eq!(QuoteCancel::from_message(&m), Ok(cancel));

        let report = QuoteStatusReport {
            parties: Parties::default(),
            security: Some(SecurityCode(700)),
            bid_id: Some("B1".into()),
            offer_id: Some("O1".into()),
            quote_type: Some(1),
            transact_time: t(),
            quote_msg_id: None,
            cancel_type: None,
            status: quote_status::REJECTED,
            reject_reason: Some(10),
            text: None,
            reject_text: Some("price band".into()),
        };
        let m = report.to_message();
        assert_eq!(validate("AI", &m.body), Ok(()));
        assert_eq!(QuoteStatusReport::from_message(&m), Ok(report));
    }

    #[test]
    fn quote_price_must_be_exact() {
        let m = Message::new("S")
            .with(390, "B")
            .with(1867, "O")
            .with(48, "700")
            .with(22, "8")
            .with(132, "380.0005")
            .with(133, "380.2")
            .with(134, "100")
            .with(135, "100")
            .with(60, "20231114-22:13:20");
        assert!(matches!(
            Quote::from_message(&m),
            Err(MappingError::Reject(v)) if v.ref_tag_id == Some(132)
        ));
    }
}
