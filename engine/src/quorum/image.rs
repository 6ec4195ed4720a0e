//! The cluster's metadata as of some index of the metadata log: the records applied in order.
//! Every node applies the same committed records in the same order, so every node's image at an
//! index is the same; `apply` is deterministic and judges a record only against the image
//! (a topic created twice, say, by two proposals raced through one leader: the first wins and
//! the second is rejected on every node alike).

use std::collections::{BTreeMap, BTreeSet};

use super::records::{DecodeError, Endpoint, MetadataRecord, PartitionState, Reader, Writer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: i32,
    pub incarnation: [u8; 16],
    /// The index of the registration's entry: a restarted broker's new epoch fences requests
    /// made under its old one.
    pub epoch: u64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// In controlled shutdown (`BrokerShutdown`): fenced for the rest of this epoch.
    pub shutting_down: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: [u8; 16],
    pub partitions: Vec<PartitionState>,
    pub configs: BTreeMap<String, String>,
}

/// What applying a record did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// The record did not apply to the image as it was (the reason says why); the image is
    /// unchanged.
    Rejected(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// The index of the last entry applied.
    pub applied: u64,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// By name.
    pub topics: BTreeMap<String, TopicImage>,
    /// The ids of deleted topics: a node removes its files of a topic only when the image says
    /// it was deleted, never because an image that has not caught up yet lacks it.
    pub deleted: BTreeSet<[u8; 16]>,
}

impl MetadataImage {
    pub fn topic_by_id(&self, id: &[u8; 16]) -> Option<&TopicImage> {
        self.topics.values().find(|t| &t.id == id)
    }

