//! Recovery never refuses to open: every start and restart of the node opened its log. (A panic
//! anywhere ends the run and is reported by the runner as a violation of this checker.)

use super::Violation;
use crate::history::{Event, TimedEvent};

pub fn check(events: &[TimedEvent]) -> Option<Violation> {
    events.iter().find_map(|e| match &e.event {
        Event::OpenFailed { error } => Some(Violation {
            checker: "recovery",
            message: format!("the log refused to open at {} ms: {error}", e.at_ms),
        }),
        _ => None,
    })
}
