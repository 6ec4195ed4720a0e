//! The broker in a cluster: what it learns from the metadata quorum and what it asks of it.
//!
//! The image (`quorum::image`) is the truth of which topics exist, which broker leads each
//! partition and which brokers are live; this node's topics on disk follow it. The broker
//! registers when it starts (a fresh incarnation, so its epoch fences whatever it did before),
//! creates and deletes topics by proposing records to the active controller (a follower's voter
//! forwards them), and answers for a partition only when the image says it leads it.
//!
//! A topic is on every node's disk with all its partitions, and each partition is served by
//! its leader alone: until partition replication, a topic has one replica, and the other
//! nodes' copies of a partition stay empty.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::config::TopicOverrides;
use super::topics::{self, TopicError};
use super::Broker;
use crate::io::{Clock, Disk, Rng};
use crate::quorum::image::{Applied, MetadataImage, TopicImage};
use crate::quorum::records::{Endpoint, MetadataRecord};
use crate::quorum::transport::{ProposalError, QuorumHandle, View};

/// The name of the client listener in a broker's registration.
pub const CLIENT_LISTENER: &str = "PLAINTEXT";
/// How long a proposal made on a client's behalf may take before the client is told to retry.
const PROPOSAL_WAIT: Duration = Duration::from_secs(10);
const RETRY_PAUSE: Duration = Duration::from_millis(200);

pub struct Cluster {
    pub node_id: i32,
    pub handle: QuorumHandle,
    /// Fresh at every start: a restarted broker registers anew and gets a new epoch.
    pub incarnation: [u8; 16],
    /// Topic names whose creation this node has proposed and not yet seen settled, so that a
    /// burst of Metadata requests for one unknown topic proposes it once.
    creating: std::sync::Mutex<BTreeSet<String>>,
    /// Creations asked for without waiting (auto-creation), which `run` proposes.
    creations: tokio::sync::mpsc::Sender<NewClusterTopic>,
    creations_rx: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<NewClusterTopic>>>,
}

/// Creations queued and not yet proposed, at most.
const CREATIONS_QUEUED_MAX: usize = 1024;

/// Who serves a partition, as this node's image says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// This node leads it.
    Here,
    /// Another broker does.
    Elsewhere(i32),
    /// Nobody does now (its replicas are fenced).
    NoLeader,
    /// The image has no such partition.
    Unknown,
}

impl Cluster {
    pub fn new(node_id: i32, handle: QuorumHandle, incarnation: [u8; 16]) -> Cluster {
        let (creations, receiver) = tokio::sync::mpsc::channel(CREATIONS_QUEUED_MAX);
        Cluster {
            node_id,
            handle,
            incarnation,
            creating: std::sync::Mutex::new(BTreeSet::new()),
            creations,
            creations_rx: std::sync::Mutex::new(Some(receiver)),
        }
    }

    /// Asks for a topic to be created without waiting (auto-creation): `run` proposes it.
    /// A name already asked for and not settled is not asked for again.
    pub fn create_later(&self, new: NewClusterTopic) {
        if self.begin_creating(&new.name) {
            let name = new.name.clone();
            if self.creations.try_send(new).is_err() {
                tracing::warn!(topic = %name, "too many topic creations queued; this one is dropped and the client retries");
                self.end_creating(&name);
            }
        }
    }

    pub fn view(&self) -> View {
        self.handle.view()
    }

