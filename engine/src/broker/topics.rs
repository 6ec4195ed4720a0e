//! The topics this broker hosts: creation, deletion, auto-creation and their durable record.
//!
//! Each topic is described by `DATA/topics/NAME.properties` (its id, partition count and config
//! overrides, Kafka property syntax), written to a temporary file (`NAME.tmp`), synced, renamed
//! and the directory synced, so a crash leaves the old description or the new one. Partitions
//! live in `DATA/NAME-P/`, Kafka's layout. A topic exists once its description does: creation
//! writes the partition directories first, deletion removes the description first.
//!
//! Every name Kafka accepts (up to 249 bytes) fits in a file name (255 bytes): Kafka chose 249
//! so that `NAME-P` fits. `NAME.properties` does not fit above 244 bytes, so such a topic is
//! described by `NAME.props` instead (255 bytes at most); shorter names keep the file name they
//! always had.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::config::{topic_log_config, TopicOverrides};
use crate::io::{write_atomically, Disk, File, FILE_NAME_BYTES_MAX};
use crate::log::{Log, LogConfig};
use crate::partition::Partition;

pub const TOPICS_DIR: &str = "topics";
const DESCRIPTION_SUFFIX: &str = ".properties";
/// The description's suffix for names too long for `DESCRIPTION_SUFFIX`.
const LONG_NAME_DESCRIPTION_SUFFIX: &str = ".props";
/// The suffix `write_atomically` gives the description's temporary file, in place of either.
const TEMPORARY_SUFFIX: &str = ".tmp";
/// Kafka's limit on topic names.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Partitions per topic accepted by CreateTopics and auto-creation.
pub const PARTITIONS_MAX: i32 = 10_000;

// Every file name derived from a topic name fits in a directory entry.
const _: () = {
    let partition_digits_max = 4; // the last partition is PARTITIONS_MAX - 1
    assert!(PARTITIONS_MAX <= 10_000);
    assert!(TOPIC_NAME_BYTES_MAX + "-".len() + partition_digits_max <= FILE_NAME_BYTES_MAX);
    assert!(TOPIC_NAME_BYTES_MAX + LONG_NAME_DESCRIPTION_SUFFIX.len() <= FILE_NAME_BYTES_MAX);
    assert!(TOPIC_NAME_BYTES_MAX + TEMPORARY_SUFFIX.len() <= FILE_NAME_BYTES_MAX);
};
pub struct Topic<D: Disk> {
    pub name: String,
    pub id: [u8; 16],
    pub overrides: TopicOverrides,
    pub config: LogConfig,
    pub partitions: Vec<Arc<Partition<D>>>,
}

/// Why a topic operation was refused, as Kafka error codes name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicError {
    InvalidName(String),
    AlreadyExists,
    Unknown,
    InvalidPartitions(String),
    InvalidConfig(String),
    Storage(String),
    /// An internal topic (`__consumer_offsets`) cannot be deleted.
    Internal,
    /// The cluster's metadata has the topic (or was just asked to create it) and this node's
    /// files of it are not made yet: the client retries.
    Pending,
}

impl From<io::Error> for TopicError {
    fn from(e: io::Error) -> TopicError {
        TopicError::Storage(e.to_string())
    }
}

/// Kafka's rule: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
///
/// # Errors
/// `InvalidName` saying why.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    let legal = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if name.is_empty() || name.len() > TOPIC_NAME_BYTES_MAX || !legal || name == "." || name == ".."
    {
        return Err(TopicError::InvalidName(format!(
            "topic name '{name}' must be 1 to {TOPIC_NAME_BYTES_MAX} of [a-zA-Z0-9._-], not . or .."
        )));
    }
    if name == crate::quorum::METADATA_TOPIC {
        return Err(TopicError::InvalidName(format!(
            "'{name}' is reserved for the cluster's metadata log"
        )));
    }
    Ok(())
}

pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

fn description_path(data_dir: &Path, topic: &str) -> PathBuf {
    data_dir.join(TOPICS_DIR).join(description_file_name(topic))
}

