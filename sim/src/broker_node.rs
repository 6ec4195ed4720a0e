//! A simulated keel broker: the real `Broker` and `server::serve` over madsim's TCP on the node's
//! `SimDisk`, exactly the code `keel serve` runs. Ctrl-C (madsim's signal) is its SIGTERM: the
//! server drains and closes every log cleanly, and the node exits.
//!
//! Clients reach it at `BROKER_ADDRESS` with the Kafka protocol (`crate::kafka`).

use std::path::PathBuf;
use std::sync::Arc;

use keel::broker::config::BrokerConfig;
use keel::broker::Broker;
use keel::io::net::Network;
use keel::io::os::TcpNetwork;
use keel::log::LogConfig;
use keel::server;

use crate::clock::{SimClock, SimRandom};
use crate::disk::SimDisk;
use crate::history::{Event, History};

pub const BROKER_IP: &str = "10.0.0.1";
pub const BROKER_ADDRESS: &str = "10.0.0.1:9092";
pub const CLIENT_IP: &str = "10.0.0.2";
pub const TOPIC: &str = "sim";

/// The broker's settings for a run: defaults, with the run's log settings as broker defaults.
/// The offsets topic (`__consumer_offsets`, with the run's log settings) gets few partitions:
/// each is a log to recover at every restart.
pub fn config(log: &LogConfig) -> BrokerConfig {
    let mut config = BrokerConfig {
        listen: "0.0.0.0:9092".to_owned(),
        advertised: Some(BROKER_ADDRESS.to_owned()),
        data_dir: PathBuf::from("/keel-data"),
        log: log.clone(),
        retention_check_interval_ms: 100,
        ..BrokerConfig::default()
    };
    config.groups.initial_rebalance_delay_ms = 100;
    config.groups.offsets_partitions = 2;
    config
}

/// The node's main task: open the data directory (recovering every log), then serve until
/// Ctrl-C.
pub async fn run(disk: SimDisk, config: BrokerConfig, history: Arc<History>) {
    let open = || Broker::open(disk.clone(), SimClock, SimRandom, config.clone());
    let Some(broker) = crate::node::open_retrying(&disk, &history, open).await else {
        std::future::pending::<()>().await;
        return;
    };
    record_opened(&broker, &history);
    let listener = match TcpNetwork.bind("0.0.0.0:9092").await {
        Ok(listener) => listener,
        Err(e) => {
            history.record(Event::OpenFailed {
                error: format!("bind: {e}"),
            });
            std::future::pending::<()>().await;
            return;
        }
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) =
        server::serve::<TcpNetwork, _, _, _>(listener, None, Arc::new(broker), stop).await
    {
        history.record(Event::OpenFailed {
            error: format!("serve: {e}"),
        });
    }
}

fn record_opened(broker: &Broker<SimDisk, SimClock, SimRandom>, history: &History) {
    let Some(topic) = broker.topic(TOPIC) else {
        return;
    };
    let Some(partition) = topic.partitions.first() else {
        return;
    };
    let (Some(report), Some(bounds)) = (partition.recovery_report(), partition.bounds()) else {
        return;
    };
    history.record(Event::Opened {
        next_offset: bounds.log_end_offset,
        log_start: bounds.log_start_offset,
        clean: report.clean_shutdown,
        bytes_truncated: report.bytes_truncated,
        epoch: history.epoch(),
    });
}
