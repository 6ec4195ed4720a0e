//! ApiVersions: the first request of every client. It advertises exactly the APIs and versions
//! keel implements. A version newer than keel knows is answered the KIP-511 way: a v0 body with
//! UNSUPPORTED_VERSION and the supported ranges, so the client retries with one it can use.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use super::frame::Frame;
use super::{encode, encode_at, errors, supported_range, ProtocolError, Request, SUPPORTED};

fn response(error_code: i16) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error_code;
    response.api_keys = SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            let mut version = ApiVersion::default();
            version.api_key = key as i16;
            version.min_version = min;
            version.max_version = max;
            version
        })
        .collect();
    response
}

pub fn handle<F>(request: &Request) -> Result<Frame<F>, ProtocolError> {
    let (_, max) = supported_range(ApiKey::ApiVersions).expect("ApiVersions is supported");
    if request.version > max || request.version < 0 {
        // The body of a newer version cannot be parsed; it does not matter: the answer is v0.
        return encode_at(request, 0, &response(errors::UNSUPPORTED_VERSION));
    }
    // The body (client software name/version) is informational; a malformed one is still an
    // error, as for every request.
    let _: kafka_protocol::messages::ApiVersionsRequest = super::decode(request)?;
    encode(request, &response(errors::NONE))
}
