//! What the process's limit on open files (RLIMIT_NOFILE) lets the broker promise.
//!
//! Every open partition holds descriptors for as long as it is open: three per segment (`.log`,
//! `.index`, `.timeindex`; the indexes stay open beside their mappings) and one for its
//! checkpoint, so a new partition takes four. Every connection takes one. A creation that would
//! run out of descriptors halfway fails with EMFILE after thousands of files (a 10,000-partition
//! creation failed at partition 4,997), and the connections it starved fail their accepts. So
//! keel sizes its promises against the limit up front:
//! - max.connections is lowered, with a warning, to what the limit holds beside the partitions
//!   open at start and `RESERVED` descriptors for everything else;
//! - a creation (CreateTopics, CreatePartitions, auto-creation) whose partitions need more than
//!   what remains, after open partitions, max.connections and `RESERVED`, is refused before any
//!   file is made.
//!
//! Segments rolled later add three descriptors each; that growth is not promised here, which is
//! what `RESERVED` and the room left by creations absorb.
//!
//! The limit comes in through `BrokerConfig::open_files_max`, set by `main` from
//! `io::os::raise_open_files_limit`, so tests and the simulator can make it small.

/// Descriptors a partition holds for each of its segments.
pub const PER_SEGMENT: u64 = 3;

/// Descriptors a new partition holds: one segment and its checkpoint file.
pub const PER_NEW_PARTITION: u64 = PER_SEGMENT + 1;

/// Descriptors kept for what is neither a partition nor a client connection: standard streams,
/// listeners, the runtime's own, temporary files (descriptions, producer ids), a compaction
/// pass's cleaned segment, segments rolled since start, metrics scrapes.
pub const RESERVED: u64 = 64;

/// The descriptors a partition with `segments` segments holds.
pub fn partition_descriptors(segments: usize) -> u64 {
    PER_SEGMENT * segments as u64 + 1
}

/// The connections a limit of `open_files_max` holds beside `partitions_held` descriptors of
/// open partitions: `connections_max` if it fits, else what is left (`None` when it fits).
pub fn connections_lowered(
    open_files_max: u64,
    partitions_held: u64,
    connections_max: usize,
) -> Option<usize> {
    let left = open_files_max.saturating_sub(RESERVED + partitions_held);
    (connections_max as u64 > left).then_some(left as usize)
}

/// Whether `new_partitions` more partitions fit beside `partitions_held` descriptors of open
/// partitions (creations under way included) and `connections_max` connections; if not, the
/// message a client is answered with.
pub fn check_new_partitions(
    open_files_max: u64,
    partitions_held: u64,
    connections_max: usize,
    new_partitions: u64,
) -> Result<(), String> {
    let needed = new_partitions * PER_NEW_PARTITION;
    let used = RESERVED + partitions_held + connections_max as u64;
    let left = open_files_max.saturating_sub(used);
    if needed <= left {
        return Ok(());
    }
    Err(format!(
        "{new_partitions} new partitions need {needed} open files ({PER_NEW_PARTITION} each), \
         but the broker's limit of {open_files_max} open files leaves {left}: \
         {partitions_held} are held by open partitions, {connections_max} kept for \
         max.connections and {RESERVED} for the broker itself. Ask for fewer partitions, or \
         have the operator raise the limit (ulimit -n, LimitNOFILE) or lower max.connections"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_lowered_only_past_what_the_limit_holds() {
        // (limit, partition descriptors, max.connections, lowered to)
        let cases = [
            (1_048_576, 400, 10_000, None),
            (10_464, 400, 10_000, None),
            (10_463, 400, 10_000, Some(9_999)),
            (4_096, 400, 10_000, Some(3_632)),
            (100, 400, 10_000, Some(0)),
        ];
        for (limit, held, connections, lowered) in cases {
            let got = connections_lowered(limit, held, connections);
            assert_eq!(got, lowered, "{limit} {held} {connections}");
        }
    }

    #[test]
    fn new_partitions_fit_in_what_the_limit_leaves() {
        // 1,000 open files: 64 reserved, 100 held, 200 connections leave 636, or 159 partitions.
        assert_eq!(check_new_partitions(1_000, 100, 200, 159), Ok(()));
        let refused = check_new_partitions(1_000, 100, 200, 160).unwrap_err();
        for part in ["160 new partitions need 640", "limit of 1000", "leaves 636"] {
            assert!(refused.contains(part), "{part}: {refused}");
        }
        assert!(
            check_new_partitions(100, 100, 200, 1).is_err(),
            "nothing left"
        );
        assert_eq!(partition_descriptors(1), PER_NEW_PARTITION);
    }
}
