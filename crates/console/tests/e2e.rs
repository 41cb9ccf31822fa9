//! The console in a real browser: serve it with the synthetic session and run
//! `e2e/console.e2e.mjs` (playwright-core driving Debian's headless Chromium). Skips, saying why,
//! when node, playwright-core (`npm install` in crates/console/e2e) or /usr/bin/chromium is missing.
//! Screenshots land in target/console-e2e/ (final.png; failure.png when it fails).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use twinsite_console::synthetic::{self, SyntheticConfig};
use twinsite_console::{Console, ConsoleConfig};

fn missing(e2e: &Path, chromium: &Path) -> Option<String> {
    let node = std::process::Command::new("node").arg("--version").output();
    if !matches!(node, Ok(ref o) if o.status.success()) {
        return Some("node is not installed".into());
    }
    if !e2e
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return Some(format!(
            "playwright-core is not installed (run `npm install` in {})",
            e2e.display()
        ));
    }
    if !chromium.exists() {
        return Some(format!(
            "{} is missing (apt-get install chromium)",
            chromium.display()
        ));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_headless_chromium() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let e2e = manifest.join("e2e");
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    if let Some(why) = missing(&e2e, &chromium) {
        println!("console e2e skipped: {why}");
        return;
    }
    let out = manifest.join("../../target/console-e2e");
    let reports = out.join("reports");
    let _ = std::fs::remove_dir_all(&reports);
    std::fs::create_dir_all(&out).unwrap();

    let mut config = ConsoleConfig::new(twinsite_console::random_token());
    let viewer = twinsite_console::random_token();
    config.viewer_token = Some(viewer.clone());
    config.output_dir = Some(reports.clone());
    let operator = config.operator_token.clone();
    let cfg = SyntheticConfig {
        tick: Duration::from_millis(100),
        minutes_per_tick: 2,
        start_paused: true,
        output_dir: Some(reports),
    };
    let console = Console::start(
        "127.0.0.1:0".parse().unwrap(),
        config,
        synthetic::initial_state(&cfg),
    )
    .await
    .unwrap();
    let url = console.url();
    let feeder = tokio::spawn(synthetic::run(cfg, console.state.clone(), console.actions));

    let child = tokio::process::Command::new("node")
        .arg(e2e.join("console.e2e.mjs"))
        .current_dir(&e2e)
        .env("CONSOLE_URL", &url)
        .env("CONSOLE_OPERATOR_TOKEN", &operator)
        .env("CONSOLE_VIEWER_TOKEN", &viewer)
        .env("CONSOLE_E2E_OUT", &out)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let run = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output()).await;
    feeder.abort();
    console.task.abort();
    let output = run
        .expect("the browser test finished within 3 minutes")
        .unwrap();
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the browser test failed (see above and {})",
        out.display()
    );
    assert!(out.join("final.png").exists());
}
