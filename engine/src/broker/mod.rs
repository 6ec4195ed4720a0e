//! The broker: the topics and partitions this node hosts, the settings they run with, and the
//! housekeeping (flushes due under the flush policy, retention) that runs beside the requests.
//! It is generic over the disk, clock and randomness seams, so the same broker runs on real IO
//! and in the simulator; the Kafka protocol (`crate::protocol`) and the server
//! (`crate::server`) sit on top of it.

pub mod cluster;
pub mod config;
pub mod descriptors;
pub mod fetch_sessions;
pub mod groups;
pub mod metrics;
pub mod offsets;
pub mod producer_ids;
pub mod settings;
pub mod topics;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use self::config::{BrokerConfig, TopicOverrides};
use self::topics::{Topic, TopicError};
use crate::io::{Clock, Disk, Rng};
use crate::partition::{Acks, AppendError};

pub struct Broker<D: Disk, C: Clock, R: Rng> {
    pub config: BrokerConfig,
    pub disk: D,
    pub clock: C,
    rng: R,
    topics: RwLock<BTreeMap<String, Arc<Topic<D>>>>,
    /// Topics being created on disk, which takes fsyncs: that happens outside the topics' lock,
    /// so requests for other topics do not wait on it. Lock order: this, then `topics`.
    creating: Mutex<BTreeSet<String>>,
    /// Signalled when a creation ends.
    created: Condvar,
    /// Descriptors promised to creations under way (see `reserve_descriptors`).
    descriptors_reserved: Mutex<u64>,
    /// host and port clients are told to connect to.
    advertised: RwLock<(String, i32)>,
    /// Signalled when data becomes readable (an append, or a flush that moved a high
    /// watermark): wakes fetches waiting for min_bytes.
    pub data_arrived: tokio::sync::Notify,
    /// Set when shutdown begins: waiting fetches answer with what they have at once, rather
    /// than hold their connection past the drain.
    stopping: std::sync::atomic::AtomicBool,
    pub metrics: metrics::Metrics,
    pub producer_ids: producer_ids::ProducerIds,
    pub groups: groups::Coordinator,
    pub fetch_sessions: fetch_sessions::FetchSessions,
    /// Set when the node runs with a quorum of voters (`cluster.rs`).
    cluster: std::sync::OnceLock<cluster::Cluster>,
}

/// Descriptors promised to a creation, in `Broker::descriptors_reserved` for as long as this
/// lives: once the creation ends, its partitions hold them (or it failed and holds none).
struct Reserved<'a> {
    reserved: &'a Mutex<u64>,
    descriptors: u64,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        *reserved -= self.descriptors;
    }
}

/// The descriptors held by every open partition of `topics`.
fn partition_descriptors<D: Disk>(topics: &BTreeMap<String, Arc<Topic<D>>>) -> u64 {
    let partitions = topics.values().flat_map(|t| &t.partitions);
    partitions
        .map(|p| {
            p.log().as_ref().map_or(0, |log| {
                descriptors::partition_descriptors(log.segment_count())
            })
        })
        .sum()
}

/// Lowers max.connections to what the open-files limit holds beside the partitions just
/// opened, with a warning naming both numbers.
fn fit_connections_to_open_files<D: Disk>(
    config: &mut BrokerConfig,
    topics: &BTreeMap<String, Arc<Topic<D>>>,
) {
    let Some(limit) = config.open_files_max else {
        return;
    };
    let held = partition_descriptors(topics);
    let asked = config.connections_max;
    if let Some(lowered) = descriptors::connections_lowered(limit, held, asked) {
        tracing::warn!(
            max_connections = asked,
            effective = lowered,
            open_files_max = limit,
            partition_descriptors = held,
            "max.connections {asked} is more than the open-files limit {limit} holds beside the \
             open partitions; accepting at most {lowered} connections, and creating no \
             partitions until the limit is raised or max.connections lowered"
        );
        config.connections_max = lowered;
    }
}

/// A topic's name in `Broker::creating` for as long as this lives.
struct Creating<'a, D: Disk, C: Clock, R: Rng> {
    broker: &'a Broker<D, C, R>,
    name: &'a str,
}

