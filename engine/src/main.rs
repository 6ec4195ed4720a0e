//! The `keel` binary: the only place that wires the engine to real IO (`OsDisk`, `TcpNetwork`,
//! the system clock) and a tokio runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::sync::Arc;

use keel::broker::config::BrokerConfig;
use keel::broker::{settings, Broker};
use keel::io::net::{Listener as _, Network};
use keel::io::os::{OsClock, OsDisk, OsRng, TcpNetwork};
use keel::log::dump;
use keel::server;

/// keel: a Kafka-compatible message broker whose storage engine is tested under a fault-injecting
/// simulator.
#[derive(Parser)]
#[command(name = "keel", version, about)]
struct Cli {
    /// With no command, `keel` serves (as `keel serve` with its defaults).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (the default command): 127.0.0.1:9092, data in ./keel-data, node 0,
    /// topics auto-created. Settings come from --config (TOML), then --set, then the flags.
    #[command(after_help = settings_help())]
    Serve(ServeArgs),
    /// Print the batches of a segment `.log` file (or the entries of a `.index` / `.timeindex`),
    /// with their offsets, timestamps, codec, record count and whether their CRC is valid, like
    /// kafka-dump-log.
    DumpLog {
        /// Segment files to print.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Verify a data directory (or one partition's directory) offline: every batch's CRC and
    /// records, offset order within and across segments, and every index entry. Exits 1 when
    /// anything is damaged, naming the file and position.
    Check {
        /// The data directory, or a partition directory inside it.
        dir: PathBuf,
    },
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// A TOML file of settings with Kafka's names (e.g. `log.segment.bytes = 1073741824`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// One setting, NAME=VALUE with Kafka's name; may be repeated.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    settings: Vec<String>,
    /// Address to listen on (listeners).
    #[arg(long)]
    listen: Option<String>,
    /// Data directory (log.dirs).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// This broker's id (node.id).
    #[arg(long)]
    node_id: Option<i32>,
}

fn settings_help() -> String {
    settings::help()
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args),
        Command::DumpLog { files } => dump_log(&files),
        Command::Check { dir } => check(&dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keel: {e}");
            ExitCode::from(2)
        }
    }
}

