//! Throttle entitlement (UserRequest BE / UserResponse BF) and party entitlements
//! (PartyEntitlementsRequest CU / PartyEntitlementsReport CV).

use super::{optional, parse_u32, required, MappingError};
use crate::dictionary::nested_group_entries;
use crate::message::{Field, Message};

/// UserRequestType (924) OCG-C uses: 5 = request throttle limit.
pub const USER_REQUEST_THROTTLE_LIMIT: u32 = 5;

/// UserRequest (BE): ask for the session's throttle entitlement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserRequest {
    pub user_request_id: String,
    pub user_request_type: u32,
    /// Username (553): the CompID.
    pub username: String,
}

impl UserRequest {
    pub fn to_message(&self) -> Message {
        Message::new("BE")
            .with(923, self.user_request_id.clone())
            .with(924, self.user_request_type.to_string())
            .with(553, self.username.clone())
    }
    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        Ok(UserRequest {
            user_request_id: required(m, 923)?.to_string(),
            user_request_type: parse_u32(924, required(m, 924)?)?,
            username: required(m, 553)?.to_string(),
        })
    }
}

/// One ThrottleParamsGrp entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Throttle {
    /// ThrottleAction (1611): 2 reject.
    pub action: u32,
    /// ThrottleType (1612): 0 inbound rate.
    pub throttle_type: u32,
    /// ThrottleNoMsgs (1613): messages per interval.
    pub messages: u32,
    /// ThrottleTimeInterval (1614).
    pub interval: u32,
    /// ThrottleTimeUnit (1615): 0 seconds.
    pub unit: u32,
}

/// UserResponse (BF): the throttle entitlement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserResponse {
    pub user_request_id: String,
    pub username: String,
    pub user_status: Option<u32>,
    pub text: Option<String>,
    pub throttles: Vec<Throttle>,
}

impl UserResponse {
    pub fn to_message(&self) -> Message {
        let mut m = Message::new("BF")
            .with(923, self.user_request_id.clone())
            .with(553, self.username.clone())
            .with_opt(926, self.user_status.map(|s| s.to_string()))
            .with_opt(927, self.text.clone());
        if !self.throttles.is_empty() {
            m.push(1610, self.throttles.len().to_string());
            for t in &self.throttles {
                m.push(1611, t.action.to_string());
                m.push(1612, t.throttle_type.to_string());
                m.push(1613, t.messages.to_string());
                m.push(1614, t.interval.to_string());
                m.push(1615, t.unit.to_string());
            }
        }
        m
    }
    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        let throttles = m
            .group(1610)
            .iter()
            .map(|e| {
                Ok(Throttle {
                    action: entry_u32(e, 1611)?.unwrap_or(0),
                    throttle_type: entry_u32(e, 1612)?.unwrap_or(0),
                    messages: entry_u32(e, 1613)?.unwrap_or(0),
                    interval: entry_u32(e, 1614)?.unwrap_or(0),
                    unit: entry_u32(e, 1615)?.unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, MappingError>>()?;
        Ok(UserResponse {
            user_request_id: required(m, 923)?.to_string(),
            username: required(m, 553)?.to_string(),
            user_status: optional(m, 926).map(|v| parse_u32(926, v)).transpose()?,
            text: optional(m, 927).map(str::to_string),
            throttles,
        })
    }
}

fn entry_value(entry: &[Field], tag: u32) -> Option<&str> {
    entry
        .iter()
        .find(|f| f.tag == tag)
        .map(|f| f.value.as_str())
}

fn entry_u32(entry: &[Field], tag: u32) -> Result<Option<u32>, MappingError> {
    entry_value(entry, tag)
        .map(|v| parse_u32(tag, v))
        .transpose()
}

/// PartyEntitlementsRequest (CU).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartyEntitlementsRequest {
    pub entitlement_request_id: String,
}

impl PartyEntitlementsRequest {
    pub fn to_message(&self) -> Message {
        Message::new("CU").with(1770, self.entitlement_request_id.clone())
    }
    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        Ok(PartyEntitlementsRequest {
            entitlement_request_id: required(m, 1770)?.to_string(),
        })
    }
}

/// One entitlement: EntitlementType (1775: 0 trade, 1 make market) with its attributes
/// (1778 type: 4000 minimum volume, 4001 maximum spread).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entitlement {
    pub indicator: bool,
    pub entitlement_type: Option<u32>,
    pub entitlement_id: Option<String>,
    pub attributes: Vec<(u32, Option<String>)>,
}

/// One fragment's broker and its entitlements.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartyEntitlement {
    /// PartyDetailID (1691): the Broker ID.
    pub broker_id: String,
    pub entitlements: Vec<Entitlement>,
}

/// PartyEntitlementsReport (CV): one fragment per Broker ID.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartyEntitlementsReport {
    pub entitlement_report_id: String,
    pub entitlement_request_id: Option<String>,
    /// RequestResult (1511): 0 ok, 1 invalid, 2 no data, 3 not authorised, 4 unavailable,
    /// 5 unsupported, 99 other.
    pub request_result: Option<u32>,
    pub total_party_lists: Option<u32>,
    pub last_fragment: Option<bool>,
    pub parties: Vec<PartyEntitlement>,
}

