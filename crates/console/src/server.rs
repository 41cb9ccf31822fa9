//! The HTTP side: pages, JSON API, server-sent events, sign-in, cross-site protection.
//!
//! Routes (all JSON errors are `{"error": "..."}`):
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /` , `/assets/console.js`, `/assets/console.css` | anyone | the page (no data in it) |
//! | `POST /login` `{"token", "name"?}` | anyone | sets the session cookie; answers `{role, who, csrf}` |
//! | `POST /logout` | signed in | forgets the session |
//! | `GET /api/me` | signed in | `{role, who, csrf}` |
//! | `GET /api/state` | viewer, operator | the [`ConsoleState`] with the console's own log merged in |
//! | `GET /api/events` | viewer, operator | SSE: an `event: state` with the same JSON at every change |
//! | `POST /api/actions/{register,failover-now,crash-failover,pause,resume}` | operator | [`OperatorAction`] |
//! | `GET /reports/{report.html,report.json,participants.csv}` | viewer, operator | from the output folder |
//!
//! Credentials: a session cookie (`HttpOnly; SameSite=Strict`) from `POST /login`, or an
//! `Authorization: Bearer TOKEN` header. A cookie-authenticated POST must come from the same
//! origin (`Origin`, else `Referer`, must name this host; `Sec-Fetch-Site`, when sent, must be
//! `same-origin`) and carry the session's CSRF token in `X-CSRF-Token`.

use crate::action::{ActionMeta, ActionOk, ActionOutcome, OperatorAction, RegisterRequest};
use crate::state::{ActivityEntry, ConsoleState};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// The console's default address: loopback only.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8480);

const COOKIE: &str = "twinsite_console";
/// Operator actions kept in the console's own log (oldest dropped first).
const AUDIT_CAP: usize = 1000;
const MAX_SESSIONS: usize = 1000;
/// Of which refusals of unauthenticated requests.
const ANONYMOUS_CAP: usize = 100;
/// Activity lines sent to the browser (the newest).
const SHOWN_ACTIVITY: usize = 500;
/// At most this many state events per second per browser: a busy runtime may push thousands of
/// changes a second; the browser gets the latest at most every `EVENT_INTERVAL`.
const EVENT_INTERVAL: Duration = Duration::from_millis(100);

const INDEX_HTML: &str = include_str!("assets/index.html");
const CONSOLE_JS: &str = include_str!("assets/console.js");
const CONSOLE_CSS: &str = include_str!("assets/console.css");

const PAGE_CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox";

/// How the console is reached and who may do what.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Signs an operator in (view and act). Must not be empty.
    pub operator_token: String,
    /// Signs a viewer in (read-only); `None`: viewing needs the operator token.
    pub viewer_token: Option<String>,
    /// Where `report.html`, `report.json` and `participants.csv` are written at the end.
    pub output_dir: Option<PathBuf>,
    /// How long an action waits for the runtime's answer.
    pub action_timeout: Duration,
    /// Host names (besides IP addresses and `localhost`) the console answers to, for a console
    /// reached by name on the test network. Other `Host` headers get 421 (DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

impl ConsoleConfig {
    pub fn new(operator_token: impl Into<String>) -> ConsoleConfig {
        ConsoleConfig {
            operator_token: operator_token.into(),
            viewer_token: None,
            output_dir: None,
            action_timeout: Duration::from_secs(30),
            allowed_hosts: Vec::new(),
        }
    }
}

/// A fresh random token (32 hex digits), for a console whose operator did not choose one.
pub fn random_token() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Viewer,
    Operator,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

#[derive(Debug, Clone)]
struct Login {
    role: Role,
    who: String,
    csrf: String,
}

#[derive(Debug, Clone)]
enum Via {
    Bearer,
    Cookie { csrf: String },
}

#[derive(Debug, Clone)]
struct Auth {
    role: Role,
    who: String,
    via: Via,
}

struct App {
    config: ConsoleConfig,
    state: watch::Receiver<ConsoleState>,
    actions: mpsc::Sender<OperatorAction>,
    sessions: Mutex<HashMap<String, Login>>,
    audit: watch::Sender<Vec<ActivityEntry>>,
}

type Shared = Arc<App>;

/// Serve the console on `addr` (use [`DEFAULT_ADDR`] or `127.0.0.1:0`). Returns the bound address
/// and the server task (abort it to stop). Fails if the address cannot be bound or the operator
/// token is empty.
pub async fn serve(
    addr: SocketAddr,
    config: ConsoleConfig,
    state: watch::Receiver<ConsoleState>,
    actions: mpsc::Sender<OperatorAction>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    if config.operator_token.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the console needs a non-empty operator token",
        ));
    }
    if config.viewer_token.as_deref() == Some(config.operator_token.as_str()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the viewer token must differ from the operator token",
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(config, state, actions);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("console server stopped: {e}");
        }
    });
    tracing::info!("operations console on http://{local}/");
    Ok((local, task))
}

/// The console as an axum `Router` (what [`serve`] runs), for embedding or tests.
pub fn router(
    config: ConsoleConfig,
    state: watch::Receiver<ConsoleState>,
    actions: mpsc::Sender<OperatorAction>,
) -> Router {
    let (audit, _) = watch::channel(Vec::new());
    let app = Arc::new(App {
        config,
        state,
        actions,
        sessions: Mutex::new(HashMap::new()),
        audit,
    });
    Router::new()
        .route("/", get(index))
        .route("/assets/console.js", get(js))
        .route("/assets/console.css", get(css))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/state", get(state_json))
        .route("/api/events", get(events))
        .route("/api/actions/{name}", post(action))
        .route("/reports/{file}", get(report_file))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page") })
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            host_check,
        ))
        .with_state(app)
}

/// The runtime's side of a console: push state, receive actions.
pub struct Console {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Push a new state (`send_replace`, or `send_modify` to change a field).
    pub state: watch::Sender<ConsoleState>,
    /// Operator actions to answer.
    pub actions: mpsc::Receiver<OperatorAction>,
    /// The server task; abort it to stop the console.
    pub task: JoinHandle<()>,
}

impl Console {
    /// Start a console with `initial` state: `serve` plus the two channels.
    pub async fn start(
        addr: SocketAddr,
        config: ConsoleConfig,
        initial: ConsoleState,
    ) -> std::io::Result<Console> {
        let (state, rx) = watch::channel(initial);
        let (tx, actions) = mpsc::channel(32);
        let (addr, task) = serve(addr, config, rx, tx).await?;
        Ok(Console {
            addr,
            state,
            actions,
            task,
        })
    }

    /// Change the shown state in place.
    pub fn update(&self, f: impl FnOnce(&mut ConsoleState)) {
        self.state.send_modify(f);
    }

    /// `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The `Host` header names this console: an IP address, `localhost`, or a configured name.