impl<D: Disk, C: Clock, R: Rng> Drop for Creating<'_, D, C, R> {
    fn drop(&mut self) {
        let broker = self.broker;
        let mut creating = broker.creating.lock().unwrap_or_else(|p| p.into_inner());
        creating.remove(self.name);
        drop(creating);
        broker.created.notify_all();
    }
}

impl<D: Disk, C: Clock, R: Rng> Broker<D, C, R> {
    /// Opens the data directory: every described topic, every partition recovered.
    ///
    /// # Errors
    /// Storage errors, or a topic description whose settings are invalid.
    pub fn open(disk: D, clock: C, rng: R, mut config: BrokerConfig) -> Result<Self, TopicError> {
        disk.create_dir_all(&config.data_dir)?;
        let topics = topics::load_all(
            &disk,
            &config.data_dir,
            &config.log,
            config.node_id,
            clock.now_ms(),
        )?;
        topics::remove_orphans(&disk, &config.data_dir, &topics)?;
        fit_connections_to_open_files(&mut config, &topics);
        let producer_ids = producer_ids::ProducerIds::open(&disk, &config.data_dir)?;
        tracing::info!(
            data_dir = %config.data_dir.display(),
            topics = topics.len(),
            "data directory opened"
        );
        let coordinator = groups::Coordinator::new(config.groups.clone());
        if let Some(topic) = topics.get(offsets::OFFSETS_TOPIC) {
            let committed = offsets::load(topic)
                .map_err(|e| TopicError::Storage(format!("{}: {e}", offsets::OFFSETS_TOPIC)))?;
            coordinator.load(committed);
        }
        let advertised = split_address(config.advertised.as_deref().unwrap_or(&config.listen));
        Ok(Broker {
            config,
            disk,
            clock,
            rng,
            topics: RwLock::new(topics),
            creating: Mutex::new(BTreeSet::new()),
            created: Condvar::new(),
            descriptors_reserved: Mutex::new(0),
            advertised: RwLock::new(advertised),
            data_arrived: tokio::sync::Notify::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            metrics: metrics::Metrics::default(),
            producer_ids,
            groups: coordinator,
            fetch_sessions: fetch_sessions::FetchSessions::default(),
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// Sets the address advertised in Metadata (the bound one, unless configured).
    pub fn set_bound_address(&self, bound: &str) {
        if self.config.advertised.is_none() {
            *self.advertised.write().unwrap_or_else(|p| p.into_inner()) = split_address(bound);
        }
    }

    pub fn advertised(&self) -> (String, i32) {
        self.advertised
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The broker's source of randomness (ids).
    pub fn rng(&self) -> &R {
        &self.rng
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic<D>>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn topic_by_id(&self, id: &[u8; 16]) -> Option<Arc<Topic<D>>> {
        let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
        topics.values().find(|t| &t.id == id).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic<D>>> {
        let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
        topics.values().cloned().collect()
    }

    fn new_topic_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.rng.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&self.rng.next_u64().to_be_bytes());
        id
    }

    /// Creates a topic; `partitions` -1 means num.partitions. With `validate_only`, checks and
    /// creates nothing.
    ///
    /// # Errors
    /// `AlreadyExists`, invalid name/partitions/config, storage errors.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: TopicOverrides,
        validate_only: bool,
    ) -> Result<Option<Arc<Topic<D>>>, TopicError> {
        self.create_topic_with(name, partitions, overrides, validate_only, None)
    }

    /// Creates this node's files of a topic the cluster's metadata holds, with its id.
    ///
    /// # Errors
    /// As `create_topic`.
    pub fn create_topic_as(
        &self,
        name: &str,
        partitions: i32,
        overrides: TopicOverrides,
        id: [u8; 16],
    ) -> Result<Option<Arc<Topic<D>>>, TopicError> {
        self.create_topic_with(name, partitions, overrides, false, Some(id))
    }

    fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        overrides: TopicOverrides,
        validate_only: bool,
        id: Option<[u8; 16]>,
    ) -> Result<Option<Arc<Topic<D>>>, TopicError> {
        let partitions = if partitions == -1 {
            self.config.partitions_default
        } else {
            partitions
        };
        topics::validate_name(name)?;
        // A creation (or other change) of the same name under way ends in a moment, with the
        // topic existing or not: wait for it rather than answer before it is known. Whatever
        // happens below, a panic included, the name is freed and waiters wake.
        let _held = self.hold_name(name);
        if self.topic(name).is_some() {
            return Err(TopicError::AlreadyExists);
        }
        // Before any file is made: a creation that runs out of descriptors fails after
        // thousands of files, and starves connections of theirs.
        let _reserved = if (1..=topics::PARTITIONS_MAX).contains(&partitions) {
            Some(self.reserve_descriptors(name, partitions)?)
        } else {
            None
        };
        if validate_only {
            config::topic_log_config(&self.config.log, &overrides)
                .map_err(TopicError::InvalidConfig)?;
            if !(1..=topics::PARTITIONS_MAX).contains(&partitions) {
                return Err(TopicError::InvalidPartitions(format!(
                    "{partitions} partitions"
                )));
            }
            return Ok(None);
        }
        let new = topics::NewTopic {
            name,
            id: id.unwrap_or_else(|| self.new_topic_id()),
            partitions,
            overrides,
        };
        let created = crate::io::blocking(|| {
            topics::create(
                &self.disk,
                &self.config.data_dir,
                new,
                &self.config.log,
                self.config.node_id,
                self.clock.now_ms(),
            )
        });
        // A refused name or setting is the client's error, answered as such; a storage failure
        // is the operator's to see, and `topics::create` logs it with what it removed.
        let topic = created.map(|topic| {
            let topic = Arc::new(topic);
            let mut all = self.topics.write().unwrap_or_else(|p| p.into_inner());
            all.insert(name.to_owned(), topic.clone());
            topic
        })?;
        tracing::info!(topic = name, partitions, "topic created");
        Ok(Some(topic))
    }

    /// The topic, created with default settings if it does not exist and auto-creation is on.
    ///
    /// # Errors
    /// `Unknown` when absent and auto-creation is off (or not `allowed` by the request).
    pub fn topic_or_create(&self, name: &str, allowed: bool) -> Result<Arc<Topic<D>>, TopicError> {
        if let Some(cluster) = self.cluster() {
            return self.cluster_topic_or_create(cluster, name, allowed, TopicOverrides::new(), -1);
        }
        if let Some(topic) = self.topic(name) {
            return Ok(topic);
        }
        if !(allowed && self.config.auto_create_topics) {
            return Err(TopicError::Unknown);
        }
        match self.create_topic(name, -1, TopicOverrides::new(), false) {
            Ok(Some(topic)) => Ok(topic),
            Ok(None) => Err(TopicError::Unknown),
            Err(TopicError::AlreadyExists) => self.topic(name).ok_or(TopicError::Unknown),
            Err(e) => Err(e),
        }
    }

    /// In a cluster: the topic if the metadata has it and this node's files of it are made;
    /// otherwise `Pending` (asking the controller to create it when `allowed`) or `Unknown`.
    fn cluster_topic_or_create(
        &self,
        cluster: &cluster::Cluster,
        name: &str,
        allowed: bool,
        overrides: TopicOverrides,
        partitions: i32,
    ) -> Result<Arc<Topic<D>>, TopicError> {
        let image = cluster.view().image;
        if let Some(known) = image.topics.get(name) {
            return match self.topic(name) {
                Some(local) if local.id == known.id => Ok(local),
                _ => Err(TopicError::Pending),
            };
        }
        let internal = name == offsets::OFFSETS_TOPIC;
        if !(allowed && (internal || self.config.auto_create_topics)) {
            return Err(TopicError::Unknown);
        }
        topics::validate_name(name)?;
        cluster.create_later(cluster::NewClusterTopic {
            name: name.to_owned(),
            partitions,
            replication_factor: -1,
            assignments: Vec::new(),
            overrides,
        });
        Err(TopicError::Pending)
    }

    /// Deletes a topic and its data.
    ///
    /// # Errors
    /// `Unknown`, storage errors.
    pub fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        if name == offsets::OFFSETS_TOPIC {
            return Err(TopicError::Internal);
        }
        let _held = self.hold_name(name);
        let topic = {
            let mut all = self.topics.write().unwrap_or_else(|p| p.into_inner());
            all.remove(name).ok_or(TopicError::Unknown)?
        };
        // The files go outside the topics' lock: requests for other topics go on, and a create
        // of the same name waits for the name to be free.
        let deleted =
            crate::io::blocking(|| topics::delete(&self.disk, &self.config.data_dir, &topic));
        if let Err(e) = deleted {
            tracing::error!(topic = name, error = ?e, "deleting the topic failed; it stays");
            let mut all = self.topics.write().unwrap_or_else(|p| p.into_inner());
            all.insert(name.to_owned(), topic);
            return Err(e);
        }
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Promises the descriptors `new_partitions` partitions of `topic` will hold, if the
    /// open-files limit has room for them beside the open partitions, the creations under way,
    /// max.connections and `descriptors::RESERVED`.
    ///
    /// # Errors
    /// `InvalidPartitions` naming the limit when it has no room. Of Kafka's codes this is the
    /// one that points at what the client can change, its partition count: clients show it as
    /// InvalidPartitionsException with keel's message. POLICY_VIOLATION would send Kafka users
    /// looking for a create.topic.policy, which keel does not have.
    fn reserve_descriptors(
        &self,
        topic: &str,
        new_partitions: i32,
    ) -> Result<Reserved<'_>, TopicError> {
        let mut reserved = self
            .descriptors_reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(limit) = self.config.open_files_max else {
            return Ok(Reserved {
                reserved: &self.descriptors_reserved,
                descriptors: 0,
            });
        };
        let topics = self
            .topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let held = partition_descriptors(&topics) + *reserved;
        let connections = self.config.connections_max;
        let new = u64::try_from(new_partitions).unwrap_or(0);
        if let Err(why) = descriptors::check_new_partitions(limit, held, connections, new) {
            tracing::warn!(
                topic,
                new_partitions,
                open_files_max = limit,
                partition_descriptors = held,
                max_connections = connections,
                "partitions refused: not enough open files"
            );
            return Err(TopicError::InvalidPartitions(why));
        }
        let descriptors = new * descriptors::PER_NEW_PARTITION;
        *reserved += descriptors;
        Ok(Reserved {
            reserved: &self.descriptors_reserved,
            descriptors,
        })
    }

    /// Holds `name` in `creating` (waiting for any creation, deletion or change of it under
    /// way to end) until the guard drops: one operation on a topic's files at a time, without
    /// holding the topics' lock over their IO.
    fn hold_name<'a>(&'a self, name: &'a str) -> Creating<'a, D, C, R> {
        let mut creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        while creating.contains(name) {
            creating = crate::io::blocking(|| self.created.wait(creating))
                .unwrap_or_else(|p| p.into_inner());
        }
        creating.insert(name.to_owned());
        Creating { broker: self, name }
    }

    /// Grows a topic to `count` partitions.
    ///
    /// # Errors
    /// `Unknown`, `InvalidPartitions`, storage errors.
    pub fn add_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _held = self.hold_name(name);
        let topic = self.topic(name).ok_or(TopicError::Unknown)?;
        let current = topic.partitions.len() as i32;
        let _reserved = if current < count && count <= topics::PARTITIONS_MAX {
            Some(self.reserve_descriptors(name, count - current)?)
        } else {
            None
        };
        if validate_only {
            let ok = count > current && count <= topics::PARTITIONS_MAX;
            return if ok {
                Ok(())
            } else {
                Err(TopicError::InvalidPartitions(format!("{count}")))
            };
        }
        let grown = crate::io::blocking(|| {
            topics::add_partitions(
                &self.disk,
                &self.config.data_dir,
                &topic,
                count,
                self.config.node_id,
                self.clock.now_ms(),
            )
        })?;
        let mut all = self.topics.write().unwrap_or_else(|p| p.into_inner());
        all.insert(name.to_owned(), Arc::new(grown));
        Ok(())
    }