    /// The registered broker `id` if it may lead partitions (registered and not fenced).
    pub fn live_broker(&self, id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&id).filter(|b| !b.fenced)
    }

    fn topic_by_id_mut(&mut self, id: &[u8; 16]) -> Option<&mut TopicImage> {
        self.topics.values_mut().find(|t| &t.id == id)
    }

    /// Applies the record committed at `index` (which must follow the last one applied).
    pub fn apply(&mut self, index: u64, record: &MetadataRecord) -> Applied {
        assert!(
            index > self.applied,
            "entry {index} applied after entry {}",
            self.applied
        );
        self.applied = index;
        match record {
            MetadataRecord::Noop => Applied::Done,
            MetadataRecord::RegisterBroker {
                id,
                incarnation,
                endpoints,
                rack,
            } => {
                self.brokers.insert(
                    *id,
                    BrokerRegistration {
                        id: *id,
                        incarnation: *incarnation,
                        epoch: index,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: true,
                        shutting_down: false,
                    },
                );
                Applied::Done
            }
            MetadataRecord::FenceBroker { id, epoch }
            | MetadataRecord::UnfenceBroker { id, epoch }
            | MetadataRecord::BrokerShutdown { id, epoch } => {
                let unfence = matches!(record, MetadataRecord::UnfenceBroker { .. });
                let shutdown = matches!(record, MetadataRecord::BrokerShutdown { .. });
                match self.brokers.get_mut(id) {
                    Some(broker) if broker.epoch == *epoch => {
                        if unfence && broker.shutting_down {
                            return Applied::Rejected(format!(
                                "broker {id} is shutting down in epoch {epoch}"
                            ));
                        }
                        broker.fenced = !unfence;
                        broker.shutting_down |= shutdown;
                        Applied::Done
                    }
                    Some(broker) => Applied::Rejected(format!(
                        "broker {id} is at epoch {}, not {epoch}",
                        broker.epoch
                    )),
                    None => Applied::Rejected(format!("broker {id} is not registered")),
                }
            }
            MetadataRecord::CreateTopic {
                name,
                id,
                partitions,
                configs,
            } => {
                if self.topics.contains_key(name) {
                    return Applied::Rejected(format!("topic {name} exists"));
                }
                if self.topic_by_id(id).is_some() || self.deleted.contains(id) {
                    return Applied::Rejected("the topic id is taken".into());
                }
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        id: *id,
                        partitions: partitions.clone(),
                        configs: configs.iter().cloned().collect(),
                    },
                );
                Applied::Done
            }
            MetadataRecord::PartitionChange {
                topic,
                partition,
                state,
            } => {
                let Some(image) = self.topic_by_id_mut(topic) else {
                    return Applied::Rejected("no such topic".into());
                };
                let Some(current) = image.partitions.get_mut(*partition as usize) else {
                    return Applied::Rejected(format!("no partition {partition}"));
                };
                if state.partition_epoch <= current.partition_epoch
                    || state.leader_epoch < current.leader_epoch
                {
                    return Applied::Rejected(format!(
                        "epochs {}/{} do not follow {}/{}",
                        state.leader_epoch,
                        state.partition_epoch,
                        current.leader_epoch,
                        current.partition_epoch
                    ));
                }
                *current = state.clone();
                Applied::Done
            }
            MetadataRecord::TopicConfig { topic, key, value } => {
                let Some(image) = self.topic_by_id_mut(topic) else {
                    return Applied::Rejected("no such topic".into());
                };
                match value {
                    Some(value) => image.configs.insert(key.clone(), value.clone()),
                    None => image.configs.remove(key),
                };
                Applied::Done
            }
            MetadataRecord::DeleteTopic { id } => {
                let Some(name) = self.topic_by_id(id).map(|t| t.name.clone()) else {
                    return Applied::Rejected("no such topic".into());
                };
                self.topics.remove(&name);
                self.deleted.insert(*id);
                Applied::Done
            }
        }
    }

    /// The image as one blob, for snapshots: the records that rebuild it, after the index.
    pub fn encode(&self) -> Vec<u8> {
        let mut records = Vec::new();
        for b in self.brokers.values() {
            records.push((
                b.epoch,
                MetadataRecord::RegisterBroker {
                    id: b.id,
                    incarnation: b.incarnation,
                    endpoints: b.endpoints.clone(),
                    rack: b.rack.clone(),
                },
            ));
            let (id, epoch) = (b.id, b.epoch);
            if b.shutting_down {
                records.push((0, MetadataRecord::BrokerShutdown { id, epoch }));
            } else if !b.fenced {
                records.push((0, MetadataRecord::UnfenceBroker { id, epoch }));
            }
        }
        for &id in &self.deleted {
            records.push((0, MetadataRecord::DeleteTopic { id }));
        }
        for t in self.topics.values() {
            records.push((
                0,
                MetadataRecord::CreateTopic {
                    name: t.name.clone(),
                    id: t.id,
                    partitions: t.partitions.clone(),
                    configs: t.configs.clone().into_iter().collect(),
                },
            ));
        }
        let mut w = Writer(Vec::new());
        w.u64(self.applied);
        w.u32(records.len() as u32);
        for (epoch, record) in records {
            w.u64(epoch);
            w.bytes(&record.encode());
        }
        w.0
    }

    /// # Errors
    /// Bytes that `encode` did not write.
    pub fn decode(bytes: &[u8]) -> Result<MetadataImage, DecodeError> {
        let mut r = Reader(bytes);
        let applied = r.u64()?;
        let count = r.count()?;
        let mut image = MetadataImage::default();
        for _ in 0..count {
            let epoch = r.u64()?;
            let record = MetadataRecord::decode(r.bytes()?)?;
            match record {
                MetadataRecord::RegisterBroker {
                    id,
                    incarnation,
                    endpoints,
                    rack,
                } => {
                    let broker = BrokerRegistration {
                        id,
                        incarnation,
                        epoch,
                        endpoints,
                        rack,
                        fenced: true,
                        shutting_down: false,
                    };
                    image.brokers.insert(id, broker);
                }
                MetadataRecord::UnfenceBroker { id, .. } => match image.brokers.get_mut(&id) {
                    Some(broker) => broker.fenced = false,
                    None => return Err(DecodeError(format!("snapshot: broker {id} unknown"))),
                },
                MetadataRecord::BrokerShutdown { id, .. } => match image.brokers.get_mut(&id) {
                    Some(broker) => broker.shutting_down = true,
                    None => return Err(DecodeError(format!("snapshot: broker {id} unknown"))),
                },
                MetadataRecord::DeleteTopic { id } => {
                    image.deleted.insert(id);
                }
                MetadataRecord::CreateTopic {
                    name,
                    id,
                    partitions,
                    configs,
                } => {
                    let topic = TopicImage {
                        name: name.clone(),
                        id,
                        partitions,
                        configs: configs.into_iter().collect(),
                    };
                    if image.topics.insert(name, topic).is_some() {
                        return Err(DecodeError("snapshot: a topic twice".into()));
                    }
                }
                other => return Err(DecodeError(format!("snapshot holds {other:?}"))),
            }
        }
        if !r.0.is_empty() {
            return Err(DecodeError("bytes after the snapshot".into()));
        }
        image.applied = applied;
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_decodes_to_the_image_it_was_made_of() {
        let mut image = MetadataImage::default();
        let records = [
            MetadataRecord::RegisterBroker {
                id: 1,
                incarnation: [1; 16],
                endpoints: vec![],
                rack: None,
            },
            MetadataRecord::RegisterBroker {
                id: 2,
                incarnation: [2; 16],
                endpoints: vec![],
                rack: None,
            },
            MetadataRecord::UnfenceBroker { id: 2, epoch: 2 },
            MetadataRecord::CreateTopic {
                name: "t".into(),
                id: [9; 16],
                partitions: vec![PartitionState {
                    replicas: vec![2],
                    isr: vec![2],
                    leader: 2,
                    leader_epoch: 0,
                    partition_epoch: 0,
                }],
                configs: vec![],
            },
            MetadataRecord::TopicConfig {
                topic: [9; 16],
                key: "retention.ms".into(),
                value: Some("1000".into()),
            },
            MetadataRecord::BrokerShutdown { id: 1, epoch: 1 },
            MetadataRecord::CreateTopic {
                name: "gone".into(),
                id: [8; 16],
                partitions: vec![],
                configs: vec![],
            },
            MetadataRecord::DeleteTopic { id: [8; 16] },
        ];
        for (i, record) in records.iter().enumerate() {
            assert_eq!(image.apply(i as u64 + 1, record), Applied::Done);
        }
        assert!(image.brokers[&1].shutting_down && image.deleted.contains(&[8; 16]));
        assert_eq!(MetadataImage::decode(&image.encode()), Ok(image));
    }

    #[test]
    fn a_broker_in_controlled_shutdown_stays_fenced_until_it_registers_again() {
        let mut image = MetadataImage::default();
        let register = MetadataRecord::RegisterBroker {
            id: 1,
            incarnation: [1; 16],
            endpoints: vec![],
            rack: None,
        };
        assert_eq!(image.apply(1, &register), Applied::Done);
        let unfence = MetadataRecord::UnfenceBroker { id: 1, epoch: 1 };
        assert_eq!(image.apply(2, &unfence), Applied::Done);
        assert!(image.live_broker(1).is_some());
        let shutdown = MetadataRecord::BrokerShutdown { id: 1, epoch: 1 };
        assert_eq!(image.apply(3, &shutdown), Applied::Done);
        assert!(matches!(image.apply(4, &unfence), Applied::Rejected(_)));
        assert!(image.live_broker(1).is_none());
        assert_eq!(image.apply(5, &register), Applied::Done);
        let unfence = MetadataRecord::UnfenceBroker { id: 1, epoch: 5 };
        assert_eq!(image.apply(6, &unfence), Applied::Done);
        assert!(image.live_broker(1).is_some());
    }

    #[test]
    fn a_second_creation_of_a_name_is_rejected_and_changes_nothing() {
        let mut image = MetadataImage::default();
        let create = |id| MetadataRecord::CreateTopic {
            name: "t".into(),
            id: [id; 16],
            partitions: vec![],
            configs: vec![],
        };
        assert_eq!(image.apply(1, &create(1)), Applied::Done);
        let before = image.topics.clone();
        assert!(matches!(image.apply(2, &create(2)), Applied::Rejected(_)));
        assert_eq!(image.topics, before);
    }
}