fn host_allowed(host: &str, extra: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        match host.rsplit_once(':') {
            Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) => n,
            _ => host,
        }
    };
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || extra.iter().any(|h| h.eq_ignore_ascii_case(name))
}

async fn host_check(
    State(app): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if !host_allowed(host, &app.config.allowed_hosts) {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "unknown host name (add it to the console's allowed hosts)",
        );
    }
    next.run(req).await
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(PAGE_CSP));
    h.entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", CONSOLE_JS)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CONSOLE_CSS)
}

/// Length-independent comparison of a presented secret with the expected one.
fn secret_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

impl App {
    fn role_for_token(&self, token: &str) -> Option<Role> {
        if secret_eq(token, &self.config.operator_token) {
            return Some(Role::Operator);
        }
        match &self.config.viewer_token {
            Some(v) if !v.is_empty() && secret_eq(token, v) => Some(Role::Viewer),
            _ => None,
        }
    }

    fn authenticate(&self, headers: &HeaderMap) -> Option<Auth> {
        if let Some(v) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            let token = v.strip_prefix("Bearer ").unwrap_or("").trim();
            let role = self.role_for_token(token)?;
            return Some(Auth {
                role,
                who: role.as_str().to_string(),
                via: Via::Bearer,
            });
        }
        let id = cookie(headers, COOKIE)?;
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let login = sessions.get(&id)?;
        Some(Auth {
            role: login.role,
            who: login.who.clone(),
            via: Via::Cookie {
                csrf: login.csrf.clone(),
            },
        })
    }

    fn record(&self, who: &str, what: String) {
        let entry = ActivityEntry {
            at_ms: now_ms(),
            session_time: self.state.borrow().session.now_label.clone(),
            who: who.to_string(),
            what,
        };
        let anonymous = who == "anonymous";
        self.audit.send_modify(|log| {
            // Refusals of unauthenticated requests never crowd out what operators did.
            if anonymous && log.iter().filter(|e| e.who == "anonymous").count() >= ANONYMOUS_CAP {
                if let Some(i) = log.iter().position(|e| e.who == "anonymous") {
                    log.remove(i);
                }
            }
            log.push(entry);
            if log.len() > AUDIT_CAP {
                let excess = log.len() - AUDIT_CAP;
                log.drain(..excess);
            }
        });
    }

    /// The state as shown: the runtime's, with the console's own log merged in by time.
    fn view(&self) -> ConsoleState {
        let mut s = self.state.borrow().clone();
        let audit = self.audit.borrow();
        if !audit.is_empty() {
            s.activity.extend(audit.iter().cloned());
            s.activity.sort_by_key(|e| e.at_ms);
        }
        if s.activity.len() > SHOWN_ACTIVITY {
            let excess = s.activity.len() - SHOWN_ACTIVITY;
            s.activity.drain(..excess);
        }
        s
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(';') {
            if let Some((k, val)) = part.trim().split_once('=') {
                if k == name {
                    return Some(val.to_string());
                }
            }
        }
    }
    None
}

