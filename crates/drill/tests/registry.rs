//! Registration: deadline, duplicates, unknown kinds, durable store, credential packs.

use std::io::Write;
use std::path::PathBuf;
use twinsite_core::{ParticipantKind, Platform, Timestamp};
use twinsite_drill::registry::*;
use twinsite_drill::session::Session;

fn session() -> Session {
    Session::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sessions/ps2-2023-11-25.toml"),
    )
    .unwrap()
}

fn store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "twinsite-drill-{}-{name}-{}",
        std::process::id(),
        twinsite_site::gateway::wall_clock().0
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("registrations.jsonl")
}

fn req(firm: &str, kind: &str, brokers: &[u32]) -> RegistrationRequest {
    RegistrationRequest {
        firm: firm.into(),
        kind: kind.into(),
        broker_ids: brokers.to_vec(),
        contact: "ops desk +852 0000 0000".into(),
        source_ips: vec![],
        protocols: vec![],
    }
}

/// 20 November 2023, well before the deadline.
fn early() -> Timestamp {
    Timestamp::from_hkt(2023, 11, 20, 10, 0, 0)
}

#[test]
fn refused_after_the_deadline_with_a_clear_message() {
    let s = session();
    let mut r = Registry::open(&store("deadline"), &s).unwrap();
    // On the deadline day itself it is still open.
    r.register(
        req("Alpha Securities", "EP", &[1001]),
        Timestamp::from_hkt(2023, 11, 22, 23, 0, 0),
    )
    .unwrap();
    let e = r
        .register(
            req("Late Ltd", "EP", &[1002]),
            Timestamp::from_hkt(2023, 11, 23, 9, 0, 0),
        )
        .unwrap_err();
    assert!(matches!(e, RegisterError::DeadlinePassed { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("2023-11-22 23:59:59"), "{msg}");
    assert!(msg.contains("2023-11-23 09:00:00"), "{msg}");
    assert_eq!(r.registrations().len(), 1);
}

#[test]
fn duplicate_firm_unknown_kind_and_taken_broker_are_refused() {
    let s = session();
    let mut r = Registry::open(&store("dup"), &s).unwrap();
    r.register(req("Alpha Securities", "EP", &[1001]), early())
        .unwrap();
    let e = r
        .register(req(" alpha securities ", "EP", &[1005]), early())
        .unwrap_err();
    assert!(matches!(e, RegisterError::DuplicateFirm(_)), "{e}");
    assert!(e.to_string().contains("already registered"));
    let e = r
        .register(req("Beta", "BROKER", &[1002]), early())
        .unwrap_err();
    assert!(matches!(e, RegisterError::UnknownKind(_)), "{e}");
    assert!(e.to_string().contains("EP"), "{e}");
    let e = r
        .register(req("Gamma", "EP", &[1001]), early())
        .unwrap_err();
    assert!(
        matches!(e, RegisterError::BrokerTaken { broker: 1001, .. }),
        "{e}"
    );
    let e = r.register(req("Delta", "EP", &[]), early()).unwrap_err();
    assert!(matches!(e, RegisterError::Invalid(_)), "{e}");
    assert_eq!(r.registrations().len(), 1);
}

#[test]
fn kinds_get_the_platforms_of_the_session() {
    let s = session();
    let mut r = Registry::open(&store("kinds"), &s).unwrap();
    let ep = r.register(req("Alpha", "EP", &[1001]), early()).unwrap();
    let cc = r.register(req("Bravo", "ccep", &[2001]), early()).unwrap();
    let iv = r.register(req("Vendor", "IV", &[]), early()).unwrap();
    assert_eq!(ep.comp_ids.len(), 1);
    assert_eq!(ep.comp_ids[0].platform, Platform::OtpC);
    assert_eq!(ep.comp_ids[0].comp_id, "CB0001");
    assert_eq!(cc.kind, ParticipantKind::Ccep);
    assert_eq!(cc.comp_ids[0].platform, Platform::OtpCsc);
    assert_eq!(cc.comp_ids[0].comp_id, "SB0002");
    assert!(iv.comp_ids.is_empty());
    assert_eq!(iv.id(), "IV0003");
    for c in ep.comp_ids.iter().chain(&cc.comp_ids) {
        assert_eq!(c.password.len(), 8);
        assert!(c.password.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(c.password.bytes().any(|b| b.is_ascii_digit()));
        assert!(c.password.bytes().any(|b| b.is_ascii_alphabetic()));
    }
    // Seeded: the same session and order give the same passwords.
    let mut r2 = Registry::open(&store("kinds2"), &s).unwrap();
    let ep2 = r2.register(req("Alpha", "EP", &[1001]), early()).unwrap();
    assert_eq!(ep2.comp_ids[0].password, ep.comp_ids[0].password);
    assert_ne!(cc.comp_ids[0].password, ep.comp_ids[0].password);
}

#[test]
fn a_restart_loses_nothing_and_a_torn_tail_is_cut() {
    let s = session();
    let path = store("restart");
    let regs = {
        let mut r = Registry::open(&path, &s).unwrap();
        r.register(req("Alpha", "EP", &[1001]), early()).unwrap();
        r.register(req("Bravo", "CCEP", &[2001, 2002]), early())
            .unwrap();
        r.registrations().to_vec()
    };
    // A crash in the middle of a third write: half a line, never acknowledged.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"record\":\"registration\",\"number\":3,\"fi")
        .unwrap();
    let mut r = Registry::open(&path, &s).unwrap();
    assert_eq!(r.registrations(), regs.as_slice());
    // Duplicates are still caught after the restart, and numbering continues.
    assert!(matches!(
        r.register(req("ALPHA", "EP", &[1009]), early()),
        Err(RegisterError::DuplicateFirm(_))
    ));
    let c = r.register(req("Charlie", "EP", &[3001]), early()).unwrap();
    assert_eq!(c.number, 3);
    let r = Registry::open(&path, &s).unwrap();
    assert_eq!(r.registrations().len(), 3);
    assert_eq!(r.find("charlie").unwrap().comp_ids[0].comp_id, "CB0003");
}

#[test]
fn a_corrupt_middle_line_is_an_error_with_its_line() {
    let s = session();
    let path = store("corrupt");
    {
        let mut r = Registry::open(&path, &s).unwrap();
        r.register(req("Alpha", "EP", &[1001]), early()).unwrap();
    }
    let mut text = std::fs::read_to_string(&path).unwrap();
    text = format!("garbage\n{text}");
    std::fs::write(&path, text).unwrap();
    let e = Registry::open(&path, &s).err().unwrap();
    assert!(e.to_string().contains("line 1"), "{e}");
}

#[test]
fn credential_pack_and_rundown() {
    let s = session();
    let mut r = Registry::open(&store("pack"), &s).unwrap();
    let reg = r
        .register(req("Alpha <Securities>", "EP", &[1001]), early())
        .unwrap();
    let key = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../site/tests/data/test-key.pem");
    let pem = public_key_pem(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let pack = issue(&s, &reg, &pem, None);
    assert_eq!(pack.lookup_endpoints, s.lookup);
    assert_eq!(pack.rts_endpoints.len(), 2);
    assert!(pack.omd_channels.iter().all(|c| c.platform == "OMD-C"));
    assert!(!pack.omd_channels.is_empty());
    let md = &pack.rundown_markdown;
    assert!(md.contains("CB0001"), "{md}");
    assert!(md.contains(&reg.comp_ids[0].password));
    assert!(md.contains("08:00 to 10:00"));
    assert!(md.contains("~11:00 to 12:10"));
    assert!(md.contains("not 1"));
    let html = &pack.rundown_html;
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("<h3>08:00 to 10:00: At the Primary Site</h3>"),
        "{html}"
    );
    assert!(html.contains("Alpha &lt;Securities&gt;"));
    assert!(!html.contains("<Securities>"));
    // Overridden endpoints (ports bound at start).
    let bound: Vec<std::net::SocketAddr> = (0..4)
        .map(|i| format!("127.0.0.1:{}", 40000 + i).parse().unwrap())
        .collect();
    assert_eq!(issue(&s, &reg, &pem, Some(&bound)).lookup_endpoints, bound);
    let dir = store("packfiles").parent().unwrap().join("packs");
    let files = pack.write(&dir, &reg.id()).unwrap();
    assert_eq!(files.len(), 4);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(json["comp_ids"][0]["comp_id"], "CB0001");
    assert_eq!(json["lookup_endpoints"].as_array().unwrap().len(), 4);
}

#[test]
fn registrations_become_site_participants() {
    let s = session();
    let mut r = Registry::open(&store("entries"), &s).unwrap();
    r.register(req("Alpha", "EP", &[1001, 1002]), early())
        .unwrap();
    r.register(req("Bravo", "CCEP", &[2001]), early()).unwrap();
    r.register(req("Vendor", "IV", &[]), early()).unwrap();
    let entries = participant_entries(r.registrations());
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].comp_id, "CB0001");
    assert_eq!(entries[0].kind, "EP");
    assert_eq!(entries[0].broker_ids, vec![1001, 1002]);
    assert_eq!(entries[1].kind, "CCEP");
    for e in &entries {
        e.comp().unwrap();
        e.participant_kind().unwrap();
    }
}

fn with_protocols(mut r: RegistrationRequest, p: &[&str]) -> RegistrationRequest {
    r.protocols = p.iter().map(|s| s.to_string()).collect();
    r
}

#[test]
fn an_ep_registers_for_binary_fix_or_both() {
    let s = session();
    let path = store("protocols");
    let mut r = Registry::open(&path, &s).unwrap();
    let bin = r.register(req("Alpha", "EP", &[1001]), early()).unwrap();
    let fix = r
        .register(
            with_protocols(req("Bravo", "EP", &[1002]), &["fix"]),
            early(),
        )
        .unwrap();
    let both = r
        .register(
            with_protocols(req("Charlie", "EP", &[1003]), &["FIX", "binary", "fix"]),
            early(),
        )
        .unwrap();
    // Default: what registration always issued.
    assert_eq!(bin.comp_ids.len(), 1);
    assert_eq!(bin.comp_ids[0].protocol, Protocol::Binary);
    // FIX only: an OTP-C FIX Comp ID, which is also its id in reports.
    assert_eq!(fix.comp_ids.len(), 1);
    let g = &fix.comp_ids[0];
    assert_eq!((g.platform, g.protocol), (Platform::OtpC, Protocol::Fix));
    assert_eq!(g.comp_id, "CF0002");
    assert_eq!(fix.id(), "CF0002");
    assert_eq!(g.password.len(), 8);
    // Both: binary first (its id), then FIX, each with its own password.
    let ids: Vec<&str> = both.comp_ids.iter().map(|c| c.comp_id.as_str()).collect();
    assert_eq!(ids, ["CB0003", "CF0003"]);
    assert_eq!(both.id(), "CB0003");
    assert_ne!(both.comp_ids[0].password, both.comp_ids[1].password);
    assert_eq!(both.grant(Protocol::Fix).unwrap().comp_id, "CF0003");
    // Adding FIX does not change the binary password a firm would have had.
    let mut r2 = Registry::open(&store("protocols2"), &s).unwrap();
    r2.register(req("Alpha", "EP", &[1001]), early()).unwrap();
    r2.register(req("Bravo", "EP", &[1002]), early()).unwrap();
    let plain = r2.register(req("Charlie", "EP", &[1003]), early()).unwrap();
    assert_eq!(plain.comp_ids[0].password, both.comp_ids[0].password);

    // Refusals: an unknown protocol, FIX for a CCEP (FIX is OTP-C's), protocols for a vendor.
    let e = r
        .register(
            with_protocols(req("Delta", "EP", &[1004]), &["fax"]),
            early(),
        )
        .unwrap_err();
    assert!(matches!(e, RegisterError::UnknownProtocol(_)), "{e}");
    assert!(e.to_string().contains("\"fax\""), "{e}");
    let e = r
        .register(
            with_protocols(req("Echo", "CCEP", &[2001]), &["fix"]),
            early(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("OTP-C only"), "{e}");
    let e = r
        .register(with_protocols(req("Vendor", "IV", &[]), &["fix"]), early())
        .unwrap_err();
    assert!(e.to_string().contains("information vendors"), "{e}");
    // Refused registrations are not stored; the three good ones survive a restart.
    drop(r);
    let r = Registry::open(&path, &s).unwrap();
    assert_eq!(r.registrations().len(), 3);
    assert_eq!(r.registrations()[2].comp_ids.len(), 2);
}

#[test]
fn fix_credentials_in_the_pack_rundown_and_site_table() {
    let s = session();
    let mut r = Registry::open(&store("fixpack"), &s).unwrap();
    let reg = r
        .register(
            with_protocols(req("Alpha", "EP", &[1001]), &["binary", "fix"]),
            early(),
        )
        .unwrap();
    let key = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../site/tests/data/test-key.pem");
    let pack = issue(&s, &reg, &public_key_pem(&key).unwrap(), None);
    assert_eq!(pack.fix_sessions.len(), 1);
    let f = &pack.fix_sessions[0];
    assert_eq!(f.sender_comp_id, "CF0001");
    assert_eq!(f.target_comp_id, "HKEX");
    assert_eq!(f.begin_string, "FIXT.1.1");
    assert_eq!(f.default_appl_ver_id, "9");
    assert_eq!(f.lookup_protocol_type, 2);
    // The same four lookup endpoints serve both protocols.
    assert_eq!(pack.lookup_endpoints, s.lookup);
    let md = &pack.rundown_markdown;
    let fix_pw = &reg.grant(Protocol::Fix).unwrap().password;
    assert!(
        md.contains("SenderCompID `CF0001`, TargetCompID `HKEX`"),
        "{md}"
    );
    assert!(md.contains(fix_pw.as_str()), "{md}");
    assert!(md.contains("Protocol Type 2"), "{md}");
    assert!(md.contains("ResetSeqNumFlag (141) is not used"), "{md}");
    assert!(md.contains("FIX: Look up the FIX gateway again"), "{md}");
    // A binary-only EP's pack says nothing about FIX.
    let bin = r.register(req("Bravo", "EP", &[1002]), early()).unwrap();
    let p2 = issue(&s, &bin, "", None);
    assert!(p2.fix_sessions.is_empty());
    assert!(!p2.rundown_markdown.contains("FIX"));
    let json = serde_json::to_value(&p2).unwrap();
    assert!(json.get("fix_sessions").is_none());
    // The site table: one entry per Comp ID, FIX ones for the FIX gateway; the RTS knows both.
    let entries = participant_entries(r.registrations());
    let rows: Vec<(&str, bool)> = entries
        .iter()
        .map(|e| (e.comp_id.as_str(), e.is_fix()))
        .collect();
    assert_eq!(
        rows,
        [("CB0001", false), ("CF0001", true), ("CB0002", false)]
    );
    assert_eq!(entries[1].password, *fix_pw);
    assert_eq!(entries[1].broker_ids, vec![1001]);
    let users = rts_usernames(r.registrations());
    assert!(users.contains(&"CF0001".to_string()));
}
