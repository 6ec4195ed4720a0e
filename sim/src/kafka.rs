//! A small Kafka client for the simulator: enough of the protocol (Produce, Fetch, CreateTopics,
//! InitProducerId, and the group APIs) to drive a simulated keel broker over madsim's TCP, with
//! kafka-protocol's codecs, as real clients do. Every call has a deadline: madsim's TCP never
//! times out by itself.

use std::io;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request not answered within this much simulated time is abandoned with its connection.
pub const CALL_TIMEOUT_MS: u64 = 2_000;
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 5;
const INIT_PRODUCER_ID_VERSION: i16 = 4;
const JOIN_GROUP_VERSION: i16 = 7;
const SYNC_GROUP_VERSION: i16 = 5;
const HEARTBEAT_VERSION: i16 = 4;
const OFFSET_COMMIT_VERSION: i16 = 8;
const OFFSET_FETCH_VERSION: i16 = 8;
/// The consumer protocol the simulated group members name.
const PROTOCOL_TYPE: &str = "consumer";
const PROTOCOL_NAME: &str = "range";

pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

/// A partition-level answer: the Kafka error code when not 0.
pub type Answer<T> = Result<T, i16>;

/// A fetch's answer: the partition's error code, its records and bounds (sent with errors too).
pub struct Fetched {
    pub error_code: i16,
    pub records: Bytes,
    pub high_watermark: u64,
    pub log_start: u64,
    /// The fetch session the answer belongs to (0: none).
    pub session_id: i32,
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// A JoinGroup's outcome: (member id, generation, leader) or the error code with the member id
/// the broker gave (MEMBER_ID_REQUIRED carries one).
pub type Joined = Result<(String, i32, String), (i16, String)>;

impl Client {
    /// Connects within the call timeout.
    ///
    /// # Errors
    /// Connection errors and timeouts.
    pub async fn connect(address: &str) -> io::Result<Client> {
        let timeout = Duration::from_millis(CALL_TIMEOUT_MS);
        let stream = madsim::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        Ok(Client {
            stream,
            correlation_id: 0,
        })
    }

