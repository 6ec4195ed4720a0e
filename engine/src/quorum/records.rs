//! The records of the metadata log and their encoding. Each committed entry of the quorum's Raft
//! log holds one record; every node applies them in order to its `MetadataImage`
//! (`image.rs`). The encoding is keel's own: a version byte, a tag, then the fields in order
//! (integers big-endian, strings and lists with a u32 length). Decoding never panics: bytes
//! that do not parse are an error naming what was wrong.

use std::fmt;

/// The encoding's version, the first byte of every record.
const VERSION: u8 = 0;

/// The most elements a decoded list may claim (partitions, replicas, endpoints): far above
/// what any valid record holds, so a damaged length cannot make decoding allocate without bound.
const LIST_MAX: u32 = 1 << 20;

/// One of a broker's listeners: (name, host, port), as `BrokerRegistrationRequest` carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// A partition's state, as KRaft's PartitionRecord/PartitionChangeRecord carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// -1: none.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataRecord {
    /// A broker (re)registers: `incarnation` is fresh at every start, so a restarted broker
    /// replaces its earlier registration; the broker's epoch is the index of this entry.
    RegisterBroker {
        id: i32,
        incarnation: [u8; 16],
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    },
    /// The broker missed its session (or shut down): it leads nothing until it is unfenced.
    FenceBroker {
        id: i32,
        epoch: u64,
    },
    UnfenceBroker {
        id: i32,
        epoch: u64,
    },
    /// The broker is shutting down (controlled shutdown): fenced, and not unfenced again in
    /// this epoch; it registers anew when it starts again.
    BrokerShutdown {
        id: i32,
        epoch: u64,
    },
    CreateTopic {
        name: String,
        id: [u8; 16],
        partitions: Vec<PartitionState>,
        configs: Vec<(String, String)>,
    },
    /// A partition's leader, ISR or replicas changed (the whole new state).
    PartitionChange {
        topic: [u8; 16],
        partition: u32,
        state: PartitionState,
    },
    /// A topic config set (`Some`) or removed (`None`).
    TopicConfig {
        topic: [u8; 16],
        key: String,
        value: Option<String>,
    },
    DeleteTopic {
        id: [u8; 16],
    },
    /// Nothing: what a new leader proposes first to commit its term (and what tests write).
    Noop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "metadata record: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

mod tag {
    pub const REGISTER_BROKER: u8 = 1;
    pub const FENCE_BROKER: u8 = 2;
    pub const UNFENCE_BROKER: u8 = 3;
    pub const CREATE_TOPIC: u8 = 4;
    pub const PARTITION_CHANGE: u8 = 5;
    pub const TOPIC_CONFIG: u8 = 6;
    pub const DELETE_TOPIC: u8 = 7;
    pub const NOOP: u8 = 8;
    pub const BROKER_SHUTDOWN: u8 = 9;
}

impl MetadataRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(vec![VERSION]);
        match self {
            MetadataRecord::RegisterBroker {
                id,
                incarnation,
                endpoints,
                rack,
            } => {
                w.u8(tag::REGISTER_BROKER);
                w.i32(*id);
                w.bytes16(incarnation);
                w.u32(endpoints.len() as u32);
                for e in endpoints {
                    w.string(&e.name);
                    w.string(&e.host);
                    w.u16(e.port);
                }
                w.optional_string(rack.as_deref());
            }
            MetadataRecord::FenceBroker { id, epoch } => {
                w.u8(tag::FENCE_BROKER);
                w.i32(*id);
                w.u64(*epoch);
            }
            MetadataRecord::UnfenceBroker { id, epoch } => {
                w.u8(tag::UNFENCE_BROKER);
                w.i32(*id);
                w.u64(*epoch);
            }
            MetadataRecord::BrokerShutdown { id, epoch } => {
                w.u8(tag::BROKER_SHUTDOWN);
                w.i32(*id);
                w.u64(*epoch);
            }
            MetadataRecord::CreateTopic {
                name,
                id,
                partitions,
                configs,
            } => {
                w.u8(tag::CREATE_TOPIC);
                w.string(name);
                w.bytes16(id);
                w.u32(partitions.len() as u32);
                for p in partitions {
                    w.partition(p);
                }
                w.u32(configs.len() as u32);
                for (k, v) in configs {
                    w.string(k);
                    w.string(v);
                }
            }
            MetadataRecord::PartitionChange {
                topic,
                partition,
                state,
            } => {
                w.u8(tag::PARTITION_CHANGE);
                w.bytes16(topic);
                w.u32(*partition);
                w.partition(state);
            }
            MetadataRecord::TopicConfig { topic, key, value } => {
                w.u8(tag::TOPIC_CONFIG);
                w.bytes16(topic);
                w.string(key);
                w.optional_string(value.as_deref());
            }
            MetadataRecord::DeleteTopic { id } => {
                w.u8(tag::DELETE_TOPIC);
                w.bytes16(id);
            }
            MetadataRecord::Noop => w.u8(tag::NOOP),
        }
        w.0
    }

    /// # Errors
    /// Bytes that are not one whole record of this version.
    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, DecodeError> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError(format!("unknown version {version}")));
        }
        let record = match r.u8()? {
            tag::REGISTER_BROKER => {
                let id = r.i32()?;
                let incarnation = r.bytes16()?;
                let count = r.count()?;
                let mut endpoints = Vec::new();
                for _ in 0..count {
                    endpoints.push(Endpoint {
                        name: r.string()?,
                        host: r.string()?,
                        port: r.u16()?,
                    });
                }
                MetadataRecord::RegisterBroker {
                    id,
                    incarnation,
                    endpoints,
                    rack: r.optional_string()?,
                }
            }
            tag::FENCE_BROKER => MetadataRecord::FenceBroker {
                id: r.i32()?,
                epoch: r.u64()?,
            },
            tag::UNFENCE_BROKER => MetadataRecord::UnfenceBroker {
                id: r.i32()?,
                epoch: r.u64()?,
            },
            tag::BROKER_SHUTDOWN => MetadataRecord::BrokerShutdown {
                id: r.i32()?,
                epoch: r.u64()?,
            },
            tag::CREATE_TOPIC => {
                let name = r.string()?;
                let id = r.bytes16()?;
                let count = r.count()?;
                let mut partitions = Vec::new();
                for _ in 0..count {
                    partitions.push(r.partition()?);
                }
                let count = r.count()?;
                let mut configs = Vec::new();
                for _ in 0..count {
                    configs.push((r.string()?, r.string()?));
                }
                MetadataRecord::CreateTopic {
                    name,
                    id,
                    partitions,
                    configs,
                }
            }
            tag::PARTITION_CHANGE => MetadataRecord::PartitionChange {
                topic: r.bytes16()?,
                partition: r.u32()?,
                state: r.partition()?,
            },
            tag::TOPIC_CONFIG => MetadataRecord::TopicConfig {
                topic: r.bytes16()?,
                key: r.string()?,
                value: r.optional_string()?,
            },
            tag::DELETE_TOPIC => MetadataRecord::DeleteTopic { id: r.bytes16()? },
            tag::NOOP => MetadataRecord::Noop,
            other => return Err(DecodeError(format!("unknown record type {other}"))),
        };
        if !r.0.is_empty() {
            return Err(DecodeError(format!("{} bytes after the record", r.0.len())));
        }
        Ok(record)
    }
}

pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn bytes16(&mut self, v: &[u8; 16]) {
        self.0.extend_from_slice(v);
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    pub fn string(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    pub fn optional_string(&mut self, v: Option<&str>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.string(v);
            }
        }
    }
    pub fn i32s(&mut self, v: &[i32]) {
        self.u32(v.len() as u32);
        for &x in v {
            self.i32(x);
        }
    }
    fn partition(&mut self, p: &PartitionState) {
        self.i32s(&p.replicas);
        self.i32s(&p.isr);
        self.i32(p.leader);
        self.i32(p.leader_epoch);
        self.i32(p.partition_epoch);
    }
}

pub(crate) struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError(format!(
                "{n} bytes wanted, {} left",
                self.0.len()
            )));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
    pub fn bytes16(&mut self) -> Result<[u8; 16], DecodeError> {
        Ok(self.take(16)?.try_into().expect("16"))
    }
    /// A list's length, bounded by `LIST_MAX` and by the bytes left (each element takes one).
    pub fn count(&mut self) -> Result<u32, DecodeError> {
        let n = self.u32()?;
        if n > LIST_MAX || n as usize > self.0.len() {
            return Err(DecodeError(format!("a list of {n} elements")));
        }
        Ok(n)
    }
    pub fn bytes(&mut self) -> Result<&[u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn string(&mut self) -> Result<String, DecodeError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("a string not UTF-8".into()))
    }
    pub fn optional_string(&mut self) -> Result<Option<String>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            other => Err(DecodeError(format!("option marker {other}"))),
        }
    }
    pub fn i32s(&mut self) -> Result<Vec<i32>, DecodeError> {
        let n = self.count()?;
        (0..n).map(|_| self.i32()).collect()
    }
    fn partition(&mut self) -> Result<PartitionState, DecodeError> {
        Ok(PartitionState {
            replicas: self.i32s()?,
            isr: self.i32s()?,
            leader: self.i32()?,
            leader_epoch: self.i32()?,
            partition_epoch: self.i32()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<MetadataRecord> {
        let state = PartitionState {
            replicas: vec![1, 2, 3],
            isr: vec![1, 3],
            leader: 3,
            leader_epoch: 7,
            partition_epoch: 9,
        };
        vec![
            MetadataRecord::RegisterBroker {
                id: 2,
                incarnation: [7; 16],
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                }],
                rack: Some("r1".into()),
            },
            MetadataRecord::FenceBroker { id: 2, epoch: 11 },
            MetadataRecord::UnfenceBroker { id: 2, epoch: 11 },
            MetadataRecord::CreateTopic {
                name: "orders".into(),
                id: [1; 16],
                partitions: vec![state.clone(), state.clone()],
                configs: vec![("cleanup.policy".into(), "compact".into())],
            },
            MetadataRecord::PartitionChange {
                topic: [1; 16],
                partition: 1,
                state,
            },
            MetadataRecord::TopicConfig {
                topic: [1; 16],
                key: "retention.ms".into(),
                value: None,
            },
            MetadataRecord::DeleteTopic { id: [1; 16] },
            MetadataRecord::Noop,
        ]
    }

    #[test]
    fn every_record_decodes_to_itself() {
        for record in samples() {
            assert_eq!(MetadataRecord::decode(&record.encode()), Ok(record));
        }
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_an_error_or_another_record_never_a_panic() {
        for record in samples() {
            let bytes = record.encode();
            for len in 0..bytes.len() {
                assert!(
                    MetadataRecord::decode(&bytes[..len]).is_err(),
                    "{record:?} cut at {len}"
                );
            }
            for i in 0..bytes.len() {
                let mut flipped = bytes.clone();
                flipped[i] ^= 0xff;
                let _ = MetadataRecord::decode(&flipped);
            }
        }
    }
}