    /// Replaces a topic's overrides.
    ///
    /// # Errors
    /// `Unknown`, `InvalidConfig`, storage errors.
    pub fn set_topic_overrides(
        &self,
        name: &str,
        overrides: TopicOverrides,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _held = self.hold_name(name);
        let topic = self.topic(name).ok_or(TopicError::Unknown)?;
        if validate_only {
            config::topic_log_config(&self.config.log, &overrides)
                .map_err(TopicError::InvalidConfig)?;
            return Ok(());
        }
        let updated = crate::io::blocking(|| {
            topics::set_overrides(
                &self.disk,
                &self.config.data_dir,
                &topic,
                overrides,
                &self.config.log,
            )
        })?;
        let mut all = self.topics.write().unwrap_or_else(|p| p.into_inner());
        all.insert(name.to_owned(), Arc::new(updated));
        Ok(())
    }

    /// The internal topic of committed offsets, created on first use with
    /// offsets.topic.num.partitions partitions, compacted (the last commit of each group and
    /// partition is kept, deleted groups' tombstones go after delete.retention.ms), and
    /// offsets.topic.segment.bytes.
    ///
    /// # Errors
    /// Storage errors creating it.
    pub fn offsets_topic(&self) -> Result<Arc<Topic<D>>, TopicError> {
        if self.cluster().is_none() {
            if let Some(topic) = self.topic(offsets::OFFSETS_TOPIC) {
                return Ok(topic);
            }
        }
        let overrides = TopicOverrides::from([
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            ("retention.ms".to_owned(), "-1".to_owned()),
            ("retention.bytes".to_owned(), "-1".to_owned()),
            (
                "segment.bytes".to_owned(),
                self.config.groups.offsets_segment_bytes.to_string(),
            ),
        ]);
        let partitions = self.config.groups.offsets_partitions;
        if let Some(cluster) = self.cluster() {
            let name = offsets::OFFSETS_TOPIC;
            return self.cluster_topic_or_create(cluster, name, true, overrides, partitions);
        }
        match self.create_topic(offsets::OFFSETS_TOPIC, partitions, overrides, false) {
            Ok(Some(topic)) => Ok(topic),
            Ok(None) => Err(TopicError::Unknown),
            Err(TopicError::AlreadyExists) => self
                .topic(offsets::OFFSETS_TOPIC)
                .ok_or(TopicError::Unknown),
            Err(e) => Err(e),
        }
    }