fn broker_config(args: ServeArgs) -> Result<BrokerConfig, String> {
    let mut config = BrokerConfig::default();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        settings::apply_toml(&mut config, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    for setting in &args.settings {
        let (name, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("--set {setting}: expected NAME=VALUE"))?;
        settings::apply(&mut config, name.trim(), value.trim())?;
    }
    if let Some(listen) = args.listen {
        // The client listener: a CONTROLLER listener set with --set stays.
        let controller = config.cluster.controller_listen.clone();
        settings::apply(&mut config, "listeners", &listen)?;
        if config.cluster.controller_listen.is_none() {
            config.cluster.controller_listen = controller;
        }
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(node_id) = args.node_id {
        config.node_id = node_id;
    }
    config.log.validate()?;
    Ok(config)
}

fn serve(args: ServeArgs) -> std::io::Result<ExitCode> {
    let mut config = match broker_config(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("keel: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    config.open_files_max = keel::io::os::raise_open_files_limit()?;
    match config.open_files_max {
        Some(limit) => tracing::info!(open_files_max = limit, "open-files limit (RLIMIT_NOFILE)"),
        None => tracing::info!("open-files limit (RLIMIT_NOFILE): unlimited"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if config.cluster.is_quorum() {
        return runtime.block_on(serve_in_cluster(config));
    }
    runtime.block_on(async move {
        let listen = config.listen.clone();
        let broker = Broker::open(OsDisk, OsClock, OsRng::default(), config)
            .map_err(|e| std::io::Error::other(format!("opening the data directory: {e:?}")))?;
        let listener = bind(&listen, "listeners").await?;
        let metrics = match broker.config.metrics_listen.clone() {
            Some(address) => Some(bind(&address, "metrics.listen").await?),
            None => None,
        };
        server::serve::<TcpNetwork, _, _, _>(listener, metrics, Arc::new(broker), terminated())
            .await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Checks the cluster settings; the CONTROLLER listener's address.
fn cluster_settings(config: &BrokerConfig) -> Result<String, String> {
    let cluster = &config.cluster;
    let id = u64::try_from(config.node_id).map_err(|_| "node.id must not be negative")?;
    if !cluster.controller {
        return Err("process.roles=broker: a broker that is not also a voter of                     controller.quorum.voters is not supported yet; use process.roles=broker,controller"
            .to_owned());
    }
    let Some(me) = cluster.voters.get(&id) else {
        return Err(format!(
            "node.id {id} is not one of controller.quorum.voters ({})",
            cluster
                .voters
                .keys()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let Some(listen) = cluster.controller_listen.clone() else {
        return Err(format!(
            "listeners has no {} listener for the metadata quorum (controller.listener.names)",
            cluster.controller_listener_names.join(" or ")
        ));
    };
    if &listen != me && !listen.starts_with("0.0.0.0:") {
        tracing::warn!(listener = %listen, voter = %me, "the CONTROLLER listener is not the address controller.quorum.voters gives this node");
    }
    Ok(listen)
}

/// Serves as a node of a cluster: a voter of the metadata quorum and, with the broker role, a
/// broker whose topics and leadership come from the quorum's metadata.
async fn serve_in_cluster(config: BrokerConfig) -> std::io::Result<ExitCode> {
    use keel::broker::cluster::{self, Cluster};
    use keel::io::Rng as _;
    use keel::quorum::records::Endpoint;
    use keel::quorum::transport::{self, QuorumConfig};
    let controller_listen = match cluster_settings(&config) {
        Ok(listen) => listen,
        Err(e) => {
            eprintln!("keel: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let quorum_config = QuorumConfig {
        id: config.node_id as u64,
        voters: config.cluster.voters.clone(),
        dir: config.data_dir.join(keel::quorum::METADATA_DIR),
        tick_ms: transport::TICK_MS,
        session_timeout_ms: config.cluster.session_timeout_ms,
    };
    let controller_listener = bind(&controller_listen, "listeners (CONTROLLER)").await?;
    let (handle, commands) = transport::channel();
    let voter = config.node_id;
    let quorum = tokio::spawn(async move {
        let ran = transport::run(
            OsDisk,
            OsRng::default(),
            TcpNetwork,
            controller_listener,
            quorum_config,
            commands,
            |_| {},
        )
        .await;
        if let Err(e) = ran {
            // The broker must not go on with metadata that no longer moves.
            tracing::error!(voter, error = %e, "the metadata quorum's storage failed; stopping");
            std::process::exit(1);
        }
    });
    tracing::info!(node = voter, controller = %controller_listen, voters = config.cluster.voters.len(), "metadata quorum voter started");
    let listen = config.listen.clone();
    let rng = OsRng::default();
    let mut incarnation = [0u8; 16];
    incarnation[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
    incarnation[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
    let broker = Broker::open(OsDisk, OsClock, rng, config)
        .map_err(|e| std::io::Error::other(format!("opening the data directory: {e:?}")))?;
    let broker = Arc::new(broker);
    broker.join(Cluster::new(broker.config.node_id, handle, incarnation));
    let listener = bind(&listen, "listeners").await?;
    broker.set_bound_address(&listener.local_address()?);
    let (host, port) = broker.advertised();
    let endpoints = vec![Endpoint {
        name: cluster::CLIENT_LISTENER.to_owned(),
        host,
        port: u16::try_from(port).unwrap_or(9092),
    }];
    let follower = tokio::spawn(cluster::run(broker.clone(), endpoints));
    let metrics = match broker.config.metrics_listen.clone() {
        Some(address) => Some(bind(&address, "metrics.listen").await?),
        None => None,
    };
    let stopping = broker.clone();
    let shutdown = async move {
        terminated().await;
        cluster::shut_down(&stopping).await;
    };
    server::serve::<TcpNetwork, _, _, _>(listener, metrics, broker, shutdown).await?;
    follower.abort();
    quorum.abort();
    Ok(ExitCode::SUCCESS)
}

/// Binds `address`; a failure names the address and the setting that asked for it.
async fn bind(address: &str, setting: &str) -> std::io::Result<<TcpNetwork as Network>::Listener> {
    TcpNetwork.bind(address).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {address} ({setting}): {e}"),
        )
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}

fn dump_log(files: &[PathBuf]) -> std::io::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut damaged = false;
    for file in files {
        let summary = dump::dump_file(&OsDisk, file, &mut out)?;
        damaged |= summary.invalid_batches > 0 || summary.stopped.is_some();
    }
    Ok(if damaged {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn check(dir: &std::path::Path) -> std::io::Result<ExitCode> {
    let report = dump::check_dir(&OsDisk, dir)?;
    for problem in &report.problems {
        println!(
            "{}: position {}: {}",
            problem.path.display(),
            problem.position,
            problem.reason
        );
    }
    println!(
        "checked {} logs, {} segments, {} batches, {} records: {} problems",
        report.logs,
        report.segments,
        report.batches,
        report.records,
        report.problems.len()
    );
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
