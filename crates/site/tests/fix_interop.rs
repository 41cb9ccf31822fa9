//! Interoperability: jspurefix (npm, an independent FIX engine) as the initiator against a real
//! site's FIX gateway, FIXT.1.1 with DefaultApplVerID 9. Logon, orders, a fill from a binary
//! participant, cancel/replace, OrderCancelReject, cancel, a dropped connection with the fill
//! generated meanwhile resent on the next logon, logout. The test asserts on what the initiator
//! printed it received (`crates/fix/interop/site_initiator.js`).
//!
//! Runs only when `node` and `crates/fix/interop/node_modules/jspurefix` are present (CI installs
//! them in `.ci/run`); otherwise it prints why it is skipped and passes.

mod common;

use common::*;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twinsite_ocg::{ExecType, Side};
use twinsite_site::config::{ParticipantEntry, Protocol};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fix/interop")
}

fn skip_reason() -> Option<String> {
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("node is not installed".into()),
    }
    let pkg = interop_dir().join("node_modules/jspurefix/package.json");
    if !pkg.exists() {
        return Some(format!(
            "{} missing (run npm ci in crates/fix/interop)",
            pkg.display()
        ));
    }
    None
}

/// A running initiator: its stdout lines arrive on a channel.
struct Node {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Node {
    fn start(args: &[String]) -> Node {
        let mut child = Command::new("node")
            .arg(interop_dir().join("site_initiator.js"))
            .args(args)
            .current_dir(interop_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                println!("jspurefix: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Node {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Wait for a `STEP` line starting with `prefix`; returns it.
    async fn step(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix("STEP ") {
                        if rest.starts_with(prefix) {
                            return rest.to_string();
                        }
                    }
                }
                _ => panic!(
                    "jspurefix never printed STEP {prefix}; it printed {:#?}",
                    self.seen
                ),
            }
        }
    }

    fn finish(mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "jspurefix exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "jspurefix did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[tokio::test]
async fn jspurefix_initiator_against_a_real_site() {
    if let Some(why) = skip_reason() {
        println!("skipped: {why}");
        return;
    }
    let mut cfg = site_config(vec![
        ParticipantEntry {
            protocol: Protocol::Fix,
            ..participant("Alpha", "FX0001", 1001)
        },
        participant("Beta", "CO0002", 1002),
    ]);
    cfg.site.fix_gateway = Some("127.0.0.1:0".parse().unwrap());
    let site = start(cfg).await;
    let port = site.fix_gateway.unwrap().port().to_string();
    let key = key_path().display().to_string();
    let store = std::env::temp_dir().join(format!(
        "twinsite-jspurefix-{}-{}",
        std::process::id(),
        twinsite_site::gateway::wall_clock().0
    ));
    std::fs::create_dir_all(&store).unwrap();
    let store = store.display().to_string();
    let mut first = Node::start(&[
        "first".into(),
        port.clone(),
        key.clone(),
        "FX0001".into(),
        PASSWORD.into(),
        store.clone(),
    ]);
    first.step("logged on").await;
    let new = first.step("er J1").await;
    assert!(new.contains("exec-type 0 status 0"), "{new}");
    first.step("rested J1").await;
    // A binary participant (logged on now: jspurefix takes seconds to load its dictionary, longer
    // than the test's heartbeat interval) fills 400 of it.
    let mut beta = Raw::logon(site.gateway_primary, "CO0002").await;
    beta.send(new_order("B1", 1002, Side::Sell, "65.30", 400))
        .await;
    beta.expect_er(ExecType::Trade).await;
    let fill = first.step("er J1 exec-type F").await;
    assert!(
        fill.contains("status 1 last 400 cum 400 leaves 800"),
        "{fill}"
    );
    let replaced = first.step("er J2").await;
    assert!(replaced.contains("exec-type 5"), "{replaced}");
    first.step("cancel-reject J3").await;
    let cancelled = first.step("er J5").await;
    assert!(cancelled.contains("exec-type 4 status 4"), "{cancelled}");
    let rested = first.step("er J4").await;
    assert!(rested.contains("exec-type 0"), "{rested}");
    let dropped = first.step("dropped").await;
    first.finish();
    let nums: Vec<String> = dropped
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect();
    assert_eq!(nums.len(), 2, "{dropped}");

    // While the initiator is away, J4 is filled.
    beta.send(new_order("B2", 1002, Side::Sell, "65.25", 400))
        .await;
    beta.expect_er(ExecType::Trade).await;
    beta.logout().await;

    // The initiator comes back with its sequence numbers: the fill is resent (PossDupFlag=Y),
    // then it logs out.
    let mut second = Node::start(&[
        "second".into(),
        port,
        key,
        "FX0001".into(),
        PASSWORD.into(),
        store.clone(),
        nums[1].clone(),
    ]);
    second.step("logged on").await;
    let resent = second.step("er J4 exec-type F").await;
    assert!(resent.contains("last 400"), "{resent}");
    assert!(resent.contains("possdup Y"), "{resent}");
    second.step("stopped").await;
    second.finish();
    let _ = std::fs::remove_dir_all(&store);
    site.shutdown();
}