    pub fn leadership(&self, image: &MetadataImage, topic: &str, partition: i32) -> Leadership {
        let state = image
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?));
        match state {
            None => Leadership::Unknown,
            Some(s) if s.leader < 0 => Leadership::NoLeader,
            Some(s) if s.leader == self.node_id => Leadership::Here,
            Some(s) => Leadership::Elsewhere(s.leader),
        }
    }

    /// Proposes `record` and waits for it to commit (forwarded to the leader by this node's
    /// voter), retrying while no leader is known, for about `PROPOSAL_WAIT`.
    ///
    /// # Errors
    /// The proposal's error when it did not commit in time.
    pub async fn propose(&self, record: MetadataRecord) -> Result<Applied, ProposalError> {
        // Counted in pauses: the engine reads no clock outside io/os.rs.
        let attempts = (PROPOSAL_WAIT.as_millis() / RETRY_PAUSE.as_millis()).max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.handle.propose(record.clone()).await {
                Ok(committed) => return Ok(committed.outcome),
                Err(ProposalError::Stopped) => return Err(ProposalError::Stopped),
                Err(e) if attempt >= attempts => return Err(e),
                // No leader yet: an election is under way.
                Err(ProposalError::NotLeader(_)) => tokio::time::sleep(RETRY_PAUSE).await,
                // May or may not have committed: a creation proposed twice is rejected the
                // second time, which the caller reads from the image.
                Err(e @ ProposalError::Unknown(_)) => return Err(e),
            }
        }
    }

    /// Marks `name` as being created by this node; false when it already is.
    fn begin_creating(&self, name: &str) -> bool {
        let mut creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        creating.insert(name.to_owned())
    }

    fn end_creating(&self, name: &str) {
        let mut creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        creating.remove(name);
    }
}

/// A topic to create through the controller.
pub struct NewClusterTopic {
    pub name: String,
    /// -1: num.partitions.
    pub partitions: i32,
    /// -1: the default (1).
    pub replication_factor: i32,
    /// Replicas of each partition, when the request named them.
    pub assignments: Vec<Vec<i32>>,
    pub overrides: TopicOverrides,
}

/// Why creating a topic through the controller failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterTopicError {
    Topic(TopicError),
    InvalidReplicationFactor(String),
    InvalidReplicaAssignment(String),
    /// The controller could not be reached or did not answer in time: the client retries.
    NotController(String),
}