/// Authority (`host:port`) of an `Origin` or `Referer` value.
fn authority(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// The request comes from a page of this console. `required`: a browser request without any
/// origin information is refused too (cookie-authenticated POSTs).
fn same_origin(headers: &HeaderMap, required: bool) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return Err("cross-site request refused (Sec-Fetch-Site)");
        }
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match origin {
        Some(o) => match authority(o) {
            Some(a) if !host.is_empty() && a.eq_ignore_ascii_case(host) => Ok(()),
            _ => Err("cross-site request refused (Origin does not match this console)"),
        },
        None if required => Err("cross-site request refused (no Origin or Referer)"),
        None => Ok(()),
    }
}

fn random_hex() -> String {
    random_token()
}

fn clean_name(name: &str) -> String {
    let n: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
        .take(32)
        .collect();
    n.trim().to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    token: String,
    #[serde(default)]
    name: String,
}

fn parse_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, (StatusCode, String)> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.trim_start().starts_with("application/json") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send JSON (Content-Type: application/json)".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("malformed request body: {e}"),
        )
    })
}

fn me_body(role: Role, who: &str, csrf: &str) -> serde_json::Value {
    json!({ "role": role.as_str(), "who": who, "csrf": csrf })
}

async fn login(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = same_origin(&headers, false) {
        return error(StatusCode::FORBIDDEN, e);
    }
    let b: LoginBody = match parse_json(&headers, &body) {
        Ok(b) => b,
        Err((code, msg)) => return error(code, msg),
    };
    let Some(role) = app.role_for_token(&b.token) else {
        app.record("anonymous", "sign-in refused: wrong token".into());
        return error(StatusCode::UNAUTHORIZED, "wrong token");
    };
    let name = clean_name(&b.name);
    let who = if name.is_empty() {
        role.as_str().to_string()
    } else {
        format!("{}:{name}", role.as_str())
    };
    let id = random_hex();
    let csrf = random_hex();
    {
        let mut s = app.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if s.len() >= MAX_SESSIONS {
            s.clear();
        }
        s.insert(
            id.clone(),
            Login {
                role,
                who: who.clone(),
                csrf: csrf.clone(),
            },
        );
    }
    app.record(&who, format!("signed in ({})", role.as_str()));
    let cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict");
    (
        [(header::SET_COOKIE, cookie)],
        Json(me_body(role, &who, &csrf)),
    )
        .into_response()
}

async fn logout(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = same_origin(&headers, true) {
        return error(StatusCode::FORBIDDEN, e);
    }
    if let Some(id) = cookie(&headers, COOKIE) {
        let removed = app
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(l) = removed {
            app.record(&l.who, "signed out".into());
        }
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Json(json!({ "ok": true }))).into_response()
}

