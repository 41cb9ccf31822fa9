//! The `twinsite` command.

mod bench_engine;

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
    /// Benchmarks that print JSON.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
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
