//! twinsite-console: the operations console, the practice session live in a browser.
//!
//! The runtime (`twinsite run`, `twinsite demo`) owns the session and pushes what the console shows
//! as a [`ConsoleState`] through a `tokio::sync::watch` channel; operators' actions come back as
//! [`OperatorAction`]s on an `mpsc` channel, each with a oneshot for the runtime's answer.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use twinsite_console::{Console, ConsoleConfig, ConsoleState, OperatorAction, ActionOk, DEFAULT_ADDR};
//! let mut config = ConsoleConfig::new(twinsite_console::random_token());
//! config.output_dir = Some("out".into());
//! let mut console = Console::start(DEFAULT_ADDR, config, ConsoleState::default()).await?;
//! println!("console: {}", console.url());
//! console.update(|s| s.session.name = "PS2".into());
//! while let Some(action) = console.actions.recv().await {
//!     action.answer(Ok(ActionOk::new("done")));
//! }
//! # Ok(()) }
//! ```
//!
//! * [`state`]: what is shown.
//! * [`action`]: what an operator can ask.
//! * [`server`]: pages, API, server-sent events, sign-in and cross-site protection.
//! * [`synthetic`]: a made-up session that walks through the phases and a failover, for the
//!   browser test and for looking at the console without a running exchange.

pub mod action;
pub mod server;
pub mod state;
pub mod synthetic;

pub use action::{ActionMeta, ActionOk, ActionOutcome, OperatorAction, RegisterRequest};
pub use server::{random_token, router, serve, Console, ConsoleConfig, DEFAULT_ADDR};
pub use state::*;
