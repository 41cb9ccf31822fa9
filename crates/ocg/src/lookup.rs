//! The Lookup Service (reference §3.1), sans-IO: one Lookup Request in, one Lookup Response out.
//! A backup site's service stays closed until a failover opens it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use twinsite_core::CompId;

use crate::enums::*;
use crate::frame;
use crate::messages::{LookupResponse, Message};
use crate::wire::{FixedStr, VarStr};

/// What the runtime does with a lookup connection's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupOutcome {
    /// Send this response; the client closes the connection afterwards.
    Reply(Vec<u8>),
    /// Not a usable request, or the service is closed: drop the connection.
    Drop,
    /// Wait for more bytes.
    NeedMore,
}

#[derive(Debug, Clone)]
pub struct LookupService {
    /// Primary and secondary (mirror) OCG-C gateways handed out: dotted IP and port.
    pub primary: (String, u16),
    pub secondary: (String, u16),
    pub open: bool,
    pub sender_comp_id: FixedStr<12>,
    clients: BTreeMap<CompId, (Vec<IpAddr>, bool)>,
}

impl LookupService {
    pub fn new(primary: (String, u16), secondary: (String, u16), open: bool) -> Self {
        LookupService {
            primary,
            secondary,
            open,
            sender_comp_id: FixedStr::new("OCGC"),
            clients: BTreeMap::new(),
        }
    }

    /// Register a Comp ID with its source IPs; `blocked` answers reject code 3.
    pub fn add_client(&mut self, comp_id: CompId, source_ips: Vec<IpAddr>, blocked: bool) {
        self.clients.insert(comp_id, (source_ips, blocked));
    }

    /// Handle the bytes received so far on a lookup connection from `source_ip`.
    pub fn handle_request(&self, source_ip: IpAddr, bytes: &[u8]) -> LookupOutcome {
        if !self.open {
            return LookupOutcome::Drop;
        }
        let frame = match frame::decode_frame(bytes, 1_024) {
            Ok(Some((f, _))) => f,
            Ok(None) => return LookupOutcome::NeedMore,
            Err(_) => return LookupOutcome::Drop,
        };
        let Ok(Message::LookupRequest(req)) = frame.message() else {
            return LookupOutcome::Drop;
        };
        let known = CompId::new(frame.header.comp_id.as_str())
            .ok()
            .and_then(|c| self.clients.get(&c));
        let reject = match known {
            None => Some((LookupRejectCode::InvalidClient, "invalid client")),
            Some((ips, _)) if !ips.contains(&source_ip) => {
                Some((LookupRejectCode::InvalidClient, "invalid client"))
            }
            Some((_, true)) => Some((LookupRejectCode::ClientBlocked, "client blocked")),
            _ if req.type_of_service != LOOKUP_SERVICE_ORDER_INPUT => {
                Some((LookupRejectCode::InvalidServiceType, "invalid service type"))
            }
            _ if req.protocol_type != LOOKUP_PROTOCOL_BINARY => {
                Some((LookupRejectCode::InvalidProtocol, "invalid protocol"))
            }
            _ => None,
        };
        let response = match reject {
            Some((code, text)) => LookupResponse {
                status: LookupStatus::Rejected,
                lookup_reject_code: Some(code),
                reason: Some(VarStr::truncated(text)),
                primary_ip: None,
                primary_port: None,
                secondary_ip: None,
                secondary_port: None,
            },
            None => LookupResponse {
                status: LookupStatus::Accepted,
                lookup_reject_code: None,
                reason: None,
                primary_ip: FixedStr::new_checked(&self.primary.0).ok(),
                primary_port: Some(self.primary.1),
                secondary_ip: FixedStr::new_checked(&self.secondary.0).ok(),
                secondary_port: Some(self.secondary.1),
            },
        };
        // Lookup messages always carry sequence number 1.
        let bytes =
            frame::encode(1, false, false, &self.sender_comp_id, &response.into()).expect("fits");
        LookupOutcome::Reply(bytes)
    }
}
