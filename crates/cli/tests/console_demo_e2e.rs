//! The operations console of a real compressed demo in a real browser: `twinsite demo` (three
//! nodes, four binary EPs with two faulty, one FIX EP, two CCEPs, one information vendor, the PS2
//! schedule in ~50 s) with its console on 127.0.0.1 port 0, watched by
//! `crates/console/e2e/console-demo.e2e.mjs` in Debian's headless Chromium (playwright-core): a
//! viewer and an operator see the phase marker move, the failover happen with its RTO, the
//! participants reconnect at the backup and their checks fill in, the report at the end, and
//! every action tried without the token (or with the viewer's) refused and without effect.
//!
//! Skips, saying why, when node, playwright-core (`npm ci` in crates/console/e2e) or
//! /usr/bin/chromium (`CHROMIUM=...` to use another) is missing. Artefacts land in
//! target/console-e2e-demo/: final.png (failure.png and failure-viewer.png when it fails), what
//! the demo and the browser script wrote (demo.log with the demo's stderr, browser.log), and the
//! demo's output folder `demo/` (report.html, report.json, participants.csv, console.json).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_twinsite");
/// Demo start-up (RSA key, three nodes electing a leader, participants) on a loaded box.
const CONSOLE_UP: Duration = Duration::from_secs(90);
/// The browser script: the whole session (~50 s) plus the report, with room for a loaded box.
const BROWSER_DONE: Duration = Duration::from_secs(180);

fn missing(e2e: &Path, chromium: &Path) -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !matches!(node, Ok(ref o) if o.status.success()) {
        return Some("node is not installed".into());
    }
    if !e2e
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return Some(format!(
            "playwright-core is not installed (run `npm ci` in {})",
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

/// A child process killed (and reaped) on every path out of the test.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Everything a process wrote, for the failure message.
type Transcript = Arc<Mutex<Vec<String>>>;

/// What the two processes' standard outputs say, on one channel.
enum Ev {
    Demo(String),
    DemoEnd,
    /// A line of the browser script's (echoed and kept in its transcript).
    Browser,
    BrowserEnd,
}

/// Where a reader thread sends its lines: the channel, how to wrap a line, what to send at the end.
type Sink = (mpsc::Sender<Ev>, fn(String) -> Ev, Ev);

/// Read `from` line by line on a thread: each line into `transcript`, echoed with `prefix` when
/// `echo`, and sent to `tx` as `line(..)` when given, then `end` at end of file (the process
/// exited or closed its output).
fn follow(
    from: impl Read + Send + 'static,
    prefix: &'static str,
    echo: bool,
    transcript: Transcript,
    tx: Option<Sink>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if echo {
                println!("{prefix}{line}");
            }
            transcript.lock().unwrap().push(line.clone());
            if let Some((tx, wrap, _)) = &tx {
                let _ = tx.send(wrap(line));
            }
        }
        if let Some((tx, _, end)) = tx {
            let _ = tx.send(end);
        }
    })
}

/// Writes what the demo and the browser script said to files on every way out of the test
/// (after the processes are killed: declared before them).
struct SaveOnDrop(Vec<(Transcript, PathBuf)>);

impl Drop for SaveOnDrop {
    fn drop(&mut self) {
        for (t, path) in &self.0 {
            let text = t.lock().map(|t| t.join("\n")).unwrap_or_default();
            let _ = std::fs::write(path, text + "\n");
        }
    }
}

fn tail(t: &Transcript, n: usize) -> String {
    let t = t.lock().unwrap();
    t[t.len().saturating_sub(n)..].join("\n")
}