    /// Appends offset records (tombstones where `None`) of `group` to its partition of
    /// `__consumer_offsets`, through the partition's produce path (acks=all: flushed first
    /// under flush=always). Returns a Kafka error code on failure; nothing is then committed.
    pub fn write_offsets(
        &self,
        group: &str,
        entries: &[(offsets::OffsetKey, Option<offsets::Committed>)],
    ) -> Result<(), i16> {
        use crate::error_codes::{COORDINATOR_NOT_AVAILABLE, KAFKA_STORAGE_ERROR as STORAGE_ERROR};
        let topic = self.offsets_topic().map_err(|e| {
            tracing::error!(error = ?e, "the offsets topic cannot be created");
            COORDINATOR_NOT_AVAILABLE
        })?;
        let index = offsets::partition_for(group, topic.partitions.len() as i32);
        let partition = &topic.partitions[index as usize];
        let batch = offsets::batch(entries, self.clock.now_ms());
        let header = crate::log::batch::BatchHeader::parse(&batch)
            .expect("the coordinator's own batch has a header");
        let written = partition.append_blocking(
            &batch,
            &header,
            Acks::All,
            topic.config.compression,
            &self.clock,
        );
        match written {
            Ok(appended) => {
                self.fsynced(appended.synced);
                self.data_arrived.notify_waiters();
                Ok(())
            }
            Err(AppendError::Closed) => Err(COORDINATOR_NOT_AVAILABLE),
            // As Kafka's coordinator answers these.
            Err(AppendError::NotEnoughReplicas(_)) => Err(COORDINATOR_NOT_AVAILABLE),
            Err(AppendError::Log(e))
                if crate::protocol::errors::log_error(&e)
                    == crate::error_codes::MESSAGE_TOO_LARGE =>
            {
                tracing::warn!(group, error = %e, "committed offsets too large for the offsets topic");
                Err(crate::error_codes::INVALID_COMMIT_OFFSET_SIZE)
            }
            Err(e) => {
                // A failed flush may have left the batch in the log, readable once a later
                // flush covers it: a waiting fetch may see it then.
                self.data_arrived.notify_waiters();
                tracing::error!(group, error = ?e, "committed offsets not written");
                Err(STORAGE_ERROR)
            }
        }
    }