async fn me(State(app): State<Shared>, headers: HeaderMap) -> Response {
    match app.authenticate(&headers) {
        Some(a) => {
            let csrf = match &a.via {
                Via::Cookie { csrf } => csrf.as_str(),
                Via::Bearer => "",
            };
            Json(me_body(a.role, &a.who, csrf)).into_response()
        }
        None => error(StatusCode::UNAUTHORIZED, "sign in with the console token"),
    }
}

async fn state_json(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if app.authenticate(&headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "sign in with the console token");
    }
    Json(app.view()).into_response()
}

async fn events(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if app.authenticate(&headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "sign in with the console token");
    }
    Sse::new(state_stream(app))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response()
}

/// One `state` event now, then one at every change of the runtime's state or the console's log.
fn state_stream(app: Shared) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = app.state.clone();
    let audit = app.audit.subscribe();
    futures_util::stream::unfold(
        (app, state, audit, true, true),
        |(app, mut state, mut audit, mut state_open, first)| async move {
            if !first {
                // Changes that arrive meanwhile are kept (watch) and sent together.
                tokio::time::sleep(EVENT_INTERVAL).await;
                loop {
                    tokio::select! {
                        r = state.changed(), if state_open => {
                            if r.is_ok() { break }
                            // The runtime is gone: keep showing its last state.
                            state_open = false;
                        }
                        r = audit.changed() => {
                            if r.is_ok() { break }
                            std::future::pending::<()>().await;
                        }
                    }
                }
            }
            state.borrow_and_update();
            audit.borrow_and_update();
            let data = serde_json::to_string(&app.view()).unwrap_or_else(|_| "{}".into());
            let ev = Event::default().event("state").data(data);
            Some((Ok(ev), (app, state, audit, state_open, false)))
        },
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    #[serde(default)]
    confirm: bool,
}

async fn action(
    State(app): State<Shared>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const NAMES: [&str; 5] = [
        "register",
        "failover-now",
        "crash-failover",
        "pause",
        "resume",
    ];
    let Some(name) = NAMES.iter().copied().find(|n| *n == name) else {
        return error(StatusCode::NOT_FOUND, "no such action");
    };
    let Some(auth) = app.authenticate(&headers) else {
        app.record("anonymous", format!("{name} refused: not signed in"));
        return error(
            StatusCode::UNAUTHORIZED,
            "sign in with the operator token to act",
        );
    };
    if let Via::Cookie { csrf } = &auth.via {
        if let Err(e) = same_origin(&headers, true) {
            app.record(&auth.who, format!("{name} refused: {e}"));
            return error(StatusCode::FORBIDDEN, e);
        }
        let presented = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !secret_eq(presented, csrf) {
            app.record(&auth.who, format!("{name} refused: bad CSRF token"));
            return error(
                StatusCode::FORBIDDEN,
                "cross-site request refused (missing or wrong X-CSRF-Token)",
            );
        }
    }
    if auth.role != Role::Operator {
        app.record(&auth.who, format!("{name} refused: viewers cannot act"));
        return error(
            StatusCode::FORBIDDEN,
            "read-only: sign in with the operator token to act",
        );
    }
    let by = ActionMeta {
        who: auth.who.clone(),
        at_ms: now_ms(),
    };
    let (reply, answer) = oneshot::channel();
    let act = if name == "register" {
        let request: RegisterRequest = match parse_json(&headers, &body) {
            Ok(r) => r,
            Err((code, msg)) => return error(code, msg),
        };
        OperatorAction::Register { request, by, reply }
    } else {
        let c: ConfirmBody = if body.iter().all(u8::is_ascii_whitespace) {
            ConfirmBody::default()
        } else {
            match parse_json(&headers, &body) {
                Ok(c) => c,
                Err((code, msg)) => return error(code, msg),
            }
        };
        let needs_confirm = matches!(name, "failover-now" | "crash-failover");
        if needs_confirm && !c.confirm {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{name} needs confirmation: send {{\"confirm\": true}}"),
            );
        }
        match name {
            "failover-now" => OperatorAction::FailoverNow { by, reply },
            "crash-failover" => OperatorAction::CrashFailover { by, reply },
            "pause" => OperatorAction::Pause { by, reply },
            _ => OperatorAction::Resume { by, reply },
        }
    };
    let what = describe(&act);
    if app.actions.send(act).await.is_err() {
        app.record(
            &auth.who,
            format!("{what}: failed: the session is not running"),
        );
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the session is not running (nobody takes actions)",
        );
    }
    let outcome: Result<ActionOutcome, &str> =
        match tokio::time::timeout(app.config.action_timeout, answer).await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(_)) => Err("the runtime dropped the action without answering"),
            Err(_) => Err("the runtime did not answer in time"),
        };
    match outcome {
        Ok(Ok(ActionOk { message, data })) => {
            app.record(&auth.who, format!("{what}: done: {message}"));
            Json(json!({ "ok": true, "message": message, "data": data })).into_response()
        }
        Ok(Err(refusal)) => {
            app.record(&auth.who, format!("{what}: refused: {refusal}"));
            error(StatusCode::CONFLICT, refusal)
        }
        Err(e) => {
            app.record(&auth.who, format!("{what}: failed: {e}"));
            error(StatusCode::GATEWAY_TIMEOUT, e)
        }
    }
}

