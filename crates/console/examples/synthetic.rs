//! Serve the console with the synthetic session, to look at it without an exchange:
//!
//! ```sh
//! cargo run -p twinsite-console --example synthetic -- [ADDR] [--paused]
//! ```
//!
//! Prints the address and the operator and viewer tokens; Ctrl-C stops it.

use std::time::Duration;
use twinsite_console::synthetic::{self, SyntheticConfig};
use twinsite_console::{Console, ConsoleConfig, DEFAULT_ADDR};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(DEFAULT_ADDR);
    let out = std::env::temp_dir().join("twinsite-console-synthetic");
    let mut config = ConsoleConfig::new("operator");
    config.viewer_token = Some("viewer".into());
    config.output_dir = Some(out.clone());
    let cfg = SyntheticConfig {
        tick: Duration::from_millis(500),
        start_paused: args.iter().any(|a| a == "--paused"),
        output_dir: Some(out),
        ..SyntheticConfig::default()
    };
    let console = Console::start(addr, config, synthetic::initial_state(&cfg)).await?;
    println!(
        "console: {}  (operator token: operator, viewer token: viewer)",
        console.url()
    );
    // The synthetic session keeps answering actions after it ends; Ctrl-C stops everything.
    tokio::select! {
        _ = synthetic::run(cfg, console.state.clone(), console.actions) => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