impl<D: Disk, C: Clock, R: Rng> Broker<D, C, R> {
    /// The cluster this node is part of, when it runs with a quorum of voters.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.get()
    }

    /// Joins the broker to the quorum of `cluster.handle`: from now on the image rules.
    ///
    /// # Panics
    /// When it was joined before.
    pub fn join(&self, cluster: Cluster) {
        assert!(self.cluster.set(cluster).is_ok(), "joined twice");
    }

    /// Who serves `partition` of `topic`: always this node when there is no cluster.
    pub fn leadership(&self, topic: &str, partition: i32) -> Leadership {
        match self.cluster() {
            None => Leadership::Here,
            Some(cluster) => cluster.leadership(&cluster.view().image, topic, partition),
        }
    }

    /// Checks and places a new topic, and proposes it to the controller; answers once it
    /// committed (or was refused).
    ///
    /// # Errors
    /// See `ClusterTopicError`.
    pub async fn create_cluster_topic(
        &self,
        new: NewClusterTopic,
        validate_only: bool,
    ) -> Result<TopicImage, ClusterTopicError> {
        let cluster = self.cluster().expect("a cluster");
        topics::validate_name(&new.name).map_err(ClusterTopicError::Topic)?;
        super::config::topic_log_config(&self.config.log, &new.overrides)
            .map_err(|e| ClusterTopicError::Topic(TopicError::InvalidConfig(e)))?;
        let image = cluster.view().image;
        if image.topics.contains_key(&new.name) {
            return Err(ClusterTopicError::Topic(TopicError::AlreadyExists));
        }
        let partitions = if new.assignments.is_empty() {
            let count = match new.partitions {
                -1 => self.config.partitions_default,
                n => n,
            };
            if !(1..=topics::PARTITIONS_MAX).contains(&count) {
                return Err(ClusterTopicError::Topic(TopicError::InvalidPartitions(
                    format!(
                        "{count} partitions: must be 1 to {}",
                        topics::PARTITIONS_MAX
                    ),
                )));
            }
            let factor = match new.replication_factor {
                -1 => 1,
                n => n,
            };
            if factor > 1 {
                return Err(ClusterTopicError::InvalidReplicationFactor(format!(
                    "Replication factor {factor} is not supported: keel does not replicate \
                     partitions yet, so every topic has one replica (replication factor 1)."
                )));
            }
            crate::quorum::controller::assign(&image, count, factor)
                .map_err(ClusterTopicError::InvalidReplicationFactor)?
        } else {
            if new.assignments.iter().any(|r| r.len() > 1) {
                return Err(ClusterTopicError::InvalidReplicaAssignment(
                    "An assignment of more than one replica per partition is not supported: \
                     keel does not replicate partitions yet."
                        .to_owned(),
                ));
            }
            crate::quorum::controller::manual(&image, &new.assignments)
                .map_err(ClusterTopicError::InvalidReplicaAssignment)?
        };
        if validate_only {
            return Ok(TopicImage {
                name: new.name,
                id: [0; 16],
                partitions,
                configs: new.overrides.into_iter().collect(),
            });
        }
        let name = new.name.clone();
        let record = MetadataRecord::CreateTopic {
            name: new.name,
            id: self.new_topic_id(),
            partitions,
            configs: new.overrides.into_iter().collect(),
        };
        let outcome = cluster.propose(record).await;
        let image = cluster.view().image;
        match (outcome, image.topics.get(&name)) {
            (Ok(Applied::Done), Some(topic)) => {
                tracing::info!(topic = %name, partitions = topic.partitions.len(), "topic created in the cluster");
                Ok(topic.clone())
            }
            (Ok(Applied::Rejected(_)), Some(_)) => {
                Err(ClusterTopicError::Topic(TopicError::AlreadyExists))
            }
            (Ok(Applied::Rejected(why)), None) => Err(ClusterTopicError::NotController(why)),
            (Ok(Applied::Done), None) => Err(ClusterTopicError::NotController(
                "the topic was deleted as it was created".to_owned(),
            )),
            (Err(e), _) => Err(ClusterTopicError::NotController(format!(
                "the controller did not confirm the creation in time ({e:?}); it may still \
                 happen"
            ))),
        }
    }

    /// Deletes a topic through the controller.
    ///
    /// # Errors
    /// `Unknown`, `Internal`, or `Storage` naming why the controller did not confirm it.
    pub async fn delete_cluster_topic(&self, name: &str) -> Result<(), TopicError> {
        if name == super::offsets::OFFSETS_TOPIC {
            return Err(TopicError::Internal);
        }
        let cluster = self.cluster().expect("a cluster");
        let Some(id) = cluster.view().image.topics.get(name).map(|t| t.id) else {
            return Err(TopicError::Unknown);
        };
        match cluster.propose(MetadataRecord::DeleteTopic { id }).await {
            Ok(Applied::Done) => {
                tracing::info!(topic = name, "topic deleted in the cluster");
                Ok(())
            }
            Ok(Applied::Rejected(_)) => Err(TopicError::Unknown),
            Err(e) => Err(TopicError::Storage(format!(
                "the controller did not confirm the deletion in time ({e:?})"
            ))),
        }
    }

    /// Brings this node's topics on disk in line with `image`: creates those it lacks (with
    /// the image's id, partition count and configs), deletes those the image says were
    /// deleted. A topic the image does not know, and did not delete, is left alone with a
    /// warning: an image that has not caught up must never cost data.
    pub fn materialize(&self, image: &MetadataImage, warned: &mut BTreeSet<String>) {
        for local in self.topics() {
            let known = image.topics.get(&local.name);
            if image.deleted.contains(&local.id) {
                if let Err(e) = self.delete_topic(&local.name) {
                    tracing::error!(topic = %local.name, error = ?e, "removing a deleted topic's files failed");
                }
            } else if known.is_none_or(|t| t.id != local.id) && warned.insert(local.name.clone()) {
                tracing::warn!(topic = %local.name, "this node holds a topic the cluster's metadata does not list (yet); its files are kept");
            }
        }
        for topic in image.topics.values() {
            if let Some(local) = self.topic(&topic.name) {
                if local.id != topic.id {
                    continue;
                }
                let count = topic.partitions.len() as i32;
                if (local.partitions.len() as i32) < count {
                    if let Err(e) = self.add_partitions(&topic.name, count, false) {
                        tracing::error!(topic = %topic.name, error = ?e, "adding partitions failed");
                    }
                }
                let overrides: TopicOverrides = topic.configs.clone();
                if local.overrides != overrides {
                    if let Err(e) = self.set_topic_overrides(&topic.name, overrides, false) {
                        tracing::error!(topic = %topic.name, error = ?e, "applying topic configs failed");
                    }
                }
                continue;
            }
            let overrides: TopicOverrides = topic.configs.clone();
            let count = topic.partitions.len() as i32;
            match self.create_topic_as(&topic.name, count, overrides, topic.id) {
                Ok(_) | Err(TopicError::AlreadyExists) => {}
                Err(e) => {
                    tracing::error!(topic = %topic.name, error = ?e, "creating a topic's files failed")
                }
            }
        }
    }
}