    /// Counts a flush that synced in `keel_fsync_seconds`.
    pub fn fsynced(&self, synced: Option<crate::partition::Synced>) {
        if let Some(synced) = synced {
            self.metrics.fsync(synced.elapsed_ns);
        }
    }

    /// Flushes every partition whose flush policy says a flush is due. Returns how many flushed.
    pub async fn flush_due(&self) -> usize {
        let mut flushed = 0;
        for topic in self.topics() {
            for partition in &topic.partitions {
                match partition.flush_if_due(&self.clock).await {
                    Ok(None) => continue,
                    Ok(synced) => {
                        self.fsynced(synced);
                        flushed += 1;
                    }
                    Err(e) => {
                        tracing::error!(topic = %topic.name, partition = partition.index, error = %e, "flush failed")
                    }
                }
                // Under flush=always, a flush moves the high watermark.
                self.data_arrived.notify_waiters();
            }
        }
        flushed
    }

    /// Applies retention to every partition, forgets idle producers, and snapshots the
    /// producer state of partitions whose log is wholly durable.
    pub fn apply_retention(&self) {
        let now_ms = self.clock.now_ms();
        for topic in self.topics() {
            for partition in &topic.partitions {
                let expiration_ms = self.config.producer_id_expiration_ms;
                if let Err(e) = partition.apply_retention(now_ms, expiration_ms) {
                    tracing::error!(topic = %topic.name, partition = partition.index, error = %e, "retention failed");
                }
            }
        }
    }

