//! Liveness: once faults stop (the heal phase), the node acknowledges a write again within
//! `HEALED_ACK_MS_MAX` of simulated time.

use super::Violation;
use crate::history::{Event, TimedEvent};

pub const HEALED_ACK_MS_MAX: u64 = 10_000;

pub fn check(events: &[TimedEvent]) -> Option<Violation> {
    let healed_ms = events
        .iter()
        .find_map(|e| matches!(e.event, Event::Healed).then_some(e.at_ms))?;
    let acked = events.iter().any(|e| {
        matches!(e.event, Event::Acked { .. })
            && e.at_ms >= healed_ms
            && e.at_ms <= healed_ms + HEALED_ACK_MS_MAX
    });
    (!acked).then(|| Violation {
        checker: "liveness",
        message: format!(
            "no write was acknowledged within {HEALED_ACK_MS_MAX} ms after the heal at {healed_ms} ms"
        ),
    })
}