fn describe(a: &OperatorAction) -> String {
    match a {
        OperatorAction::Register { request, .. } => {
            format!("register {:?} ({})", request.firm, request.kind)
        }
        other => other.name().to_string(),
    }
}

async fn report_file(
    State(app): State<Shared>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if app.authenticate(&headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "sign in with the console token");
    }
    let links = app.state.borrow().reports.clone().unwrap_or_default();
    let content_type = if file == links.html {
        "text/html; charset=utf-8"
    } else if file == links.json {
        "application/json"
    } else if file == links.csv {
        "text/csv; charset=utf-8"
    } else {
        return error(StatusCode::NOT_FOUND, "no such report file");
    };
    // Only plain file names inside the output folder.
    if file.is_empty() || file.contains(['/', '\\']) || file.starts_with('.') {
        return error(StatusCode::NOT_FOUND, "no such report file");
    }
    let Some(dir) = &app.config.output_dir else {
        return error(StatusCode::NOT_FOUND, "this console has no output folder");
    };
    match tokio::fs::read(dir.join(&file)).await {
        Ok(bytes) => {
            let disposition = if content_type.starts_with("text/html") {
                "inline".to_string()
            } else {
                format!("attachment; filename=\"{file}\"")
            };
            (
                [
                    (header::CONTENT_TYPE, content_type.to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                    (header::CONTENT_SECURITY_POLICY, REPORT_CSP.to_string()),
                    (header::X_FRAME_OPTIONS, "SAMEORIGIN".to_string()),
                ],
                bytes,
            )
                .into_response()
        }
        Err(_) => error(
            StatusCode::NOT_FOUND,
            "the report is not written yet (it appears when the session ends)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_comparison() {
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "abcd"));
        assert!(!secret_eq("", "a"));
        assert!(secret_eq("", ""));
    }

    #[test]
    fn origin_checks() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8480".parse().unwrap());
        assert!(same_origin(&h, false).is_ok());
        assert!(same_origin(&h, true).is_err());
        h.insert(header::ORIGIN, "http://127.0.0.1:8480".parse().unwrap());
        assert!(same_origin(&h, true).is_ok());
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(same_origin(&h, true).is_err());
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(same_origin(&h, false).is_err());
        h.remove(header::ORIGIN);
        h.insert(header::REFERER, "http://127.0.0.1:8480/?x".parse().unwrap());
        assert!(same_origin(&h, true).is_ok());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(same_origin(&h, true).is_err());
    }

    #[test]
    fn host_names() {
        let none: &[String] = &[];
        for ok in [
            "127.0.0.1:8480",
            "127.0.0.1",
            "[::1]:8480",
            "localhost:1",
            "10.0.0.5:80",
        ] {
            assert!(host_allowed(ok, none), "{ok}");
        }
        for bad in ["evil.example:8480", "", "attacker.test"] {
            assert!(!host_allowed(bad, none), "{bad}");
        }
        assert!(host_allowed(
            "Console.Drill:8480",
            &["console.drill".to_string()]
        ));
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("  alice <script>"), "alice script");
        assert_eq!(clean_name(&"x".repeat(50)).len(), 32);
    }
}