    /// Runs compaction on every partition whose dirty ratio calls for it (Kafka's log cleaner,
    /// in the housekeeping task); see `Partition::compact_if_due`. Returns how many segments
    /// were cleaned.
    pub fn compact_due(&self) -> usize {
        let now_ms = self.clock.now_ms();
        let mut cleaned = 0;
        for topic in self.topics() {
            for partition in &topic.partitions {
                match partition.compact_if_due(now_ms) {
                    Ok(outcome) => cleaned += outcome.map_or(0, |o| o.segments_cleaned),
                    Err(e) => {
                        tracing::error!(topic = %topic.name, partition = partition.index, error = %e, "compaction failed")
                    }
                }
            }
        }
        cleaned
    }

    /// Begins shutdown: fetches waiting for data answer now with what they have, and joins and
    /// syncs waiting for a rebalance are told to find the coordinator again.
    pub fn begin_shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.data_arrived.notify_waiters();
        self.groups.shutdown();
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes every log cleanly (flush, clean-shutdown marker). Later requests find them closed.
    pub fn close(&self) {
        self.groups.shutdown();
        let now_ms = self.clock.now_ms();
        for topic in self.topics() {
            for partition in &topic.partitions {
                if let Err(e) = partition.close(now_ms) {
                    tracing::error!(topic = %topic.name, partition = partition.index, error = %e, "clean close failed; the next start recovers");
                }
            }
        }
        tracing::info!("all logs closed");
    }
}

/// "host:port" as (host, port); port 9092 when missing or unreadable.
fn split_address(address: &str) -> (String, i32) {
    match address.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().unwrap_or(9092)),
        None => (address.to_owned(), 9092),
    }
}