#[test]
fn console_of_a_running_demo_in_headless_chromium() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let e2e = manifest.join("../console/e2e");
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    if let Some(why) = missing(&e2e, &chromium) {
        println!("console demo e2e skipped: {why}");
        return;
    }
    let started = Instant::now();
    let out = manifest.join("../../target/console-e2e-demo");
    let demo_out = out.join("demo");
    let _ = std::fs::remove_dir_all(&demo_out);
    for old in ["final.png", "failure.png", "failure-viewer.png"] {
        let _ = std::fs::remove_file(out.join(old));
    }
    std::fs::create_dir_all(&demo_out).unwrap();
    let browser_log: Transcript = Default::default();
    let demo_log: Transcript = Default::default();
    let _save = SaveOnDrop(vec![
        (demo_log.clone(), out.join("demo.log")),
        (browser_log.clone(), out.join("browser.log")),
    ]);

    // The browser first: it starts while the demo starts.
    let mut browser = Killed(
        Command::new("node")
            .arg(e2e.join("console-demo.e2e.mjs"))
            .current_dir(&e2e)
            .env("CONSOLE_E2E_OUT", &out)
            .env("CHROMIUM", &chromium)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts"),
    );
    let (tx, rx) = mpsc::channel();
    follow(
        browser.0.stdout.take().unwrap(),
        "browser| ",
        true,
        browser_log.clone(),
        Some((tx.clone(), |_| Ev::Browser, Ev::BrowserEnd)),
    );
    let browser_err = follow(
        browser.0.stderr.take().unwrap(),
        "browser! ",
        true,
        browser_log.clone(),
        None,
    );

    let mut demo = Killed(
        Command::new(EXE)
            .args([
                "demo",
                "--seconds",
                "50",
                "--participants",
                "4",
                "--fix",
                "1",
                "--vendors",
                "1",
            ])
            .args(["--memory", "--console", "127.0.0.1:0", "--console-viewer"])
            .arg("--keep-console")
            .arg("--out")
            .arg(&demo_out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("twinsite demo starts"),
    );
    follow(
        demo.0.stdout.take().unwrap(),
        "demo| ",
        true,
        demo_log.clone(),
        Some((tx, Ev::Demo, Ev::DemoEnd)),
    );
    follow(
        demo.0.stderr.take().unwrap(),
        "",
        false,
        demo_log.clone(),
        None,
    );

    // The demo says where its console listens once it does.
    let deadline = Instant::now() + CONSOLE_UP;
    let url = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ev::Demo(line)) => {
                if let Some(url) = line.strip_prefix("console: ") {
                    break url.trim().to_string();
                }
            }
            Ok(Ev::Browser) => {}
            Ok(Ev::DemoEnd) => panic!(
                "the demo exited before its console listened; it wrote:\n{}",
                tail(&demo_log, 60)
            ),
            Ok(Ev::BrowserEnd) => panic!(
                "the browser script exited before the console listened:\n{}",
                tail(&browser_log, 60)
            ),
            Err(e) => panic!(
                "no `console: URL` line from the demo within {CONSOLE_UP:?} ({e}); it wrote:\n{}",
                tail(&demo_log, 60)
            ),
        }
    };
    let file = demo_out.join("console.json");
    let console: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("the demo wrote console.json"))
            .expect("console.json is JSON");
    assert_eq!(console["url"].as_str(), Some(url.as_str()));
    assert!(console["operator_token"]
        .as_str()
        .is_some_and(|t| t.len() >= 32));
    assert!(console["viewer_token"]
        .as_str()
        .is_some_and(|t| t.len() >= 32));
    assert_ne!(console["operator_token"], console["viewer_token"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "console.json holds the tokens: owner only");
    }
    println!(
        "console at {url} after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    {
        let mut stdin = browser.0.stdin.take().unwrap();
        writeln!(stdin, "{console}").expect("the browser script reads its console");
    }

    // The browser script ends (its output closes) when it has seen it all, or failed. The demo
    // (--keep-console) must still be running then.
    let deadline = Instant::now() + BROWSER_DONE;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ev::BrowserEnd) => break,
            Ok(Ev::Demo(_) | Ev::Browser) => {}
            Ok(Ev::DemoEnd) => panic!(
                "the demo exited while the browser watched it; it wrote:\n{}",
                tail(&demo_log, 60)
            ),
            Err(e) => panic!(
                "the browser script did not finish within {BROWSER_DONE:?} ({e}); the demo wrote:\n{}",
                tail(&demo_log, 40)
            ),
        }
    }
    let status = browser.0.wait().expect("node exits");
    let _ = browser_err.join();
    assert!(
        status.success(),
        "the browser test failed ({status}; screenshots in {}); the demo's last lines:\n{}",
        out.display(),
        tail(&demo_log, 40)
    );
    assert!(out.join("final.png").exists());
    assert!(demo_out.join("report.json").exists());
    // Still serving the report (--keep-console) until the guard kills it.
    assert!(
        demo.0.try_wait().unwrap().is_none(),
        "the demo keeps its console up"
    );
    drop(demo);
    println!(
        "console demo e2e: {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}
