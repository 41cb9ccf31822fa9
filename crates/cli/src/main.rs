//! The `twinsite` command.

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
    /// The matching engine on a realistic command mix.
    Engine,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Bench {
            what: BenchCmd::Engine,
        } => anyhow::bail!("engine benchmark not built yet"),
    }
}