/// `NAME.properties`, or `NAME.props` for a name too long for that.
fn description_file_name(topic: &str) -> String {
    if topic.len() + DESCRIPTION_SUFFIX.len() <= FILE_NAME_BYTES_MAX {
        format!("{topic}{DESCRIPTION_SUFFIX}")
    } else {
        format!("{topic}{LONG_NAME_DESCRIPTION_SUFFIX}")
    }
}

/// The topic a file of `topics/` describes, if it is a description's name: the inverse of
/// `description_file_name` (so `a.props`, which no topic's description is named, is none).
fn described_topic(file_name: &str) -> Option<&str> {
    let name = file_name
        .strip_suffix(DESCRIPTION_SUFFIX)
        .or_else(|| file_name.strip_suffix(LONG_NAME_DESCRIPTION_SUFFIX))?;
    (description_file_name(name) == file_name).then_some(name)
}

pub fn id_hex(id: &[u8; 16]) -> String {
    id.iter().fold(String::with_capacity(32), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn parse_hex_id(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(id)
}

/// The description's text, sealed by a last line with the CRC-32C of everything before it:
/// like every persistent byte keel reads, a description is verified before it is trusted.
fn describe(id: &[u8; 16], partitions: i32, overrides: &TopicOverrides) -> String {
    let mut text = format!(
        "# keel topic\ntopic.id={}\npartitions={partitions}\n",
        id_hex(id)
    );
    for (name, value) in overrides {
        let _ = writeln!(text, "{name}={value}");
    }
    let crc = crc32c::crc32c(text.as_bytes());
    let _ = writeln!(text, "{CRC_KEY}={crc:08x}");
    text
}

const CRC_KEY: &str = "crc32c";

/// The text before the CRC line, if the CRC matches.
fn unseal(text: &str) -> Option<&str> {
    let body_end = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
    let (body, seal) = text.split_at(body_end);
    let crc = seal.trim().strip_prefix(CRC_KEY)?.strip_prefix('=')?;
    let crc = u32::from_str_radix(crc, 16).ok()?;
    (crc32c::crc32c(body.as_bytes()) == crc).then_some(body)
}

/// What a description file says.
struct Description {
    id: [u8; 16],
    partitions: i32,
    overrides: TopicOverrides,
}

fn parse_description(text: &str) -> Option<Description> {
    let mut id = None;
    let mut partitions = None;
    let mut overrides = TopicOverrides::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once('=')?;
        match name {
            "topic.id" => id = parse_hex_id(value),
            "partitions" => partitions = value.parse().ok(),
            _ => {
                overrides.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    Some(Description {
        id: id?,
        partitions: partitions.filter(|p| (1..=PARTITIONS_MAX).contains(p))?,
        overrides,
    })
}

/// A description's verified text, read again if it fails its CRC (a transient read error);
/// `None` when it fails every time.
fn read_description<D: Disk>(disk: &D, path: &Path) -> io::Result<Option<String>> {
    let file = disk.open(path)?;
    let mut bytes = vec![0u8; file.len()? as usize];
    for _ in 0..crate::log::scan::READ_ATTEMPTS_MAX {
        file.read_exact_at(&mut bytes, 0)?;
        let text = String::from_utf8_lossy(&bytes);
        if let Some(body) = unseal(&text) {
            return Ok(Some(body.to_owned()));
        }
    }
    Ok(None)
}

/// Opens (recovering) partitions `partitions` of a topic into `opened`, in order. On an error,
/// `opened` holds the partitions opened before it.
#[allow(clippy::too_many_arguments)]
fn open_partitions<D: Disk>(
    disk: &D,
    data_dir: &Path,
    name: &str,
    partitions: std::ops::Range<i32>,
    config: &LogConfig,
    node_id: i32,
    now_ms: i64,
    opened: &mut Vec<Arc<Partition<D>>>,
) -> Result<(), TopicError> {
    for index in partitions {
        let dir = partition_dir(data_dir, name, index);
        let partition = Log::open(disk.clone(), &dir, config.clone(), now_ms)
            .and_then(|log| Partition::open(name.to_owned(), index, node_id, disk, log))
            .map_err(|e| TopicError::Storage(format!("{}: {e}", dir.display())))?;
        opened.push(Arc::new(partition));
    }
    Ok(())
}

/// Loads every topic described under `data_dir`.
///
/// # Errors
/// IO errors, or a partition that cannot be opened.
pub fn load_all<D: Disk>(
    disk: &D,
    data_dir: &Path,
    defaults: &LogConfig,
    node_id: i32,
    now_ms: i64,
) -> Result<BTreeMap<String, Arc<Topic<D>>>, TopicError> {
    let dir = data_dir.join(TOPICS_DIR);
    disk.create_dir_all(&dir)?;
    let mut topics = BTreeMap::new();
    for file_name in disk.list(&dir)? {
        let Some(name) = described_topic(&file_name) else {
            continue;
        };
        let path = dir.join(&file_name);
        let description = read_description(disk, &path)?.and_then(|text| parse_description(&text));
        let Some(description) = description else {
            return Err(TopicError::Storage(format!(
                "{}: the topic description is damaged (CRC or syntax); restore it or remove the topic's files",
                path.display()
            )));
        };
        let config = topic_log_config(defaults, &description.overrides)
            .map_err(TopicError::InvalidConfig)?;
        let mut partitions = Vec::new();
        open_partitions(
            disk,
            data_dir,
            name,
            0..description.partitions,
            &config,
            node_id,
            now_ms,
            &mut partitions,
        )?;
        let topic = Topic {
            name: name.to_owned(),
            id: description.id,
            overrides: description.overrides,
            config,
            partitions,
        };
        topics.insert(name.to_owned(), Arc::new(topic));
    }
    Ok(topics)
}

/// What a new topic is to be.
pub struct NewTopic<'a> {
    pub name: &'a str,
    pub id: [u8; 16],
    pub partitions: i32,
    pub overrides: TopicOverrides,
}

/// Creates a topic's partitions and then its description (the commit point). A creation that
/// fails on the disk leaves nothing: what it made is removed, durably, and an error is logged
/// naming the topic and the cause.
///
/// # Errors
/// Invalid name, partitions or config; storage errors.
pub fn create<D: Disk>(
    disk: &D,
    data_dir: &Path,
    new: NewTopic<'_>,
    defaults: &LogConfig,
    node_id: i32,
    now_ms: i64,
) -> Result<Topic<D>, TopicError> {
    let NewTopic {
        name,
        id,
        partitions,
        overrides,
    } = new;
    validate_name(name)?;
    if !(1..=PARTITIONS_MAX).contains(&partitions) {
        return Err(TopicError::InvalidPartitions(format!(
            "{partitions} partitions: must be 1 to {PARTITIONS_MAX}"
        )));
    }
    let config = topic_log_config(defaults, &overrides).map_err(TopicError::InvalidConfig)?;
    let mut opened = Vec::new();
    let made = open_partitions(
        disk,
        data_dir,
        name,
        0..partitions,
        &config,
        node_id,
        now_ms,
        &mut opened,
    )
    .and_then(|()| Ok(disk.sync_dir(data_dir)?))
    .and_then(|()| {
        let text = describe(&id, partitions, &overrides);
        Ok(write_atomically(
            disk,
            &description_path(data_dir, name),
            text.as_bytes(),
        )?)
    });
    if let Err(error) = made {
        // The partition that failed may have left a directory too.
        let attempted = 0..(opened.len() as i32 + 1).min(partitions);
        drop(opened);
        let undone = remove_description(disk, data_dir, name)
            .and_then(|()| remove_partition_dirs(disk, data_dir, name, attempted.clone()));
        log_undone("creating the topic", name, &error, attempted, undone);
        return Err(error);
    }
    Ok(Topic {
        name: name.to_owned(),
        id,
        overrides,
        config,
        partitions: opened,
    })
}

/// Adds partitions to a topic (CreatePartitions): new directories, then the new description.
/// As with `create`, a failure on the disk leaves the topic as it was, on disk too.
///
/// # Errors
/// Storage errors.
pub fn add_partitions<D: Disk>(
    disk: &D,
    data_dir: &Path,
    topic: &Topic<D>,
    count: i32,
    node_id: i32,
    now_ms: i64,
) -> Result<Topic<D>, TopicError> {
    let current = topic.partitions.len() as i32;
    if count <= current || count > PARTITIONS_MAX {
        return Err(TopicError::InvalidPartitions(format!(
            "topic {} has {current} partitions; the new count must be above that and at most {PARTITIONS_MAX}, not {count}",
            topic.name
        )));
    }
    let mut added = Vec::new();
    let made = open_partitions(
        disk,
        data_dir,
        &topic.name,
        current..count,
        &topic.config,
        node_id,
        now_ms,
        &mut added,
    )
    .and_then(|()| Ok(disk.sync_dir(data_dir)?))
    .and_then(|()| {
        let text = describe(&topic.id, count, &topic.overrides);
        let path = description_path(data_dir, &topic.name);
        Ok(write_atomically(disk, &path, text.as_bytes())?)
    });
    if let Err(error) = made {
        let attempted = current..(current + added.len() as i32 + 1).min(count);
        drop(added);
        // The description goes back first: one naming partitions that are gone would have
        // them made again, empty, at the next start.
        let undone = restore_description(disk, data_dir, topic)
            .and_then(|()| remove_partition_dirs(disk, data_dir, &topic.name, attempted.clone()));
        log_undone("adding partitions", &topic.name, &error, attempted, undone);
        return Err(error);
    }
    let mut partitions = topic.partitions.clone();
    partitions.extend(added);
    Ok(Topic {
        name: topic.name.clone(),
        id: topic.id,
        overrides: topic.overrides.clone(),
        config: topic.config.clone(),
        partitions,
    })
}

/// Rewrites a topic's description with new overrides (AlterConfigs).
///
/// # Errors
/// Invalid config; storage errors.
pub fn set_overrides<D: Disk>(
    disk: &D,
    data_dir: &Path,
    topic: &Topic<D>,
    overrides: TopicOverrides,
    defaults: &LogConfig,
) -> Result<Topic<D>, TopicError> {
    let config = topic_log_config(defaults, &overrides).map_err(TopicError::InvalidConfig)?;
    let text = describe(&topic.id, topic.partitions.len() as i32, &overrides);
    write_atomically(
        disk,
        &description_path(data_dir, &topic.name),
        text.as_bytes(),
    )?;
    for partition in &topic.partitions {
        partition
            .set_config(config.clone())
            .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
    }
    Ok(Topic {
        name: topic.name.clone(),
        id: topic.id,
        overrides,
        config,
        partitions: topic.partitions.clone(),
    })
}

/// Deletes a topic: the description first (after which the topic no longer exists, even if a
/// crash interrupts the rest), then each partition's files and directory.
///
/// # Errors
/// Storage errors; files left behind are removed by `remove_orphans` at the next start.
pub fn delete<D: Disk>(disk: &D, data_dir: &Path, topic: &Topic<D>) -> Result<(), TopicError> {
    disk.remove(&description_path(data_dir, &topic.name))?;
    disk.sync_dir(&data_dir.join(TOPICS_DIR))?;
    for partition in &topic.partitions {
        drop(partition.take_log());
        remove_dir_files(disk, &partition_dir(data_dir, &topic.name, partition.index))?;
    }
    disk.sync_dir(data_dir)?;
    Ok(())
}

/// Removes a description and its temporary file, if they exist, durably: what a creation that
/// failed may have written.
fn remove_description<D: Disk>(disk: &D, data_dir: &Path, name: &str) -> io::Result<()> {
    let path = description_path(data_dir, name);
    for file in [path.with_extension("tmp"), path] {
        if disk.exists(&file) {
            disk.remove(&file)?;
        }
    }
    disk.sync_dir(&data_dir.join(TOPICS_DIR))
}

/// Writes `topic`'s description again unless the one on disk is already its own (the new one
/// may have been renamed into place when the directory's sync failed).
fn restore_description<D: Disk>(disk: &D, data_dir: &Path, topic: &Topic<D>) -> io::Result<()> {
    let path = description_path(data_dir, &topic.name);
    let text = describe(&topic.id, topic.partitions.len() as i32, &topic.overrides);
    let on_disk = read_description(disk, &path).ok().flatten();
    if on_disk.is_some_and(|body| unseal(&text) == Some(body.as_str())) {
        return Ok(());
    }
    write_atomically(disk, &path, text.as_bytes())
}

/// Removes the partition directories of `partitions` that exist, and syncs the data directory.
fn remove_partition_dirs<D: Disk>(
    disk: &D,
    data_dir: &Path,
    name: &str,
    partitions: std::ops::Range<i32>,
) -> io::Result<()> {
    for index in partitions {
        let dir = partition_dir(data_dir, name, index);
        if disk.exists(&dir) {
            remove_dir_files(disk, &dir)?;
        }
    }
    disk.sync_dir(data_dir)
}

/// Logs a change of a topic that failed on the disk, and whether what it made is gone.
fn log_undone(
    change: &str,
    topic: &str,
    error: &TopicError,
    attempted: std::ops::Range<i32>,
    undone: io::Result<()>,
) {
    let partitions = attempted.len();
    match undone {
        Ok(()) => tracing::error!(
            topic,
            error = ?error,
            partitions_removed = partitions,
            "{change} failed on the disk; what it had made is removed"
        ),
        // Partition directories no description names are removed at the next start.
        Err(e) => tracing::error!(
            topic,
            error = ?error,
            cleanup_error = %e,
            "{change} failed on the disk, and so did removing what it had made"
        ),
    }
}

fn remove_dir_files<D: Disk>(disk: &D, dir: &Path) -> io::Result<()> {
    for name in disk.list(dir)? {
        disk.remove(&dir.join(name))?;
    }
    disk.remove_dir(dir)
}

/// Removes partition directories that no topic describes (a deletion a crash interrupted).
///
/// # Errors
/// IO errors.
pub fn remove_orphans<D: Disk>(
    disk: &D,
    data_dir: &Path,
    topics: &BTreeMap<String, Arc<Topic<D>>>,
) -> io::Result<()> {
    for name in disk.list(data_dir)? {
        if name == crate::quorum::METADATA_DIR {
            continue;
        }
        let Some((topic, index)) = name.rsplit_once('-') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        let described = topics
            .get(topic)
            .is_some_and(|t| index < t.partitions.len());
        let path = data_dir.join(&name);
        if !described && disk.list(&path).is_ok() {
            tracing::warn!(dir = %path.display(), "removing the partition of a deleted topic");
            remove_dir_files(disk, &path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::MemDisk;

    const DATA: &str = "/data";

    #[test]
    fn the_metadata_quorums_directory_is_no_orphan_and_its_name_is_no_topics() {
        let disk = MemDisk::new();
        let data_dir = Path::new(DATA);
        let quorum = data_dir.join(crate::quorum::METADATA_DIR);
        disk.create_dir_all(&quorum).unwrap();
        let file = quorum.join("raft.log");
        drop(disk.create(&file).unwrap());
        remove_orphans(&disk, data_dir, &BTreeMap::new()).unwrap();
        assert!(disk.exists(&file));
        assert!(matches!(
            validate_name(crate::quorum::METADATA_TOPIC),
            Err(TopicError::InvalidName(_))
        ));
    }

    /// The smallest indexes a log accepts, so that thousands of partitions fit in memory.
    fn small_indexes() -> LogConfig {
        LogConfig {
            segment_index_bytes: crate::log::config::SEGMENT_INDEX_BYTES_MIN as usize,
            ..LogConfig::default()
        }
    }

    fn new_topic(name: &str, partitions: i32) -> NewTopic<'_> {
        NewTopic {
            name,
            id: [9; 16],
            partitions,
            overrides: TopicOverrides::new(),
        }
    }

    /// The longest name Kafka accepts, with partitions up to the longest index there is (four
    /// digits: PARTITIONS_MAX - 1 is 9999): MemDisk refuses a component over 255 bytes as
    /// Linux does, so a name that does not fit fails here.
    #[test]
    fn the_longest_topic_name_with_four_digit_partitions_fits_on_disk_and_loads_again() {
        let disk = MemDisk::new();
        let data_dir = Path::new(DATA);
        let name = "x".repeat(TOPIC_NAME_BYTES_MAX);
        let config = small_indexes();
        let partitions = 1001;
        assert_eq!(
            partition_dir(data_dir, &name, partitions - 1)
                .file_name()
                .map(|n| n.len()),
            partition_dir(data_dir, &name, PARTITIONS_MAX - 1)
                .file_name()
                .map(|n| n.len()),
        );
        let topic =
            create(&disk, data_dir, new_topic(&name, partitions), &config, 0, 0).expect("created");
        assert_eq!(topic.partitions.len(), partitions as usize);
        let last = partition_dir(data_dir, &name, partitions - 1);
        assert!(disk.exists(&last), "{} exists", last.display());
        let longest = disk
            .paths()
            .iter()
            .flat_map(|p| {
                p.components()
                    .map(|c| c.as_os_str().len())
                    .collect::<Vec<_>>()
            })
            .max();
        assert_eq!(
            longest,
            Some(FILE_NAME_BYTES_MAX),
            "`NAME-1000` is 254, `NAME.props` 255"
        );
        drop(topic);
        let loaded = load_all(&disk, data_dir, &config, 0, 0).expect("loaded");
        let topic = loaded.get(&name).expect("the topic loads again");
        assert_eq!(topic.partitions.len(), partitions as usize);
        assert_eq!(topic.id, [9; 16]);
    }

    /// Everything on the disk: each path, and each file's length and CRC-32C.
    fn contents(disk: &MemDisk) -> Vec<(PathBuf, Option<(usize, u32)>)> {
        let paths = disk.paths().into_iter();
        let sum = |bytes: Vec<u8>| (bytes.len(), crc32c::crc32c(&bytes));
        paths
            .map(|p| (p.clone(), disk.file_bytes(&p).map(sum)))
            .collect()
    }

    /// A MemDisk holding an empty data directory, as the broker opens it.
    fn empty_data_dir() -> MemDisk {
        let disk = MemDisk::new();
        let topics = load_all(&disk, Path::new(DATA), &small_indexes(), 0, 0).expect("empty");
        assert!(topics.is_empty());
        disk
    }

    fn out_of_descriptors(result: Result<Topic<MemDisk>, TopicError>) -> bool {
        matches!(result.err(), Some(TopicError::Storage(why)) if why.contains("Too many open files"))
    }

    /// A creation that fails at any of its file creations (running out of descriptors, as a
    /// 10,000-partition creation once did at partition 4,997, leaving 4,998 directories) leaves
    /// the disk as it found it, and the name free.
    #[test]
    fn a_creation_that_fails_at_any_file_leaves_nothing_behind() {
        let data_dir = Path::new(DATA);
        let config = small_indexes();
        let probe = empty_data_dir();
        let before = probe.creates();
        drop(create(&probe, data_dir, new_topic("t", 3), &config, 0, 0).expect("created"));
        let creates = probe.creates() - before;
        assert!(
            creates > 3 * 3,
            "{creates} creations: three files a partition at least"
        );
        for nth in 1..=creates {
            let disk = empty_data_dir();
            let empty = contents(&disk);
            disk.fail_create(nth);
            let failed = create(&disk, data_dir, new_topic("t", 3), &config, 0, 0);
            assert!(out_of_descriptors(failed), "creation {nth} of {creates}");
            assert_eq!(contents(&disk), empty, "creation {nth} of {creates} failed");
            let topic = create(&disk, data_dir, new_topic("t", 3), &config, 0, 0);
            assert_eq!(topic.expect("created").partitions.len(), 3);
        }
    }

    /// Partitions added by a CreatePartitions that fails at any of its file creations are
    /// removed, and the description still names the partitions the topic had.
    #[test]
    fn partitions_added_by_a_growth_that_fails_at_any_file_are_removed() {
        let data_dir = Path::new(DATA);
        let config = small_indexes();
        let grown =
            |disk: &MemDisk, topic: &Topic<MemDisk>| add_partitions(disk, data_dir, topic, 5, 0, 0);
        let probe = empty_data_dir();
        let topic = create(&probe, data_dir, new_topic("t", 2), &config, 0, 0).expect("created");
        let before = probe.creates();
        assert_eq!(grown(&probe, &topic).expect("grown").partitions.len(), 5);
        let creates = probe.creates() - before;
        for nth in 1..=creates {
            let disk = empty_data_dir();
            let topic = create(&disk, data_dir, new_topic("t", 2), &config, 0, 0).expect("created");
            let two = contents(&disk);
            disk.fail_create(nth);
            assert!(
                out_of_descriptors(grown(&disk, &topic)),
                "creation {nth} of {creates}"
            );
            assert_eq!(contents(&disk), two, "creation {nth} of {creates} failed");
            drop(topic);
            let loaded = load_all(&disk, data_dir, &config, 0, 0).expect("loaded");
            assert_eq!(loaded["t"].partitions.len(), 2);
        }
    }

    /// Descriptions written before long names were handled keep their file names.
    #[test]
    fn names_that_fit_keep_their_description_file_and_each_file_names_one_topic() {
        let fits = "a".repeat(FILE_NAME_BYTES_MAX - DESCRIPTION_SUFFIX.len());
        let longer = format!("{fits}b");
        assert_eq!(description_file_name(&fits), format!("{fits}.properties"));
        assert_eq!(description_file_name(&longer), format!("{longer}.props"));
        for name in [
            "t",
            "a.props",
            "a.properties",
            "a.tmp",
            fits.as_str(),
            longer.as_str(),
        ] {
            let file_name = description_file_name(name);
            assert!(file_name.len() <= FILE_NAME_BYTES_MAX, "{file_name}");
            assert_eq!(described_topic(&file_name), Some(name), "{file_name}");
        }
        // Not a description keel writes: `t`'s is `t.properties`; a temporary file is none.
        assert_eq!(described_topic("t.props"), None);
        assert_eq!(described_topic("t.tmp"), None);
    }

    /// A description written as keel always wrote it (`NAME.properties`) still loads.
    #[test]
    fn a_description_in_the_old_layout_loads() {
        let disk = MemDisk::new();
        let data_dir = Path::new(DATA);
        let config = small_indexes();
        let name = "orders.eu-west";
        drop(create(&disk, data_dir, new_topic(name, 2), &config, 0, 0).expect("created"));
        let old_path = data_dir.join(TOPICS_DIR).join(format!("{name}.properties"));
        assert!(disk.exists(&old_path), "{}", old_path.display());
        let loaded = load_all(&disk, data_dir, &config, 0, 0).expect("loaded");
        assert_eq!(loaded[name].partitions.len(), 2);
    }

    #[test]
    fn descriptions_are_sealed_and_a_damaged_one_is_refused() {
        let overrides = TopicOverrides::from([("retention.ms".to_owned(), "1000".to_owned())]);
        let text = describe(&[7; 16], 3, &overrides);
        let body = unseal(&text).expect("sealed");
        let parsed = parse_description(body).unwrap();
        assert_eq!((parsed.id, parsed.partitions), ([7; 16], 3));
        assert_eq!(parsed.overrides, overrides);
        let damaged = text.replace("retention", "retendion");
        assert_eq!(unseal(&damaged), None);
    }
}
