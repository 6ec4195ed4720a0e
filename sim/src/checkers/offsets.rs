//! Committed offsets: each group member commits ever larger offsets for its own partition and
//! reads its committed offset back whenever it (re)joins, as a consumer does on assignment, and
//! once more after the heal phase. Every read must be at least every earlier acknowledged commit
//! whose promise the fault history kept: the durability contract applied to
//! `__consumer_offsets` (no power loss between the commit and the read, or the run flushes
//! before every acknowledgement). After the heal, the offset must be readable.

use super::Violation;
use crate::history::{Event, TimedEvent};

pub fn check(events: &[TimedEvent], acks_durable: bool) -> Option<Violation> {
    // Acknowledged commits so far: (member, offset, epoch, at).
    let mut commits: Vec<(u32, i64, u64, u64)> = Vec::new();
    for e in events {
        match &e.event {
            Event::Committed {
                member,
                offset,
                epoch,
            } => commits.push((*member, *offset, *epoch, e.at_ms)),
            Event::CommittedRead {
                member,
                offset,
                epoch,
            } => {
                let promised = commits
                    .iter()
                    .filter(|c| c.0 == *member && (acks_durable || c.2 == *epoch))
                    .max_by_key(|c| c.1);
                let Some(&(_, committed, _, at_ms)) = promised else {
                    continue;
                };
                match offset {
                    None => {
                        return Some(Violation {
                            checker: "offsets",
                            message: format!(
                                "member {member}'s committed offset could not be read after the heal (commit of {committed} acknowledged at {at_ms} ms)"
                            ),
                        })
                    }
                    Some(found) if *found < committed => {
                        return Some(Violation {
                            checker: "offsets",
                            message: format!(
                                "member {member}'s commit of {committed} acknowledged at {at_ms} ms is lost: the broker reported {found} at {} ms (power epoch {epoch})",
                                e.at_ms
                            ),
                        })
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
    None
}
