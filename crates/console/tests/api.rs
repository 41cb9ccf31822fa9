//! The console's HTTP API against a real server on 127.0.0.1:0, with a small HTTP/1.1 client:
//! sign-in, refused actions, viewers, malformed requests, cross-site requests, actions reaching
//! the runtime's channel and its answers, server-sent events, report files.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use twinsite_console::*;

const OP: &str = "op-secret-token";
const VIEW: &str = "viewer-token";
const WAIT: Duration = Duration::from_secs(10);

struct Resp {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Resp {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_string()
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((len, rest)) = s.split_once("\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut s = timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a full response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .map(|v| v == "chunked")
        .unwrap_or(false)
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Resp {
        status,
        headers,
        body,
    }
}

struct Fixture {
    addr: SocketAddr,
    state: watch::Sender<ConsoleState>,
    actions: mpsc::Receiver<OperatorAction>,
    out: PathBuf,
}

impl Fixture {
    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }
    async fn login(&self, token: &str, name: &str) -> (String, String) {
        let origin = self.origin();
        let r = http(
            self.addr,
            "POST",
            "/login",
            &[("Content-Type", "application/json"), ("Origin", &origin)],
            &serde_json::json!({ "token": token, "name": name }).to_string(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let set = r.headers.get("set-cookie").expect("a cookie").clone();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let cookie = set.split(';').next().unwrap().to_string();
        (cookie, r.json()["csrf"].as_str().unwrap().to_string())
    }
    fn no_action(&mut self) {
        assert!(
            self.actions.try_recv().is_err(),
            "an action reached the runtime"
        );
    }
}

async fn fixture() -> Fixture {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let out = std::env::temp_dir().join(format!("twinsite-console-api-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut config = ConsoleConfig::new(OP);
    config.viewer_token = Some(VIEW.into());
    config.output_dir = Some(out.clone());
    config.action_timeout = Duration::from_secs(5);
    let mut initial = ConsoleState::default();
    initial.session.name = "PS2 test".into();
    initial.session.now_label = "08:00:00".into();
    let (state, rx) = watch::channel(initial);
    let (tx, actions) = mpsc::channel(8);
    let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), config, rx, tx)
        .await
        .unwrap();
    Fixture {
        addr,
        state,
        actions,
        out,
    }
}

/// Answer the next action with `outcome`, returning what it was.
fn answer_next(
    mut rx: mpsc::Receiver<OperatorAction>,
    outcome: ActionOutcome,
) -> tokio::task::JoinHandle<(String, ActionMeta, mpsc::Receiver<OperatorAction>)> {
    tokio::spawn(async move {
        let a = timeout(WAIT, rx.recv())
            .await
            .expect("an action in time")
            .expect("an action");
        let (name, by) = (a.name().to_string(), a.by().clone());
        a.answer(outcome);
        (name, by, rx)
    })
}

#[tokio::test]
async fn page_and_assets_are_embedded_and_public() {
    let f = fixture().await;
    let r = http(f.addr, "GET", "/", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("text/html"));
    assert!(r.body.contains("/assets/console.js") && r.body.contains("/assets/console.css"));
    assert!(
        !r.body.contains("http://") && !r.body.contains("https://"),
        "no external resources"
    );
    assert!(r.headers["content-security-policy"].contains("default-src 'self'"));
    let js = http(f.addr, "GET", "/assets/console.js", &[], "").await;
    assert_eq!(js.status, 200);
    assert!(js.headers["content-type"].starts_with("text/javascript"));
    assert!(js.body.contains("EventSource"));
    let css = http(f.addr, "GET", "/assets/console.css", &[], "").await;
    assert!(css.headers["content-type"].starts_with("text/css"));
    assert_eq!(http(f.addr, "GET", "/nope", &[], "").await.status, 404);
}

#[tokio::test]
async fn unknown_host_names_are_refused() {
    let f = fixture().await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    let req = format!("GET /api/state HTTP/1.1\r\nHost: rebound.example:{}\r\nAuthorization: Bearer {OP}\r\nConnection: close\r\n\r\n", f.addr.port());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 421"));
}

#[tokio::test]
async fn state_needs_a_token() {
    let f = fixture().await;
    let r = http(f.addr, "GET", "/api/state", &[], "").await;
    assert_eq!(r.status, 401);
    assert!(r.error().contains("sign in"));
    let r = http(
        f.addr,
        "GET",
        "/api/state",
        &[("Authorization", "Bearer wrong")],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    for t in [OP, VIEW] {
        let r = http(
            f.addr,
            "GET",
            "/api/state",
            &[("Authorization", &Fixture::bearer(t))],
            "",
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["session"]["name"], "PS2 test");
    }
    assert_eq!(
        http(f.addr, "GET", "/api/events", &[], "").await.status,
        401
    );
    assert_eq!(http(f.addr, "GET", "/api/me", &[], "").await.status, 401);
}

#[tokio::test]
async fn actions_without_a_token_are_refused() {
    let mut f = fixture().await;
    for name in [
        "register",
        "failover-now",
        "crash-failover",
        "pause",
        "resume",
    ] {
        let r = http(
            f.addr,
            "POST",
            &format!("/api/actions/{name}"),
            &[("Content-Type", "application/json")],
            r#"{"confirm":true}"#,
        )
        .await;
        assert_eq!(r.status, 401, "{name}: {}", r.body);
        assert!(r.error().contains("operator token"));
        let r = http(
            f.addr,
            "POST",
            &format!("/api/actions/{name}"),
            &[("Authorization", "Bearer guess")],
            "",
        )
        .await;
        assert_eq!(r.status, 401, "{name}");
    }
    f.no_action();
    // The refusals are in the activity log.
    let r = http(
        f.addr,
        "GET",
        "/api/state",
        &[("Authorization", &Fixture::bearer(OP))],
        "",
    )
    .await;
    let log = r.json()["activity"].to_string();
    assert!(log.contains("failover-now refused: not signed in"), "{log}");
    assert_eq!(
        http(
            f.addr,
            "POST",
            "/api/actions/explode",
            &[("Authorization", &Fixture::bearer(OP))],
            ""
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn viewers_cannot_act() {
    let mut f = fixture().await;
    let r = http(
        f.addr,
        "POST",
        "/api/actions/pause",
        &[("Authorization", &Fixture::bearer(VIEW))],
        "",
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.error().contains("read-only"), "{}", r.body);
    let (cookie, csrf) = f.login(VIEW, "participant").await;
    let me = http(f.addr, "GET", "/api/me", &[("Cookie", &cookie)], "").await;
    assert_eq!(me.json()["role"], "viewer");
    let origin = f.origin();
    let r = http(
        f.addr,
        "POST",
        "/api/actions/failover-now",
        &[
            ("Cookie", &cookie),
            ("Origin", &origin),
            ("X-CSRF-Token", &csrf),
            ("Content-Type", "application/json"),
        ],
        r#"{"confirm":true}"#,
    )
    .await;
    assert_eq!(r.status, 403);
    f.no_action();
    // Viewers see the state.
    assert_eq!(
        http(f.addr, "GET", "/api/state", &[("Cookie", &cookie)], "")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn malformed_requests_get_400_with_a_message() {
    let mut f = fixture().await;
    let auth = Fixture::bearer(OP);
    let json = ("Content-Type", "application/json");
    let r = http(
        f.addr,
        "POST",
        "/api/actions/register",
        &[("Authorization", &auth), json],
        "{not json",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error().starts_with("malformed request body"),
        "{}",
        r.body
    );
    let r = http(
        f.addr,
        "POST",
        "/api/actions/register",
        &[("Authorization", &auth), json],
        r#"{"firm":"A"}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("kind"), "{}", r.body);
    let r = http(
        f.addr,
        "POST",
        "/api/actions/register",
        &[("Authorization", &auth), json],
        r#"{"firm":"A","kind":"EP","broker_ids":["x"]}"#,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http(
        f.addr,
        "POST",
        "/api/actions/register",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        r#"{"firm":"A","kind":"EP"}"#,
    )
    .await;
    assert_eq!(r.status, 415);
    let r = http(
        f.addr,
        "POST",
        "/api/actions/failover-now",
        &[("Authorization", &auth), json],
        r#"{"confirm":"yes"}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    // A failover without the confirmation is not sent.
    let r = http(
        f.addr,
        "POST",
        "/api/actions/failover-now",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("confirm"), "{}", r.body);
    let r = http(f.addr, "POST", "/login", &[json], "[]").await;
    assert_eq!(r.status, 400);
    f.no_action();
}

#[tokio::test]
async fn cross_site_requests_are_refused() {
    let mut f = fixture().await;
    let (cookie, csrf) = f.login(OP, "alice").await;
    let json = ("Content-Type", "application/json");
    let body = r#"{"confirm":true}"#;
    // Another site's page posting with the operator's cookie.
    for origin in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        let r = http(
            f.addr,
            "POST",
            "/api/actions/crash-failover",
            &[
                ("Cookie", &cookie),
                ("Origin", origin),
                ("X-CSRF-Token", &csrf),
                json,
            ],
            body,
        )
        .await;
        assert_eq!(r.status, 403, "{origin}");
        assert!(r.error().contains("cross-site"), "{}", r.body);
    }
    let r = http(
        f.addr,
        "POST",
        "/api/actions/crash-failover",
        &[("Cookie", &cookie), ("Sec-Fetch-Site", "cross-site"), json],
        body,
    )
    .await;
    assert_eq!(r.status, 403);
    let origin = f.origin();
    // No origin information at all with a cookie.
    let r = http(
        f.addr,
        "POST",
        "/api/actions/crash-failover",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf), json],
        body,
    )
    .await;
    assert_eq!(r.status, 403);
    // Same origin but without, or with the wrong, CSRF token.
    let r = http(
        f.addr,
        "POST",
        "/api/actions/crash-failover",
        &[("Cookie", &cookie), ("Origin", &origin), json],
        body,
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.error().contains("X-CSRF-Token"));
    let r = http(
        f.addr,
        "POST",
        "/api/actions/crash-failover",
        &[
            ("Cookie", &cookie),
            ("Origin", &origin),
            ("X-CSRF-Token", "0000"),
            json,
        ],
        body,
    )
    .await;
    assert_eq!(r.status, 403);
    f.no_action();
    // Sign-in from another site is refused too.
    let r = http(
        f.addr,
        "POST",
        "/login",
        &[json, ("Origin", "http://evil.example")],
        &format!(r#"{{"token":"{OP}"}}"#),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = http(f.addr, "POST", "/login", &[json], r#"{"token":"wrong"}"#).await;
    assert_eq!(r.status, 401);
    // And the genuine page gets through.
    let answer = answer_next(f.actions, Ok(ActionOk::new("primary killed")));
    let r = http(
        f.addr,
        "POST",
        "/api/actions/crash-failover",
        &[
            ("Cookie", &cookie),
            ("Origin", &origin),
            ("X-CSRF-Token", &csrf),
            json,
        ],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (name, by, _rx) = answer.await.unwrap();
    assert_eq!(name, "crash-failover");
    assert_eq!(by.who, "operator:alice");
}

#[tokio::test]
async fn actions_reach_the_runtime_and_its_answer_comes_back() {
    let f = fixture().await;
    let auth = Fixture::bearer(OP);
    let json = ("Content-Type", "application/json");
    // Registration reaches the channel with its fields.
    let rx = f.actions;
    let task = tokio::spawn(async move {
        let mut rx = rx;
        let a = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        match a {
            OperatorAction::Register { request, by, reply } => {
                assert_eq!(request.firm, "Acme Securities");
                assert_eq!(request.kind, "EP");
                assert_eq!(request.broker_ids, vec![1234, 1235]);
                assert_eq!(by.who, "operator");
                assert!(by.at_ms > 0);
                reply
                    .send(Ok(ActionOk {
                        message: "registered P007 Acme Securities".into(),
                        data: Some(serde_json::json!({"id": "P007"})),
                    }))
                    .unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
        rx
    });
    let r = http(
        f.addr,
        "POST",
        "/api/actions/register",
        &[("Authorization", &auth), json],
        r#"{"firm":"Acme Securities","kind":"EP","broker_ids":[1234,1235],"contact":"ops@acme"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["message"], "registered P007 Acme Securities");
    assert_eq!(r.json()["data"]["id"], "P007");
    let rx = task.await.unwrap();
    // The runtime's refusal shows as an error with its words.
    let answer = answer_next(rx, Err("Acme Securities is already registered".into()));
    let r = http(
        f.addr,
        "POST",
        "/api/actions/register",
        &[("Authorization", &auth), json],
        r#"{"firm":"Acme Securities","kind":"EP"}"#,
    )
    .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.error(), "Acme Securities is already registered");
    let (_, _, rx) = answer.await.unwrap();
    // Each of the others.
    let mut rx = rx;
    for name in ["failover-now", "pause", "resume"] {
        let answer = answer_next(rx, Ok(ActionOk::new(format!("{name} ok"))));
        let r = http(
            f.addr,
            "POST",
            &format!("/api/actions/{name}"),
            &[("Authorization", &auth), json],
            r#"{"confirm":true}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let (got, _, back) = answer.await.unwrap();
        assert_eq!(got, name);
        rx = back;
    }
    // A runtime that drops the action without answering.
    let task = tokio::spawn(async move {
        let a = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        drop(a);
        rx
    });
    let r = http(
        f.addr,
        "POST",
        "/api/actions/pause",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(r.status, 504);
    assert!(r.error().contains("without answering"));
    let rx = task.await.unwrap();
    // Every action is in the activity log with who did it.
    let r = http(f.addr, "GET", "/api/state", &[("Authorization", &auth)], "").await;
    let log: Vec<String> = r.json()["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["who"].as_str().unwrap(),
                e["what"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "operator register \"Acme Securities\" (EP): done: registered P007 Acme Securities",
        "operator register \"Acme Securities\" (EP): refused: Acme Securities is already registered",
        "operator failover-now: done: failover-now ok",
        "operator pause: done: pause ok",
        "operator resume: done: resume ok",
    ] {
        assert!(log.iter().any(|l| l == want), "{want} not in {log:#?}");
    }
    // No runtime at all.
    drop(rx);
    let r = http(
        f.addr,
        "POST",
        "/api/actions/resume",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(r.status, 503);
    assert!(r.error().contains("not running"));
}

/// Read server-sent events until one `state` event's data satisfies `want`.
async fn next_state(
    s: &mut TcpStream,
    buf: &mut String,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        while let Some(i) = buf.find("\n\n") {
            let ev: String = buf.drain(..i + 2).collect();
            if !ev.contains("event: state") {
                continue;
            }
            let data: String = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n");
            // Chunk-size lines may sit between events: keep only the JSON object.
            let data = &data[data.find('{').unwrap()..=data.rfind('}').unwrap()];
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            if want(&v) {
                return v;
            }
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .expect("an event in time")
            .unwrap();
        assert!(n > 0, "the event stream closed");
        buf.push_str(&String::from_utf8_lossy(&chunk[..n]).replace("\r\n", "\n"));
    }
}

#[tokio::test]
async fn server_sent_events_follow_the_state() {
    let f = fixture().await;
    let mut s = TcpStream::connect(f.addr).await.unwrap();
    let req = format!("GET /api/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {VIEW}\r\nAccept: text/event-stream\r\n\r\n", f.addr);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = String::new();
    let first = next_state(&mut s, &mut buf, |_| true).await;
    assert_eq!(first["session"]["name"], "PS2 test");
    assert!(buf.is_empty() || !buf.contains("event: state"));
    f.state.send_modify(|st| {
        st.session.current_phase = Some("failover".into());
        st.sites.active = Some("backup".into());
    });
    let v = next_state(&mut s, &mut buf, |v| v["sites"]["active"] == "backup").await;
    assert_eq!(v["session"]["current_phase"], "failover");
    // The console's own log (a refused action) also pushes an event.
    let r = http(f.addr, "POST", "/api/actions/pause", &[], "").await;
    assert_eq!(r.status, 401);
    next_state(&mut s, &mut buf, |v| {
        v["activity"].to_string().contains("pause refused")
    })
    .await;
}

#[tokio::test]
async fn report_files_are_served_from_the_output_folder() {
    let f = fixture().await;
    let auth = Fixture::bearer(VIEW);
    let r = http(
        f.addr,
        "GET",
        "/reports/report.json",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.error().contains("not written yet"));
    std::fs::create_dir_all(&f.out).unwrap();
    std::fs::write(f.out.join("report.json"), r#"{"session":{}}"#).unwrap();
    std::fs::write(f.out.join("report.html"), "<h1>report</h1>").unwrap();
    std::fs::write(f.out.join("participants.csv"), "id\nP001\n").unwrap();
    std::fs::write(f.out.join("secret.txt"), "no").unwrap();
    f.state
        .send_modify(|s| s.reports = Some(ReportLinks::default()));
    assert_eq!(
        http(f.addr, "GET", "/reports/report.json", &[], "")
            .await
            .status,
        401
    );
    let r = http(
        f.addr,
        "GET",
        "/reports/report.json",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"session":{}}"#);
    assert!(r.headers["content-disposition"].contains("attachment"));
    let r = http(
        f.addr,
        "GET",
        "/reports/report.html",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("text/html"));
    assert!(r.headers["content-security-policy"].contains("sandbox"));
    let r = http(
        f.addr,
        "GET",
        "/reports/participants.csv",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(r.body, "id\nP001\n");
    for bad in [
        "/reports/secret.txt",
        "/reports/..%2Fsecret.txt",
        "/reports/%2e%2e%2fetc%2fpasswd",
    ] {
        assert_eq!(
            http(f.addr, "GET", bad, &[("Authorization", &auth)], "")
                .await
                .status,
            404,
            "{bad}"
        );
    }
    let _ = std::fs::remove_dir_all(&f.out);
}

#[tokio::test]
async fn sign_in_and_out_with_a_cookie() {
    let f = fixture().await;
    let (cookie, csrf) = f.login(OP, "bob <b>").await;
    let me = http(f.addr, "GET", "/api/me", &[("Cookie", &cookie)], "").await;
    assert_eq!(me.json()["who"], "operator:bob b");
    assert_eq!(me.json()["csrf"], csrf.as_str());
    let origin = f.origin();
    let r = http(
        f.addr,
        "POST",
        "/logout",
        &[("Cookie", &cookie), ("Origin", &origin)],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        http(f.addr, "GET", "/api/me", &[("Cookie", &cookie)], "")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_at_start() {
    let (_s, rx) = watch::channel(ConsoleState::default());
    let (tx, _r) = mpsc::channel(1);
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let e = serve(addr, ConsoleConfig::new(""), rx.clone(), tx.clone())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("operator token"));
    let mut same = ConsoleConfig::new("x");
    same.viewer_token = Some("x".into());
    let e = serve(addr, same, rx, tx).await.unwrap_err();
    assert!(e.to_string().contains("differ"));
}

#[tokio::test]
async fn anonymous_refusals_do_not_crowd_out_operator_actions() {
    let f = fixture().await;
    let auth = Fixture::bearer(OP);
    let answer = answer_next(f.actions, Ok(ActionOk::new("held")));
    let r = http(
        f.addr,
        "POST",
        "/api/actions/pause",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    answer.await.unwrap();
    for _ in 0..150 {
        assert_eq!(
            http(f.addr, "POST", "/api/actions/resume", &[], "")
                .await
                .status,
            401
        );
    }
    let r = http(f.addr, "GET", "/api/state", &[("Authorization", &auth)], "").await;
    let log = r.json()["activity"].as_array().unwrap().clone();
    assert!(log.iter().any(|e| e["what"] == "pause: done: held"));
    assert_eq!(log.iter().filter(|e| e["who"] == "anonymous").count(), 100);
}
