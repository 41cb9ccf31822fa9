//! The `twinsite` command.

mod bench_engine;
mod bench_feed;
mod bench_fix;
mod feed_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "twinsite",
    version,
    about = "A two-site exchange for disaster-recovery practice sessions"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The reference OMD feed handler on a live site's multicast, RTS and refresh channels:
    /// prints the rebuilt books (top levels per security, trade counts).
    Feed {
        /// The site's config file (its `[market_data]` section).
        #[arg(long)]
        config: std::path::PathBuf,
        #[arg(long, default_value_t = 1_000)]
        interval_ms: u64,
        #[arg(long, default_value_t = 5)]
        levels: usize,
        /// Print this many times, then exit (0: until interrupted).
        #[arg(long, default_value_t = 0)]
        count: u64,
        /// RTS endpoints, tried in turn (default: the config's `market_data.rts`).
        #[arg(long = "rts", value_delimiter = ',')]
        rts: Vec<std::net::SocketAddr>,
        #[arg(long, default_value = "twinsite")]
        user: String,
    },
    /// Benchmarks that print JSON.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// The FIX gateway: new order -> execution report round trip against a raw TCP echo, and
    /// sustained orders/s from several sessions with the throttle off.
    Fix {
        /// Measured round trips (after warm-up).
        #[arg(long, default_value_t = 20_000)]
        orders: usize,
        #[arg(long, default_value_t = 2_000)]
        warmup: usize,
        #[arg(long, default_value_t = 10)]
        sessions: usize,
        /// Orders per session in the sustained run.
        #[arg(long, default_value_t = 20_000)]
        per_session: usize,
        /// Orders in flight per session in the sustained run.
        #[arg(long, default_value_t = 64)]
        window: usize,
    },
    /// The matching engine on a realistic command mix, against orderbook-rs on the same stream.
    Engine {
        /// Commands in the measured stream (after warm-up).
        #[arg(long, default_value_t = 1_000_000)]
        commands: usize,
        /// Seed of the workload generator.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Throughput runs per engine; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Skip the orderbook-rs baseline (for profiling twinsite alone).
        #[arg(long, hide = true)]
        no_baseline: bool,
    },
    /// The market-data feed: engine events to multicast vs raw UDP sends; handler decode.
    Feed {
        #[arg(long, default_value_t = 200_000)]
        commands: usize,
        /// Engine commands per feed input (a commit under load).
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Feed {
            config,
            interval_ms,
            levels,
            count,
            rts,
            user,
        } => feed_cmd::run(
            &config,
            feed_cmd::Opts {
                interval_ms,
                levels,
                count,
                rts,
                user,
            },
        )?,
        Cmd::Bench {
            what:
                BenchCmd::Feed {
                    commands,
                    batch,
                    seed,
                    runs,
                },
        } => {
            let report = bench_feed::run(&bench_feed::Opts {
                commands,
                batch,
                seed,
                runs,
            })?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Cmd::Bench {
            what:
                BenchCmd::Fix {
                    orders,
                    warmup,
                    sessions,
                    per_session,
                    window,
                },
        } => {
            let report = bench_fix::run(bench_fix::Opts {
                orders,
                warmup,
                sessions,
                per_session,
                window,
            })?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Cmd::Bench {
            what:
                BenchCmd::Engine {
                    commands,
                    seed,
                    runs,
                    no_baseline,
                },
        } => {
            let report = bench_engine::run(&bench_engine::Opts {
                commands,
                seed,
                runs,
                baseline: !no_baseline,
            })?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}