/// Registers this broker (retrying until the quorum takes it), then keeps its topics on disk
/// in line with the image as it changes. Ends when the quorum's driver stops.
pub async fn run<D, C, R>(broker: Arc<Broker<D, C, R>>, endpoints: Vec<Endpoint>)
where
    D: Disk + 'static,
    C: Clock + 'static,
    R: Rng + 'static,
{
    let cluster = broker.cluster().expect("a cluster");
    let mut views = cluster.handle.watch();
    let register = MetadataRecord::RegisterBroker {
        id: cluster.node_id,
        incarnation: cluster.incarnation,
        endpoints,
        rack: None,
    };
    let registered = |image: &MetadataImage| {
        image
            .brokers
            .get(&cluster.node_id)
            .is_some_and(|b| b.incarnation == cluster.incarnation)
    };
    let mut warned = BTreeSet::new();
    let mut proposed = false;
    let mut creations = cluster
        .creations_rx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .expect("run once");
    let creator = broker.clone();
    let _creating = crate::quorum::transport::AbortOnDrop(vec![tokio::spawn(async move {
        while let Some(new) = creations.recv().await {
            let name = new.name.clone();
            match creator.create_cluster_topic(new, false).await {
                Ok(_) | Err(ClusterTopicError::Topic(TopicError::AlreadyExists)) => {}
                Err(e) => tracing::warn!(topic = %name, error = ?e, "creating a topic failed"),
            }
            if let Some(cluster) = creator.cluster() {
                cluster.end_creating(&name);
            }
        }
    })]);
    loop {
        let view = views.borrow_and_update().clone();
        if !registered(&view.image) && !proposed {
            // Proposed in its own task: the image may change while it commits.
            let handle = cluster.handle.clone();
            let record = register.clone();
            proposed = true;
            tokio::spawn(async move {
                loop {
                    match handle.propose(record.clone()).await {
                        Ok(_) | Err(ProposalError::Stopped) => return,
                        Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
                    }
                }
            });
        }
        if registered(&view.image) && proposed {
            tracing::info!(
                node = cluster.node_id,
                epoch = view.image.brokers[&cluster.node_id].epoch,
                "registered with the cluster"
            );
            proposed = false;
        }
        let image = view.image.clone();
        let materializing = broker.clone();
        let mut w = std::mem::take(&mut warned);
        warned = crate::io::blocking(move || {
            materializing.materialize(&image, &mut w);
            w
        });
        if views.changed().await.is_err() {
            return;
        }
    }
}

