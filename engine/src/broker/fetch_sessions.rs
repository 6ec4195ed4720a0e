//! Incremental fetch sessions (KIP-227). A client that asks for a session (session id 0, epoch 0)
//! gets an id; its later requests (that id, the next epoch) name only the partitions whose fetch
//! offsets changed, and the broker answers only the partitions with something new: records, an
//! error, or a moved high watermark or log start. The broker remembers each session's partitions
//! with their last fetch offsets and the watermarks it last reported.
//!
//! Sessions live in memory (a restart forgets them; clients then get FETCH_SESSION_ID_NOT_FOUND
//! and start a new one), at most `SESSIONS_MAX`, the least recently used evicted first.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Kafka's max.incremental.fetch.session.cache.slots.
pub const SESSIONS_MAX: usize = 1000;
pub use crate::error_codes::{FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH};

/// One partition of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPartition {
    pub topic: String,
    pub topic_id: [u8; 16],
    pub partition: i32,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// What the last response said of it (-2: never reported, so the next response includes it).
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

struct Session {
    next_epoch: i32,
    partitions: Vec<SessionPartition>,
    last_used_ms: i64,
}

#[derive(Default)]
pub struct FetchSessions {
    sessions: Mutex<BTreeMap<i32, Session>>,
}

fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl FetchSessions {
    /// Starts a session with `partitions` (already reported in the response being sent) and
    /// returns its id, drawn from `random` (non-zero, unused).
    pub fn create(
        &self,
        partitions: Vec<SessionPartition>,
        now_ms: i64,
        mut random: impl FnMut() -> u64,
    ) -> i32 {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= SESSIONS_MAX {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used_ms)
                .map(|(&id, _)| id)
            {
                sessions.remove(&oldest);
            }
        }
        let id = loop {
            let id = (random() & 0x7fff_ffff) as i32;
            if id != 0 && !sessions.contains_key(&id) {
                break id;
            }
        };
        sessions.insert(
            id,
            Session {
                next_epoch: 1,
                partitions,
                last_used_ms: now_ms,
            },
        );
        id
    }

    pub fn close(&self, id: i32) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Applies an incremental request at `epoch`: `changed` partitions are added or get their new
    /// fetch offset and size, `forgotten` ones (topic, partition) leave. Returns every partition
    /// of the session to fetch, or the error code.
    pub fn update(
        &self,
        id: i32,
        epoch: i32,
        changed: Vec<SessionPartition>,
        forgotten: &[(String, [u8; 16], i32)],
        now_ms: i64,
    ) -> Result<Vec<SessionPartition>, i16> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let session = sessions.get_mut(&id).ok_or(FETCH_SESSION_ID_NOT_FOUND)?;
        if epoch != session.next_epoch {
            return Err(INVALID_FETCH_SESSION_EPOCH);
        }
        session.next_epoch = next_epoch(epoch);
        session.last_used_ms = now_ms;
        let same = |p: &SessionPartition, topic: &str, topic_id: &[u8; 16], partition: i32| {
            p.partition == partition && (p.topic == topic || p.topic_id == *topic_id)
        };
        session.partitions.retain(|p| {
            !forgotten
                .iter()
                .any(|(topic, id, partition)| same(p, topic, id, *partition))
        });
        for update in changed {
            match session
                .partitions
                .iter_mut()
                .find(|p| same(p, &update.topic, &update.topic_id, update.partition))
            {
                Some(known) => {
                    known.fetch_offset = update.fetch_offset;
                    known.max_bytes = update.max_bytes;
                }
                None => session.partitions.push(update),
            }
        }
        Ok(session.partitions.clone())
    }

    /// Records what a response reported, so the next one leaves out what did not change.
    /// `reported`: (topic, topic id, partition, high watermark, log start).
    pub fn reported(&self, id: i32, reported: &[(String, [u8; 16], i32, i64, i64)]) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(session) = sessions.get_mut(&id) else {
            return;
        };
        for (topic, topic_id, partition, high_watermark, log_start) in reported {
            if let Some(p) = session.partitions.iter_mut().find(|p| {
                p.partition == *partition && (p.topic == *topic || p.topic_id == *topic_id)
            }) {
                p.high_watermark = *high_watermark;
                p.log_start_offset = *log_start;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