    async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Req,
    ) -> io::Result<Resp> {
        let timeout = Duration::from_millis(CALL_TIMEOUT_MS);
        madsim::time::timeout(timeout, self.exchange(key, version, body))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    async fn exchange<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Req,
    ) -> io::Result<Resp> {
        self.correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str("keel-sim"));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header
            .encode(&mut frame, key.request_header_version(version))
            .and_then(|()| body.encode(&mut frame, version))
            .map_err(io::Error::other)?;
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&frame).await?;
        self.stream.flush().await?;
        let size = self.stream.read_i32().await?;
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= RESPONSE_BYTES_MAX)
            .ok_or_else(|| io::Error::other(format!("response size {size}")))?;
        let mut response = BytesMut::zeroed(size);
        self.stream.read_exact(&mut response).await?;
        let mut response = response.freeze();
        let header = ResponseHeader::decode(&mut response, key.response_header_version(version))
            .map_err(io::Error::other)?;
        if header.correlation_id != self.correlation_id {
            return Err(io::Error::other("correlation id mismatch"));
        }
        let decoded = Resp::decode(&mut response, version).map_err(io::Error::other)?;
        if response.has_remaining() {
            return Err(io::Error::other("trailing bytes after a response"));
        }
        Ok(decoded)
    }

    /// Creates a topic with `configs` (Kafka names); an existing topic is fine.
    ///
    /// # Errors
    /// Transport errors, or the topic error code.
    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, String)],
    ) -> io::Result<Answer<()>> {
        let mut topic = CreatableTopic::default();
        topic.name = topic_name(name);
        topic.num_partitions = partitions;
        topic.replication_factor = 1;
        topic.configs = configs
            .iter()
            .map(|(name, value)| {
                let mut config = CreatableTopicConfig::default();
                config.name = StrBytes::from_string((*name).to_owned());
                config.value = Some(StrBytes::from_string(value.clone()));
                config
            })
            .collect();
        let mut body = CreateTopicsRequest::default();
        body.topics = vec![topic];
        body.timeout_ms = CALL_TIMEOUT_MS as i32;
        let response: CreateTopicsResponse = self
            .call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &body)
            .await?;
        let code = response.topics.first().map_or(-1, |t| t.error_code);
        Ok(
            if code == 0 || code == keel::error_codes::TOPIC_ALREADY_EXISTS {
                Ok(())
            } else {
                Err(code)
            },
        )
    }

    /// Produces one batch with acks=1; the base offset assigned.
    ///
    /// # Errors
    /// Transport errors, or the partition error code.
    pub async fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
    ) -> io::Result<Answer<u64>> {
        let mut data = PartitionProduceData::default();
        data.index = partition;
        data.records = Some(batch);
        let mut topic_data = TopicProduceData::default();
        topic_data.name = topic_name(topic);
        topic_data.partition_data = vec![data];
        let mut body = ProduceRequest::default();
        body.acks = 1;
        body.timeout_ms = CALL_TIMEOUT_MS as i32;
        body.topic_data = vec![topic_data];
        let response: ProduceResponse = self.call(ApiKey::Produce, PRODUCE_VERSION, &body).await?;
        let answer = response
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or_else(|| io::Error::other("empty produce response"))?;
        Ok(match answer.error_code {
            0 => Ok(answer.base_offset as u64),
            code => Err(code),
        })
    }

    /// Fetches from `offset` without waiting, in fetch session `session` (id, epoch): (0, -1) for
    /// none, (0, 0) to start one. An incremental answer that leaves the partition out (nothing
    /// new) comes back as no records.
    ///
    /// # Errors
    /// Transport errors, or a request-level error code (a session refused, say).
    pub async fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: u64,
        bytes_max: i32,
        session: (i32, i32),
    ) -> io::Result<Answer<Fetched>> {
        let mut wanted = FetchPartition::default();
        wanted.partition = partition;
        wanted.fetch_offset = offset as i64;
        wanted.partition_max_bytes = bytes_max;
        let mut fetch_topic = FetchTopic::default();
        fetch_topic.topic = topic_name(topic);
        fetch_topic.partitions = vec![wanted];
        let mut body = FetchRequest::default();
        body.replica_id = BrokerId(-1);
        body.max_wait_ms = 0;
        body.max_bytes = bytes_max;
        body.session_id = session.0;
        body.session_epoch = session.1;
        body.topics = vec![fetch_topic];
        let response: FetchResponse = self.call(ApiKey::Fetch, FETCH_VERSION, &body).await?;
        if response.error_code != 0 {
            return Ok(Err(response.error_code));
        }
        let answer = response
            .responses
            .first()
            .and_then(|t| t.partitions.first());
        let Some(answer) = answer else {
            if session.0 == 0 {
                return Err(io::Error::other("empty fetch response"));
            }
            return Ok(Ok(Fetched {
                error_code: 0,
                records: Bytes::new(),
                high_watermark: offset,
                log_start: 0,
                session_id: response.session_id,
            }));
        };
        Ok(Ok(Fetched {
            error_code: answer.error_code,
            records: answer.records.clone().unwrap_or_default(),
            high_watermark: answer.high_watermark.max(0) as u64,
            log_start: answer.log_start_offset.max(0) as u64,
            session_id: response.session_id,
        }))
    }

    /// A new idempotent producer id (epoch 0).
    ///
    /// # Errors
    /// Transport errors, or the error code.
    pub async fn init_producer_id(&mut self) -> io::Result<Answer<i64>> {
        let mut body = InitProducerIdRequest::default();
        body.transactional_id = None;
        body.transaction_timeout_ms = 60_000;
        body.producer_id = ProducerId(-1);
        body.producer_epoch = -1;
        let response: InitProducerIdResponse = self
            .call(ApiKey::InitProducerId, INIT_PRODUCER_ID_VERSION, &body)
            .await?;
        Ok(match response.error_code {
            0 => Ok(response.producer_id.0),
            code => Err(code),
        })
    }

    /// Joins `group` (one attempt; MEMBER_ID_REQUIRED comes back as an error with the id).
    ///
    /// # Errors
    /// Transport errors (a join may wait for the whole join phase: the call timeout applies).
    pub async fn join_group(
        &mut self,
        group: &str,
        member_id: &str,
        session_timeout_ms: i32,
    ) -> io::Result<Joined> {
        let mut protocol = join_group_request::JoinGroupRequestProtocol::default();
        protocol.name = text(PROTOCOL_NAME);
        protocol.metadata = Bytes::from_static(b"sim");
        let mut body = JoinGroupRequest::default();
        body.group_id = GroupId(text(group));
        body.session_timeout_ms = session_timeout_ms;
        body.rebalance_timeout_ms = session_timeout_ms;
        body.member_id = text(member_id);
        body.protocol_type = text(PROTOCOL_TYPE);
        body.protocols = vec![protocol];
        let response: JoinGroupResponse = self
            .call(ApiKey::JoinGroup, JOIN_GROUP_VERSION, &body)
            .await?;
        Ok(match response.error_code {
            0 => Ok((
                response.member_id.to_string(),
                response.generation_id,
                response.leader.to_string(),
            )),
            code => Err((code, response.member_id.to_string())),
        })
    }

    /// SyncGroup; the leader hands every member in `members` an assignment naming it.
    ///
    /// # Errors
    /// Transport errors, or the error code.
    pub async fn sync_group(
        &mut self,
        group: &str,
        member_id: &str,
        generation: i32,
        members: &[String],
    ) -> io::Result<Answer<Bytes>> {
        let mut body = SyncGroupRequest::default();
        body.group_id = GroupId(text(group));
        body.generation_id = generation;
        body.member_id = text(member_id);
        body.protocol_type = Some(text(PROTOCOL_TYPE));
        body.protocol_name = Some(text(PROTOCOL_NAME));
        body.assignments = members
            .iter()
            .map(|m| {
                let mut assignment = sync_group_request::SyncGroupRequestAssignment::default();
                assignment.member_id = text(m);
                assignment.assignment = Bytes::from(m.clone().into_bytes());
                assignment
            })
            .collect();
        let response: SyncGroupResponse = self
            .call(ApiKey::SyncGroup, SYNC_GROUP_VERSION, &body)
            .await?;
        Ok(match response.error_code {
            0 => Ok(response.assignment),
            code => Err(code),
        })
    }

    /// Heartbeat: the error code (0 when the member is in good standing).
    ///
    /// # Errors
    /// Transport errors.
    pub async fn heartbeat(
        &mut self,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> io::Result<i16> {
        let mut body = HeartbeatRequest::default();
        body.group_id = GroupId(text(group));
        body.generation_id = generation;
        body.member_id = text(member_id);
        let response: HeartbeatResponse = self
            .call(ApiKey::Heartbeat, HEARTBEAT_VERSION, &body)
            .await?;
        Ok(response.error_code)
    }

    /// Commits `offset` for (`topic`, `partition`) in `group`; generation -1 and no member id
    /// for a standalone commit.
    ///
    /// # Errors
    /// Transport errors, or the partition's error code.
    pub async fn commit(
        &mut self,
        group: &str,
        member_id: &str,
        generation: i32,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> io::Result<Answer<()>> {
        let index = partition;
        let mut partition = offset_commit_request::OffsetCommitRequestPartition::default();
        partition.partition_index = index;
        partition.committed_offset = offset;
        partition.committed_leader_epoch = -1;
        partition.committed_metadata = Some(text(""));
        let mut commit_topic = offset_commit_request::OffsetCommitRequestTopic::default();
        commit_topic.name = topic_name(topic);
        commit_topic.partitions = vec![partition];
        let mut body = OffsetCommitRequest::default();
        body.group_id = GroupId(text(group));
        body.generation_id_or_member_epoch = generation;
        body.member_id = text(member_id);
        body.topics = vec![commit_topic];
        let response: OffsetCommitResponse = self
            .call(ApiKey::OffsetCommit, OFFSET_COMMIT_VERSION, &body)
            .await?;
        let code = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .map_or(-1, |p| p.error_code);
        Ok(if code == 0 { Ok(()) } else { Err(code) })
    }

    /// The committed offset of (`topic`, `partition`) in `group`, -1 when none.
    ///
    /// # Errors
    /// Transport errors, or the group's or partition's error code.
    pub async fn committed(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> io::Result<Answer<i64>> {
        let mut asked_topic = offset_fetch_request::OffsetFetchRequestTopics::default();
        asked_topic.name = topic_name(topic);
        asked_topic.partition_indexes = vec![partition];
        let mut asked = offset_fetch_request::OffsetFetchRequestGroup::default();
        asked.group_id = GroupId(text(group));
        asked.topics = Some(vec![asked_topic]);
        let mut body = OffsetFetchRequest::default();
        body.groups = vec![asked];
        let response: OffsetFetchResponse = self
            .call(ApiKey::OffsetFetch, OFFSET_FETCH_VERSION, &body)
            .await?;
        let Some(group) = response.groups.first() else {
            return Err(io::Error::other("empty OffsetFetch response"));
        };
        if group.error_code != 0 {
            return Ok(Err(group.error_code));
        }
        let partition = group.topics.first().and_then(|t| t.partitions.first());
        Ok(match partition {
            Some(p) if p.error_code != 0 => Err(p.error_code),
            Some(p) => Ok(p.committed_offset),
            None => Ok(-1),
        })
    }
}