impl PartyEntitlementsReport {
    pub fn to_message(&self) -> Message {
        let mut m = Message::new("CV")
            .with(1771, self.entitlement_report_id.clone())
            .with_opt(1770, self.entitlement_request_id.clone())
            .with_opt(1511, self.request_result.map(|r| r.to_string()))
            .with_opt(1512, self.total_party_lists.map(|r| r.to_string()))
            .with_opt(893, self.last_fragment.map(|b| if b { "Y" } else { "N" }));
        if !self.parties.is_empty() {
            m.push(1772, self.parties.len().to_string());
            for p in &self.parties {
                m.push(1671, "1");
                m.push(1691, p.broker_id.clone());
                if p.entitlements.is_empty() {
                    continue;
                }
                m.push(1773, p.entitlements.len().to_string());
                for e in &p.entitlements {
                    m.push(1774, if e.indicator { "Y" } else { "N" });
                    if let Some(t) = e.entitlement_type {
                        m.push(1775, t.to_string());
                    }
                    if let Some(id) = &e.entitlement_id {
                        m.push(1776, id.clone());
                    }
                    if !e.attributes.is_empty() {
                        m.push(1777, e.attributes.len().to_string());
                        for (attribute_type, value) in &e.attributes {
                            m.push(1778, attribute_type.to_string());
                            if let Some(v) = value {
                                m.push(1780, v.clone());
                            }
                        }
                    }
                }
            }
        }
        m
    }

    pub fn from_message(m: &Message) -> Result<Self, MappingError> {
        let mut parties = Vec::new();
        for entry in m.group(1772) {
            let details = nested_group_entries(entry, 1671);
            let broker_id = details
                .first()
                .and_then(|d| entry_value(d, 1691))
                .ok_or_else(|| MappingError::missing(1691))?
                .to_string();
            let mut entitlements = Vec::new();
            for e in nested_group_entries(entry, 1773) {
                let attributes = nested_group_entries(e, 1777)
                    .iter()
                    .map(|a| {
                        let t = entry_u32(a, 1778)?.ok_or_else(|| MappingError::missing(1778))?;
                        Ok((t, entry_value(a, 1780).map(str::to_string)))
                    })
                    .collect::<Result<Vec<_>, MappingError>>()?;
                entitlements.push(Entitlement {
                    indicator: entry_value(e, 1774) == Some("Y"),
                    entitlement_type: entry_u32(e, 1775)?,
                    entitlement_id: entry_value(e, 1776).map(str::to_string),
                    attributes,
                });
            }
            parties.push(PartyEntitlement {
                broker_id,
                entitlements,
            });
        }
        Ok(PartyEntitlementsReport {
            entitlement_report_id: required(m, 1771)?.to_string(),
            entitlement_request_id: optional(m, 1770).map(str::to_string),
            request_result: optional(m, 1511).map(|v| parse_u32(1511, v)).transpose()?,
            total_party_lists: optional(m, 1512).map(|v| parse_u32(1512, v)).transpose()?,
            last_fragment: optional(m, 893).map(|v| v == "Y"),
            parties,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dictionary::validate;

    #[test]
    fn throttle_entitlement_round_trips() {
        let request = UserRequest {
            user_request_id: "U1".into(),
            user_request_type: USER_REQUEST_THROTTLE_LIMIT,
            username: "CO01".into(),
        };
        let m = request.to_message();
        assert_eq!(validate("BE", &m.body), Ok(()));
        assert_eq!(UserRequest::from_message(&m), Ok(request));
        let response = UserResponse {
            user_request_id: "U1".into(),
            username: "CO01".into(),
            user_status: None,
            text: None,
            throttles: vec![Throttle {
                action: 2,
                throttle_type: 0,
                messages: 8,
                interval: 1,
                unit: 0,
            }],
        };
        let m = response.to_message();
        assert_eq!(validate("BF", &m.body), Ok(()));
        assert_eq!(UserResponse::from_message(&m), Ok(response));
    }

    #[test]
    fn party_entitlements_round_trip_with_nested_groups() {
        let request = PartyEntitlementsRequest {
            entitlement_request_id: "E1".into(),
        };
        let m = request.to_message();
        assert_eq!(validate("CU", &m.body), Ok(()));
        assert_eq!(PartyEntitlementsRequest::from_message(&m), Ok(request));
        let report = PartyEntitlementsReport {
            entitlement_report_id: "R1".into(),
            entitlement_request_id: Some("E1".into()),
            request_result: Some(0),
            total_party_lists: Some(2),
            last_fragment: Some(false),
            parties: vec![
                PartyEntitlement {
                    broker_id: "1234".into(),
                    entitlements: vec![
                        Entitlement {
                            indicator: true,
                            entitlement_type: Some(0),
                            entitlement_id: None,
                            attributes: vec![],
                        },
                        Entitlement {
                            indicator: true,
                            entitlement_type: Some(1),
                            entitlement_id: Some("700".into()),
                            attributes: vec![(4000, Some("1000".into())), (4001, Some("5".into()))],
                        },
                    ],
                },
                PartyEntitlement {
                    broker_id: "5678".into(),
                    entitlements: vec![],
                },
            ],
        };
        let m = report.to_message();
        assert_eq!(validate("CV", &m.body), Ok(()));
        assert_eq!(PartyEntitlementsReport::from_message(&m), Ok(report));
    }
}
