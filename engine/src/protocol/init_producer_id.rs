//! InitProducerId for idempotent producers: a new producer id at epoch 0, always (what Kafka
//! does for a producer without a transactional id, including when it asks to bump an epoch).
//! A transactional id is refused: keel has no transaction coordinator.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::frame::Frame;
use super::{decode, encode, errors, ProtocolError, Request};
use crate::broker::Broker;
use crate::io::{Clock, Disk, Rng};

pub fn handle<D: Disk, C: Clock, R: Rng>(
    broker: &Broker<D, C, R>,
    request: &Request,
) -> Result<Frame<D::File>, ProtocolError> {
    let body: InitProducerIdRequest = decode(request)?;
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if let Some(id) = &body.transactional_id {
        tracing::info!(transactional_id = %id.0.as_str(), "InitProducerId refused: transactions are not supported");
        response.error_code = errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    } else {
        match broker.producer_ids.next(&broker.disk) {
            Ok(id) => {
                response.producer_id = ProducerId(id);
                response.producer_epoch = 0;
            }
            Err(e) => {
                tracing::error!(error = %e, "no producer id could be recorded");
                response.error_code = errors::KAFKA_STORAGE_ERROR;
            }
        }
    }
    encode(request, &response)
}
