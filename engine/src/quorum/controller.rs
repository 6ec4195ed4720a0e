//! What the active controller (the Raft leader) decides from the image: which brokers are
//! fenced, who leads each partition, and where a new topic's replicas go. Every decision is a
//! metadata record the leader proposes; the functions here only compute them, so they are the
//! same on every node and tested without a quorum.
//!
//! A broker is alive while the leader hears from it within `broker.session.timeout.ms`. In
//! combined mode (every broker is a voter) its heartbeats are its voter's Raft messages: a
//! follower answers the leader's heartbeat every `HEARTBEAT_TICKS`.

use super::image::MetadataImage;
use super::records::{MetadataRecord, PartitionState};

/// The records that bring the image in line with which brokers are alive: fence the silent,
/// unfence the returned (unless in controlled shutdown), and give every partition whose
/// leader is fenced a leader from its ISR (clean election only), or none.
///
/// `may_fence` is false while a new leader has not yet had a whole session to hear from
/// everyone: it fences nobody before then.
pub fn reconcile(
    image: &MetadataImage,
    alive: impl Fn(i32) -> bool,
    may_fence: bool,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for broker in image.brokers.values() {
        let (id, epoch) = (broker.id, broker.epoch);
        if broker.fenced && !broker.shutting_down && alive(id) {
            records.push(MetadataRecord::UnfenceBroker { id, epoch });
        } else if !broker.fenced && !alive(id) && may_fence {
            records.push(MetadataRecord::FenceBroker { id, epoch });
        }
    }
    for topic in image.topics.values() {
        for (index, state) in topic.partitions.iter().enumerate() {
            if let Some(next) = elect(image, state) {
                records.push(MetadataRecord::PartitionChange {
                    topic: topic.id,
                    partition: index as u32,
                    state: next,
                });
            }
        }
    }
    records
}

/// The partition's next state when its leader is fenced or gone: the first live member of its
/// ISR leads, or nobody does. The ISR keeps its last member (as KIP-841 has it), so that the
/// replica holding every acknowledged record is the only one that may lead again.
///
/// A single-replica partition keeps its leader epoch when its replica returns: no other
/// replica could have written under a newer epoch, so its history has one epoch.
fn elect(image: &MetadataImage, state: &PartitionState) -> Option<PartitionState> {
    let leads = |id: i32| id >= 0 && image.live_broker(id).is_some();
    if leads(state.leader) {
        return None;
    }
    let leader = state.isr.iter().copied().find(|&r| leads(r)).unwrap_or(-1);
    if leader == state.leader {
        return None;
    }
    let bump = i32::from(state.replicas.len() > 1);
    Some(PartitionState {
        replicas: state.replicas.clone(),
        isr: state.isr.clone(),
        leader,
        leader_epoch: state.leader_epoch + bump,
        partition_epoch: state.partition_epoch + 1,
    })
}

/// Replicas for `partitions` new partitions, `replication_factor` each, round-robin over the
/// live brokers by id (as Kafka's StripedReplicaPlacer does without racks), starting from a
/// broker that moves with each topic created so that leaders spread.
///
/// # Errors
/// Kafka's message when fewer brokers are live than the replication factor.
pub fn assign(
    image: &MetadataImage,
    partitions: i32,
    replication_factor: i32,
) -> Result<Vec<PartitionState>, String> {
    let live: Vec<i32> = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| b.id)
        .collect();
    let factor = usize::try_from(replication_factor).unwrap_or(0);
    if factor == 0 || factor > live.len() {
        return Err(format!(
            "Unable to replicate the partition {replication_factor} time(s): The target \
             replication factor of {replication_factor} cannot be reached because only {} \
             broker(s) are registered.",
            live.len()
        ));
    }
    let start = image.topics.len() + image.deleted.len();
    Ok((0..partitions as usize)
        .map(|p| {
            let replicas: Vec<i32> = (0..factor)
                .map(|r| live[(start + p + r) % live.len()])
                .collect();
            PartitionState {
                leader: replicas[0],
                isr: replicas.clone(),
                replicas,
                leader_epoch: 0,
                partition_epoch: 0,
            }
        })
        .collect())
}

