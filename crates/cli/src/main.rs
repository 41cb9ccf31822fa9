//! The `twinsite` command.

mod affinity;
mod bench_cluster;
mod bench_common;
mod bench_engine;
mod bench_feed;
mod bench_fix;
mod bench_floor;
mod bench_gateway;
mod demo;
mod feed_cmd;
mod node_cmds;
mod placement;
mod site_cmds;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    /// The practice session end to end on this machine with reference participants, in about a
    /// minute: three nodes, registration, the schedule, a failover, the report.
    Demo {
        /// Output folder for report.json, report.html, participants.csv and the journals.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// Reference participants (the last two are deliberately faulty when there are 4 or more).
        #[arg(long, default_value_t = 6)]
        participants: usize,
        /// Reference EPs on FIX, in addition (a maker, a taker; with 3 or more the last is
        /// deliberately faulty: MsgSeqNum 1 at the backup).
        #[arg(long, default_value_t = 3)]
        fix: usize,
        /// Information vendors on OMD-C and OMD-CC (the last ignores the DR signal when there
        /// are 2 or more).
        #[arg(long, default_value_t = 2)]
        vendors: usize,
        /// UDP port of every multicast group (default: a free port chosen per run, so demos
        /// running side by side never mix their feeds).
        #[arg(long)]
        md_port: Option<u16>,
        /// Crash the primary site instead of a scheduled failover.
        #[arg(long)]
        crash: bool,
        /// Wall seconds the session should take.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Keep the journal in memory (faster; nothing on disk).
        #[arg(long)]
        memory: bool,
        /// Operations console address (printed at start).
        #[arg(long, default_value = "127.0.0.1:8480")]
        console: std::net::SocketAddr,
        /// Keep the console up after the session until Ctrl-C.
        #[arg(long)]
        keep_console: bool,
        /// Also hand out a read-only viewer token for the console (printed; in OUT/console.json).
        #[arg(long)]
        console_viewer: bool,
    },
    /// Run a practice session from a session file for the registered participants.
    Run {
        #[arg(long)]
        session: PathBuf,
        #[arg(long, default_value = "out/run")]
        out: PathBuf,
        /// Compress the schedule N times.
        #[arg(long)]
        speed: Option<u64>,
        /// Also start reference participants.
        #[arg(long)]
        bots: Option<usize>,
        /// Also start reference information vendors (with --bots).
        #[arg(long, default_value_t = 0)]
        vendors: usize,
        /// Also start reference FIX EPs (with --bots).
        #[arg(long, default_value_t = 0)]
        fix: usize,
        /// UDP port of every multicast group (default: the session file's groups as given).
        #[arg(long)]
        md_port: Option<u16>,
        #[arg(long)]
        crash: bool,
        /// Journal durability: disk or memory.
        #[arg(long, default_value = "disk")]
        durability: String,
        /// Operations console address (printed at start).
        #[arg(long, default_value = "127.0.0.1:8480")]
        console: std::net::SocketAddr,
        /// Also hand out a read-only viewer token for the console (printed; in OUT/console.json).
        #[arg(long)]
        console_viewer: bool,
    },
    /// Register a participant for a session (refused after the deadline).
    Register {
        #[arg(long)]
        session: PathBuf,
        #[arg(long, default_value = "out/run")]
        out: PathBuf,
        #[arg(long)]
        firm: String,
        /// EP, CCEP or IV.
        #[arg(long)]
        kind: String,
        #[arg(long = "broker", value_delimiter = ',')]
        brokers: Vec<u32>,
        #[arg(long, default_value = "")]
        contact: String,
        /// Order-entry protocols: binary (OCG-C binary, the default), fix (FIX 5.0 SP2), or
        /// both (`--protocol binary,fix`). One Comp ID per platform and protocol.
        #[arg(long = "protocol", value_delimiter = ',')]
        protocols: Vec<String>,
    },
    /// Run one site from a config file (no replication): lookup, gateways, engine.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Fail over to the other site now: through the nodes' admin API (`--config cluster.toml`,
    /// for `twinsite up` / `node`), or through the operations console of `twinsite run` / `demo`.
    Failover {
        /// The cluster file of `twinsite up` / `node`: use the nodes' admin API.
        #[arg(long, conflicts_with = "console")]
        config: Option<PathBuf>,
        /// The console address printed by `twinsite run` / `demo` (default http://127.0.0.1:8480).
        #[arg(long)]
        console: Option<String>,
        /// The operator token (with --config: read from the cluster's token file when absent).
        #[arg(long)]
        token: Option<String>,
        /// Crash the active site's process instead of a scheduled failover.
        #[arg(long)]
        crash: bool,
    },
    /// Run one node of the replicated cluster as this process (one machine each in production).
    Node {
        /// primary, backup or witness.
        #[arg(long)]
        role: String,
        #[arg(long)]
        config: PathBuf,
        /// Stop when standard input closes (how `twinsite up` stops its children).
        #[arg(long, hide = true)]
        stop_on_stdin_eof: bool,
        /// CPUs to run on (`1`, `0,1`, `0-1`; `none`: the OS places it); overrides the node's
        /// `cpus` in the cluster file.
        #[arg(long)]
        cpus: Option<String>,
    },
    /// Start the three nodes of a cluster file as separate local processes, until Ctrl-C.
    Up {
        #[arg(long, default_value = "config/cluster.example.toml")]
        config: PathBuf,
    },
    /// Every node's status from its admin API (role, leader, term, indexes, state hash, site).
    Status {
        #[arg(long, default_value = "config/cluster.example.toml")]
        config: PathBuf,
        /// The operator token (read from the cluster's token file when absent).
        #[arg(long)]
        token: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write an RSA-2048 key pair for the OCG-C logon password (FILE and FILE.pub.pem).
    Keygen {
        #[arg(long, default_value = "config/ocg-key.pem")]
        out: PathBuf,
    },
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
    /// The OCG-C binary gateway: order round trip vs raw TCP echo; sustained orders/s.
    Gateway(bench_common::GatewayBenchOpts),
    /// The FIX gateway: new order -> execution report round trip against a raw TCP echo, and
    /// sustained orders/s from several sessions with the throttle off.
    Fix(bench_common::GatewayBenchOpts),
    /// The replicated cluster as three node processes: fdatasync baseline, replicated order
    /// round trip, orders/s and orders per fdatasync (group commit), failover RTO.
    Cluster {
        /// Journal directory (the disk measured); node journals go in subfolders.
        #[arg(long, default_value = "out/bench-cluster")]
        dir: PathBuf,
        /// Measured round trips (after warm-up).
        #[arg(long, default_value_t = 2_000)]
        orders: usize,
        #[arg(long, default_value_t = 200)]
        warmup: usize,
        #[arg(long, default_value_t = 8)]
        sessions: usize,
        /// Orders per session in the sustained run.
        #[arg(long, default_value_t = 2_000)]
        per_session: usize,
        /// Orders in flight per session in the sustained run.
        #[arg(long, default_value_t = 32)]
        window: usize,
        /// Failover runs per mode (the median is reported).
        #[arg(long, default_value_t = 5)]
        rto_runs: usize,
        /// fdatasync samples for the disk baseline (taken once before the cluster starts, and
        /// again split over the blocks between the round-trip blocks).
        #[arg(long, default_value_t = 1_000)]
        fsyncs: usize,
        /// Round-trip blocks; a block of probe fdatasyncs runs before each, and the ratio
        /// target compares the round trips with those.
        #[arg(long, default_value_t = 5)]
        blocks: usize,
        /// Round trips through the machine's floor (a bare three-node quorum write by threads, on the
        /// same disk and loopback), split over the blocks like the round trips; 0: none.
        #[arg(long, default_value_t = 2_000)]
        floor_orders: usize,
        /// Microseconds the leader holds each AppendEntries to the witness (the cluster file's
        /// `witness_linger_us`); the cluster file's default when absent.
        #[arg(long)]
        witness_linger_us: Option<u64>,
        /// MiB per preallocated WAL segment (the cluster file's `wal_segment_mib`; 64 when
        /// absent): each node writes one at its start.
        #[arg(long)]
        wal_segment_mib: Option<u64>,
        /// CPU placement, the same for the probe and the round trips: `CPUS` pins this process
        /// (the fdatasync probe and the participants) and every node to CPUS; or per process,
        /// `bench=CPUS;primary=CPUS;backup=CPUS;witness=CPUS` (a process not named is not
        /// pinned). CPUS is `1`, `0,1` or `0-1`. Default: no placement (the OS decides).
        #[arg(long)]
        cpus: Option<String>,
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
    // Before any thread starts: the heap grows in large steps, never on an order's path.
    twinsite_site::heap::keep_heap();
    let cli = Cli::parse();
    site_cmds::init_logs();
    match cli.cmd {
        Cmd::Demo {
            out,
            participants,
            fix,
            vendors,
            md_port,
            crash,
            seconds,
            memory,
            console,
            keep_console,
            console_viewer,
        } => site_cmds::runtime()?.block_on(demo::run(demo::Opts {
            session: None,
            out,
            participants,
            fix,
            vendors,
            md_port: Some(match md_port {
                Some(p) => p,
                None => demo::free_udp_port()?,
            }),
            crash,
            seconds,
            speed: None,
            bots: true,
            memory,
            console,
            keep_console,
            console_viewer,
        }))?,
        Cmd::Run {
            session,
            out,
            speed,
            bots,
            vendors,
            fix,
            md_port,
            crash,
            durability,
            console,
            console_viewer,
        } => site_cmds::runtime()?.block_on(demo::run(demo::Opts {
            session: Some(session),
            out,
            participants: bots.unwrap_or(0),
            fix: if bots.is_some() { fix } else { 0 },
            vendors: if bots.is_some() { vendors } else { 0 },
            md_port,
            crash,
            seconds: 3600,
            speed,
            bots: bots.is_some(),
            memory: durability == "memory",
            console,
            keep_console: true,
            console_viewer,
        }))?,
        Cmd::Register {
            session,
            out,
            firm,
            kind,
            brokers,
            contact,
            protocols,
        } => site_cmds::register(&session, &out, firm, kind, brokers, contact, protocols)?,
        Cmd::Serve { config } => site_cmds::runtime()?.block_on(site_cmds::serve(&config))?,
        Cmd::Failover {
            config: Some(config),
            token,
            crash,
            ..
        } => site_cmds::runtime()?.block_on(node_cmds::failover_cmd(&config, token, crash))?,
        Cmd::Failover {
            config: None,
            console,
            token,
            crash,
        } => {
            let token = token.ok_or_else(|| {
                anyhow::anyhow!("--token: the operator token printed by twinsite run / demo")
            })?;
            let console = console.unwrap_or_else(|| "http://127.0.0.1:8480".into());
            site_cmds::failover(&console, &token, crash)?
        }
        Cmd::Node {
            role,
            config,
            stop_on_stdin_eof,
            cpus,
        } => {
            let role = twinsite_site::cluster_config::parse_role(&role)?;
            // Placement first, on the only thread: the runtime, the WAL writer and every
            // other thread the node starts inherit it.
            let cpus = match cpus {
                Some(c) => placement::parse_cpus(&c)?,
                None => twinsite_site::cluster_config::ClusterConfig::load(&config)?
                    .node(role)
                    .cpus
                    .clone(),
            };
            placement::pin_process(&cpus)?;
            site_cmds::node_runtime()?.block_on(node_cmds::node(
                &config,
                role,
                stop_on_stdin_eof,
            ))?
        }
        Cmd::Up { config } => site_cmds::runtime()?.block_on(node_cmds::up(&config))?,
        Cmd::Status {
            config,
            token,
            json,
        } => site_cmds::runtime()?.block_on(node_cmds::status_cmd(&config, token, json))?,
        Cmd::Keygen { out } => {
            let pubp = demo::keygen(&out)?;
            println!("wrote {} and {}", out.display(), pubp.display());
        }
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
                BenchCmd::Cluster {
                    dir,
                    orders,
                    warmup,
                    sessions,
                    per_session,
                    window,
                    rto_runs,
                    fsyncs,
                    blocks,
                    floor_orders,
                    witness_linger_us,
                    wal_segment_mib,
                    cpus,
                },
        } => {
            let placement = bench_cluster::Placement::parse(cpus.as_deref().unwrap_or(""))?;
            // Before the runtime starts: the probe and the participants' tasks run here.
            placement::pin_process(&placement.bench)?;
            let report =
                site_cmds::node_runtime()?.block_on(bench_cluster::run(bench_cluster::Opts {
                    dir,
                    orders,
                    warmup,
                    sessions,
                    per_session,
                    window,
                    rto_runs,
                    fsyncs,
                    blocks,
                    floor_orders,
                    witness_linger_us,
                    wal_segment_mib,
                    placement,
                }))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Cmd::Bench {
            what: BenchCmd::Gateway(o),
        } => {
            let report = bench_gateway::run(o)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Cmd::Bench {
            what: BenchCmd::Fix(o),
        } => {
            let report = bench_fix::run(o)?;
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