/// Controlled shutdown: marks this broker as shutting down in the metadata (its partitions
/// lose their leader here at once, rather than after a session timeout), and hands the
/// quorum's leadership to another voter if this one leads. Bounded: a quorum that cannot
/// commit does not hold the shutdown up.
pub async fn shut_down<D: Disk, C: Clock, R: Rng>(broker: &Broker<D, C, R>) {
    let Some(cluster) = broker.cluster() else {
        return;
    };
    let image = cluster.view().image;
    if let Some(me) = image.brokers.get(&cluster.node_id) {
        if me.incarnation == cluster.incarnation {
            let record = MetadataRecord::BrokerShutdown {
                id: cluster.node_id,
                epoch: me.epoch,
            };
            let shut = tokio::time::timeout(Duration::from_secs(3), cluster.handle.propose(record));
            match shut.await {
                Ok(Ok(_)) => tracing::info!("controlled shutdown: this broker leads nothing now"),
                other => {
                    tracing::warn!(outcome = ?other.map(|r| r.map(|c| c.index)), "controlled shutdown: the quorum did not confirm it; going on")
                }
            }
        }
    }
    if cluster.handle.step_down().await {
        for _ in 0..30 {
            if cluster.view().leader != Some(cluster.node_id as u64) {
                tracing::info!("controlled shutdown: another voter leads the quorum now");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Which node coordinates a group: the leader of its partition of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coordination {
    Here,
    Elsewhere {
        id: i32,
        host: String,
        port: u16,
    },
    /// No node can now (the offsets topic is being created, or its partition has no leader).
    Unavailable(&'static str),
}

impl<D: Disk, C: Clock, R: Rng> Broker<D, C, R> {
    /// Who coordinates `group`: always this node when there is no cluster. In a cluster, a
    /// missing offsets topic is proposed (and the group waits for it).
    pub fn coordinator(&self, group: &str) -> Coordination {
        let Some(cluster) = self.cluster() else {
            return Coordination::Here;
        };
        let image = cluster.view().image;
        let name = super::offsets::OFFSETS_TOPIC;
        let Some(topic) = image.topics.get(name) else {
            // Proposes it; answers Pending.
            let _ = self.offsets_topic();
            return Coordination::Unavailable("the offsets topic is being created");
        };
        let index = super::offsets::partition_for(group, topic.partitions.len() as i32);
        let leader = topic.partitions[index as usize].leader;
        if leader == cluster.node_id {
            return match self.topic(name) {
                Some(local) if local.id == topic.id => Coordination::Here,
                _ => Coordination::Unavailable("the offsets topic's files are being made"),
            };
        }
        let endpoint = image.live_broker(leader).and_then(|b| {
            b.endpoints
                .iter()
                .find(|e| e.name == CLIENT_LISTENER)
                .cloned()
        });
        match endpoint {
            Some(e) => Coordination::Elsewhere {
                id: leader,
                host: e.host,
                port: e.port,
            },
            None => Coordination::Unavailable("the group's offsets partition has no leader"),
        }
    }

    /// The code a request for `group` gets when this node does not coordinate it.
    pub fn not_coordinator(&self, group: &str) -> Option<i16> {
        match self.coordinator(group) {
            Coordination::Here => None,
            Coordination::Elsewhere { .. } => Some(crate::error_codes::NOT_COORDINATOR),
            Coordination::Unavailable(_) => Some(crate::error_codes::COORDINATOR_NOT_AVAILABLE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::config::BrokerConfig;
    use crate::io::mem::{FixedClock, MemDisk};
    use crate::io::os::OsRng;
    use crate::quorum::records::PartitionState;

    fn topic(name: &str, id: u8, partitions: usize) -> TopicImage {
        let state = PartitionState {
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        };
        TopicImage {
            name: name.to_owned(),
            id: [id; 16],
            partitions: vec![state; partitions],
            configs: [("retention.ms".to_owned(), "1000".to_owned())].into(),
        }
    }

    /// The node's files follow the image: a topic the image holds is made with its id, count
    /// and configs; one the image lacks but never deleted (an image not caught up) keeps its
    /// data; one whose deletion the image records is removed.
    #[test]
    fn a_nodes_topics_follow_the_image_and_only_a_recorded_deletion_removes_one() {
        let config = BrokerConfig {
            data_dir: "/data".into(),
            ..BrokerConfig::default()
        };
        let broker = Broker::open(MemDisk::new(), FixedClock, OsRng::default(), config).unwrap();
        let kept = broker
            .create_topic("local", 1, TopicOverrides::new(), false)
            .unwrap()
            .expect("created");
        let mut image = MetadataImage::default();
        image.topics.insert("orders".into(), topic("orders", 7, 3));
        let mut warned = BTreeSet::new();
        broker.materialize(&image, &mut warned);
        let orders = broker.topic("orders").expect("made from the image");
        assert_eq!((orders.id, orders.partitions.len()), ([7; 16], 3));
        assert_eq!(orders.overrides, image.topics["orders"].configs);
        assert!(
            broker.topic("local").is_some(),
            "an unknown topic's data is kept"
        );
        assert!(warned.contains("local"));

        image.topics.remove("orders");
        image.deleted.insert([7; 16]);
        image.deleted.insert(kept.id);
        broker.materialize(&image, &mut warned);
        assert!(broker.topic("orders").is_none());
        assert!(broker.topic("local").is_none());
        assert!(!broker.disk.exists(std::path::Path::new("/data/orders-0")));
    }
}
