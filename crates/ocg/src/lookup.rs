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
    /// The FIX gateway's primary and secondary endpoints, handed to FIX Comp IDs asking with
    /// Protocol Type 2 ([`LOOKUP_PROTOCOL_FIX`]); `None`: FIX is not served by the lookup
    /// (Protocol Type 2 gets "invalid protocol" and FIX users are given the gateway directly).
    pub fix_gateways: Option<((String, u16), (String, u16))>,
    /// Comp ID -> (registered source IPs, blocked, its protocol type).
    clients: BTreeMap<CompId, (Vec<IpAddr>, bool, u8)>,
}

impl LookupService {
    pub fn new(primary: (String, u16), secondary: (String, u16), open: bool) -> Self {
        LookupService {
            primary,
            secondary,
            open,
            sender_comp_id: FixedStr::new("OCGC"),
            fix_gateways: None,
            clients: BTreeMap::new(),
        }
    }

    /// Register a Comp ID with its source IPs; `blocked` answers reject code 3.
    pub fn add_client(&mut self, comp_id: CompId, source_ips: Vec<IpAddr>, blocked: bool) {
        self.clients
            .insert(comp_id, (source_ips, blocked, LOOKUP_PROTOCOL_BINARY));
    }

    /// Register a FIX Comp ID: it is answered with [`LookupService::fix_gateways`] when it asks
    /// with Protocol Type [`LOOKUP_PROTOCOL_FIX`] (and refused "invalid protocol" for binary).
    pub fn add_fix_client(&mut self, comp_id: CompId, source_ips: Vec<IpAddr>, blocked: bool) {
        self.clients
            .insert(comp_id, (source_ips, blocked, LOOKUP_PROTOCOL_FIX));
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
            Some((ips, _, _)) if !ips.contains(&source_ip) => {
                Some((LookupRejectCode::InvalidClient, "invalid client"))
            }
            Some((_, true, _)) => Some((LookupRejectCode::ClientBlocked, "client blocked")),
            _ if req.type_of_service != LOOKUP_SERVICE_ORDER_INPUT => {
                Some((LookupRejectCode::InvalidServiceType, "invalid service type"))
            }
            Some((_, _, protocol)) if req.protocol_type != *protocol => {
                Some((LookupRejectCode::InvalidProtocol, "invalid protocol"))
            }
            _ if req.protocol_type == LOOKUP_PROTOCOL_FIX && self.fix_gateways.is_none() => {
                Some((LookupRejectCode::InvalidProtocol, "invalid protocol"))
            }
            _ => None,
        };
        let (primary, secondary) = match (&self.fix_gateways, req.protocol_type) {
            (Some(fix), LOOKUP_PROTOCOL_FIX) => (&fix.0, &fix.1),
            _ => (&self.primary, &self.secondary),
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
                primary_ip: FixedStr::new_checked(&primary.0).ok(),
                primary_port: Some(primary.1),
                secondary_ip: FixedStr::new_checked(&secondary.0).ok(),
                secondary_port: Some(secondary.1),
            },
        };
        // Lookup messages always carry sequence number 1.
        let bytes =
            frame::encode(1, false, false, &self.sender_comp_id, &response.into()).expect("fits");
        LookupOutcome::Reply(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::LookupRequest;

    fn ask(svc: &LookupService, comp: &str, protocol_type: u8) -> LookupResponse {
        let req = LookupRequest {
            type_of_service: LOOKUP_SERVICE_ORDER_INPUT,
            protocol_type,
        };
        let bytes = frame::encode(1, false, false, &FixedStr::new(comp), &req.into()).unwrap();
        let ip: IpAddr = [127, 0, 0, 1].into();
        match svc.handle_request(ip, &bytes) {
            LookupOutcome::Reply(r) => match crate::decode_one(&r) {
                Ok((_, Message::LookupResponse(x))) => x,
                other => panic!("not a lookup response: {other:?}"),
            },
            other => panic!("no reply: {other:?}"),
        }
    }

    #[test]
    fn fix_comp_ids_get_the_fix_gateway_with_protocol_type_2() {
        let host = |p: u16| ("127.0.0.1".to_string(), p);
        let mut svc = LookupService::new(host(1), host(2), true);
        let ip: IpAddr = [127, 0, 0, 1].into();
        svc.add_client(CompId::new("CB0001").unwrap(), vec![ip], false);
        svc.add_fix_client(CompId::new("CF0001").unwrap(), vec![ip], false);
        // No FIX gateway behind the lookup: Protocol Type 2 is an invalid protocol.
        let r = ask(&svc, "CF0001", LOOKUP_PROTOCOL_FIX);
        assert_eq!(r.status, LookupStatus::Rejected);
        assert_eq!(
            r.lookup_reject_code,
            Some(LookupRejectCode::InvalidProtocol)
        );
        svc.fix_gateways = Some((host(7), host(8)));
        let r = ask(&svc, "CF0001", LOOKUP_PROTOCOL_FIX);
        assert_eq!(r.status, LookupStatus::Accepted);
        assert_eq!((r.primary_port, r.secondary_port), (Some(7), Some(8)));
        // Each Comp ID gets its own protocol's gateway only.
        let r = ask(&svc, "CB0001", LOOKUP_PROTOCOL_BINARY);
        assert_eq!((r.primary_port, r.secondary_port), (Some(1), Some(2)));
        for (comp, p) in [
            ("CB0001", LOOKUP_PROTOCOL_FIX),
            ("CF0001", LOOKUP_PROTOCOL_BINARY),
        ] {
            let r = ask(&svc, comp, p);
            assert_eq!(r.status, LookupStatus::Rejected, "{comp} asking {p}");
            assert_eq!(
                r.lookup_reject_code,
                Some(LookupRejectCode::InvalidProtocol)
            );
        }
    }
}