/// Checks a manual assignment (CreateTopics' `assignments`): every partition's replicas are
/// registered brokers, none twice, all partitions the same size.
///
/// # Errors
/// What is wrong, in Kafka's words where it has them.
pub fn manual(
    image: &MetadataImage,
    assignments: &[Vec<i32>],
) -> Result<Vec<PartitionState>, String> {
    let mut states = Vec::with_capacity(assignments.len());
    for (p, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() {
            return Err(format!(
                "The manual partition assignment for partition {p} is empty."
            ));
        }
        if replicas.len() != assignments[0].len() {
            return Err(format!(
                "The manual partition assignment for partition {p} has {} replicas, not {} as \
                 partition 0 has.",
                replicas.len(),
                assignments[0].len()
            ));
        }
        for (i, r) in replicas.iter().enumerate() {
            if replicas[..i].contains(r) {
                return Err(format!(
                    "The manual partition assignment for partition {p} names broker {r} twice."
                ));
            }
            if !image.brokers.contains_key(r) {
                return Err(format!(
                    "The manual partition assignment for partition {p} includes broker {r}, \
                     which is not registered."
                ));
            }
        }
        let leader = replicas
            .iter()
            .copied()
            .find(|&r| image.live_broker(r).is_some())
            .unwrap_or(-1);
        states.push(PartitionState {
            replicas: replicas.clone(),
            isr: replicas.clone(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        });
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::image::Applied;

    fn cluster(brokers: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        let mut index = 0;
        for &id in brokers {
            index += 1;
            let register = MetadataRecord::RegisterBroker {
                id,
                incarnation: [id as u8; 16],
                endpoints: vec![],
                rack: None,
            };
            assert_eq!(image.apply(index, &register), Applied::Done);
            let epoch = index;
            index += 1;
            let unfence = MetadataRecord::UnfenceBroker { id, epoch };
            assert_eq!(image.apply(index, &unfence), Applied::Done);
        }
        image
    }

    fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for record in records {
            let index = image.applied + 1;
            assert_eq!(image.apply(index, record), Applied::Done, "{record:?}");
        }
    }

    #[test]
    fn partitions_spread_round_robin_over_the_live_brokers() {
        let image = cluster(&[1, 2, 3]);
        let states = assign(&image, 6, 1).expect("assigned");
        let leaders: Vec<i32> = states.iter().map(|s| s.leader).collect();
        assert_eq!(leaders, [1, 2, 3, 1, 2, 3]);
        let states = assign(&image, 2, 3).expect("assigned");
        assert_eq!(states[1].replicas, [2, 3, 1]);
        assert!(assign(&image, 1, 4)
            .unwrap_err()
            .contains("only 3 broker(s)"));
    }

    #[test]
    fn a_silent_brokers_partitions_lose_their_leader_and_get_it_back_when_it_returns() {
        let mut image = cluster(&[1, 2]);
        let partitions = assign(&image, 2, 1).expect("assigned");
        let create = MetadataRecord::CreateTopic {
            name: "t".into(),
            id: [7; 16],
            partitions,
            configs: vec![],
        };
        apply_all(&mut image, &[create]);
        assert!(reconcile(&image, |_| true, true).is_empty());
        // Broker 2 falls silent: not fenced before the leader's first session has passed.
        assert!(reconcile(&image, |b| b == 1, false).is_empty());
        let fence = reconcile(&image, |b| b == 1, true);
        assert!(matches!(
            fence[..],
            [MetadataRecord::FenceBroker { id: 2, .. }]
        ));
        apply_all(&mut image, &fence);
        let moved = reconcile(&image, |b| b == 1, true);
        apply_all(&mut image, &moved);
        let p1 = &image.topics["t"].partitions[1];
        assert_eq!(
            (p1.leader, p1.isr.as_slice(), p1.leader_epoch),
            (-1, &[2][..], 0)
        );
        assert_eq!(image.topics["t"].partitions[0].leader, 1);
        assert!(reconcile(&image, |b| b == 1, true).is_empty());
        // It returns: unfenced, then leader again, under the same leader epoch.
        let back = reconcile(&image, |_| true, true);
        apply_all(&mut image, &back);
        let elect = reconcile(&image, |_| true, true);
        apply_all(&mut image, &elect);
        let p1 = &image.topics["t"].partitions[1];
        assert_eq!((p1.leader, p1.leader_epoch, p1.partition_epoch), (2, 0, 2));
        assert!(reconcile(&image, |_| true, true).is_empty());
    }

    #[test]
    fn a_broker_in_controlled_shutdown_is_not_unfenced_while_alive() {
        let mut image = cluster(&[1]);
        let epoch = image.brokers[&1].epoch;
        apply_all(
            &mut image,
            &[MetadataRecord::BrokerShutdown { id: 1, epoch }],
        );
        assert!(reconcile(&image, |_| true, true).is_empty());
    }

    #[test]
    fn a_manual_assignment_must_name_registered_brokers_once_each() {
        let image = cluster(&[1, 2]);
        assert_eq!(
            manual(&image, &[vec![2], vec![1]]).expect("valid")[0].leader,
            2
        );
        assert!(manual(&image, &[vec![3]])
            .unwrap_err()
            .contains("not registered"));
        assert!(manual(&image, &[vec![1, 1]]).unwrap_err().contains("twice"));
        assert!(manual(&image, &[vec![1], vec![]])
            .unwrap_err()
            .contains("empty"));
    }
}
