//! A small Kafka client for the simulator: enough of the protocol (Produce, Fetch, CreateTopics)
//! to drive a simulated keel broker over madsim's TCP, with kafka-protocol's codecs, as real
//! clients do. Every call has a deadline: madsim's TCP never times out by itself.

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
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

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
        Ok(if code == 0 || code == 36 {
            Ok(())
        } else {
            Err(code)
        })
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

    /// Fetches from `offset` without waiting.
    ///
    /// # Errors
    /// Transport errors, or a request-level error code.
    pub async fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: u64,
        bytes_max: i32,
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
        body.session_epoch = -1;
        body.topics = vec![fetch_topic];
        let response: FetchResponse = self.call(ApiKey::Fetch, FETCH_VERSION, &body).await?;
        if response.error_code != 0 {
            return Ok(Err(response.error_code));
        }
        let answer = response
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| io::Error::other("empty fetch response"))?;
        Ok(Ok(Fetched {
            error_code: answer.error_code,
            records: answer.records.clone().unwrap_or_default(),
            high_watermark: answer.high_watermark.max(0) as u64,
            log_start: answer.log_start_offset.max(0) as u64,
        }))
    }
}
