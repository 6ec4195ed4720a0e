//! Tests of `SimDisk` against its fault model: what crash and power loss may and may not lose,
//! each on-demand fault firing at probability 1 and never at 0, and agreement with `MemDisk` when
//! nothing goes wrong. Properties about "may lose" run many seeds and require both outcomes.

use std::io;
use std::path::Path;

use keel::io::mem::MemDisk;
use keel::io::{Disk, File, Mapping};
use keel_sim::disk::{DiskLatency, FaultConfig, FaultCounts, SimDisk, BLOCK};
use keel_sim::rng::SimRng;

/// Seeds per "may or may not" property: enough that each outcome of a 1/2 choice shows up.
const SEEDS: u64 = 200;

const DIR: &str = "/data";
const A: &str = "/data/a";
const B: &str = "/data/b";

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// A disk with `/data` made and `seed` for its own faults.
fn disk(seed: u64) -> SimDisk {
    let disk = SimDisk::new(seed);
    disk.create_dir_all(p(DIR)).unwrap();
    disk
}

/// A file `A` whose name is durable and whose contents are `data`, synced.
fn synced_file(disk: &SimDisk, data: &[u8]) -> <SimDisk as Disk>::File {
    let file = disk.create(p(A)).unwrap();
    file.write_at(data, 0).unwrap();
    file.sync_data().unwrap();
    disk.sync_dir(p(DIR)).unwrap();
    file
}

fn read_all(disk: &impl Disk, path: &Path) -> Vec<u8> {
    let file = disk.open(path).unwrap();
    let mut buf = vec![0; file.len().unwrap() as usize];
    file.read_exact_at(&mut buf, 0).unwrap();
    buf
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) | 1)
        .collect()
}

fn everything(p: f64) -> FaultConfig {
    FaultConfig {
        torn_write: p,
        bit_rot: p,
        slow_fsync: p,
        enospc: p,
        eio: p,
        read_eio: p,
        misdirected_read: p,
    }
}

#[test]
fn crash_keeps_unsynced_data_and_names() {
    let disk = disk(0);
    let file = disk.create(p(A)).unwrap();
    file.write_at(b"hello", 0).unwrap();
    disk.crash();
    assert_eq!(read_all(&disk, p(A)), b"hello");
    assert_eq!(disk.list(p(DIR)).unwrap(), ["a"]);
    assert_eq!(disk.fault_counts().crashes, 1);
}

#[test]
fn handles_go_stale_after_crash_and_power_loss() {
    let disk = disk(0);
    let file = synced_file(&disk, &[7; 16]);
    let mut mapping = file.map(16).unwrap();
    disk.crash();
    let mut buf = [0; 4];
    let stale =
        |r: io::Result<()>| assert_eq!(r.unwrap_err().to_string(), "stale handle after crash");
    stale(file.read_at(&mut buf, 0).map(drop));
    stale(file.write_at(b"x", 0));
    stale(file.sync_data());
    stale(file.len().map(drop));
    stale(file.set_len(0));
    stale(file.map(1).map(drop));
    mapping.write(0, &[9]);
    stale(mapping.flush());
    assert_eq!(
        read_all(&disk, p(A)),
        [7; 16],
        "a dead process's mapping writes never land"
    );
    assert_eq!(disk.fault_counts().stale_handle_uses, 8);

    let fresh = disk.open(p(A)).unwrap();
    disk.power_loss(&mut SimRng::new(0));
    stale(fresh.sync_data());
}

#[test]
fn open_handle_outlives_remove_and_rename() {
    let disk = disk(0);
    let file = disk.create(p(A)).unwrap();
    disk.rename(p(A), p(B)).unwrap();
    file.write_at(b"moved", 0).unwrap();
    assert_eq!(read_all(&disk, p(B)), b"moved");
    disk.remove(p(B)).unwrap();
    file.write_at(b"!", 5).unwrap();
    let mut buf = [0; 6];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"moved!");
    assert!(!disk.exists(p(B)));
}

#[test]
fn synced_data_survives_every_power_loss() {
    let synced = pattern(2 * BLOCK + 100, 1);
    for seed in 0..SEEDS {
        let disk = disk(seed);
        let file = synced_file(&disk, &synced);
        // Unsynced appends share the last synced block: it may be rewritten, never damaged.
        file.write_at(&pattern(3 * BLOCK, 2), synced.len() as u64)
            .unwrap();
        disk.power_loss(&mut SimRng::new(seed));
        let after = read_all(&disk, p(A));
        assert!(after.len() >= synced.len(), "seed {seed}");
        assert_eq!(after[..synced.len()], synced[..], "seed {seed}");
        assert_eq!(disk.durable_bytes(p(A)).unwrap(), after, "seed {seed}");
    }
}

#[test]
fn unsynced_data_is_lost_on_some_seeds_and_kept_on_others() {
    let data = pattern(2 * BLOCK, 3);
    let (mut kept, mut lost) = (0, 0);
    for seed in 0..SEEDS {
        let disk = disk(seed);
        let file = synced_file(&disk, &[]);
        file.write_at(&data, 0).unwrap();
        disk.power_loss(&mut SimRng::new(seed));
        if read_all(&disk, p(A)) == data {
            kept += 1;
        } else {
            lost += 1;
        }
    }
    assert!(kept > 0 && lost > 0, "kept {kept}, lost {lost}");
}

#[test]
fn grown_file_may_come_back_longer_with_zero_blocks() {
    let data = pattern(3 * BLOCK, 4);
    let mut zero_filled = 0;
    for seed in 0..SEEDS {
        let disk = disk(seed);
        let file = synced_file(&disk, &[]);
        file.write_at(&data, 0).unwrap();
        disk.power_loss(&mut SimRng::new(seed));
        let after = read_all(&disk, p(A));
        assert!(after.is_empty() || after.len() == data.len(), "seed {seed}");
        for (block, got) in after.chunks(BLOCK).enumerate() {
            let new = &data[block * BLOCK..][..got.len()];
            assert!(
                got == new || got.iter().all(|&b| b == 0),
                "seed {seed} block {block}"
            );
            zero_filled += usize::from(got != new);
        }
    }
    assert!(zero_filled > 0);
}

#[test]
fn unsynced_shrink_may_be_undone() {
    let data = pattern(2 * BLOCK, 5);
    let (mut undone, mut kept) = (0, 0);
    for seed in 0..SEEDS {
        let disk = disk(seed);
        let file = synced_file(&disk, &data);
        file.set_len(100).unwrap();
        disk.power_loss(&mut SimRng::new(seed));
        let after = read_all(&disk, p(A));
        assert_eq!(after[..100], data[..100], "seed {seed}");
        match after.len() {
            100 => kept += 1,
            len if len == data.len() => {
                undone += 1;
                // Each cut block came back with its old data or with the truncation's zeros.
                for (start, end) in [(100, BLOCK), (BLOCK, 2 * BLOCK)] {
                    let got = &after[start..end];
                    assert!(got == &data[start..end] || got.iter().all(|&b| b == 0));
                }
            }
            len => panic!("seed {seed}: length {len}"),
        }
    }
    assert!(undone > 0 && kept > 0, "undone {undone}, kept {kept}");
}

#[test]
fn unsynced_create_may_vanish_synced_create_survives() {
    let (mut vanished, mut survived) = (0, 0);
    for seed in 0..SEEDS {
        let disk = disk(seed);
        disk.create(p(A)).unwrap();
        disk.create(p(B)).unwrap();
        disk.sync_dir(p(DIR)).unwrap();
        disk.create(p("/data/c")).unwrap();
        disk.power_loss(&mut SimRng::new(seed));
        let names = disk.list(p(DIR)).unwrap();
        assert!(
            names.starts_with(&["a".to_owned(), "b".to_owned()]),
            "seed {seed}"
        );
        match names.len() {
            2 => vanished += 1,
            _ => survived += 1,
        }
        assert_eq!(disk.durable_list_all(), disk.list_all());
    }
    assert!(
        vanished > 0 && survived > 0,
        "vanished {vanished}, survived {survived}"
    );
}

#[test]
fn unsynced_namespace_operations_survive_as_a_prefix() {
    for seed in 0..SEEDS {
        let disk = disk(seed);
        disk.create(p(A)).unwrap();
        disk.create(p(B)).unwrap();
        disk.remove(p(A)).unwrap();
        disk.power_loss(&mut SimRng::new(seed));
        let names = disk.list(p(DIR)).unwrap();
        let allowed: [&[&str]; 4] = [&[], &["a"], &["a", "b"], &["b"]];
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert!(
            allowed.contains(&names.as_slice()),
            "seed {seed}: {names:?}"
        );
    }
}

#[test]
fn rename_without_dir_sync_may_revert() {
    let data = pattern(100, 6);
    let (mut reverted, mut renamed) = (0, 0);
    for seed in 0..SEEDS {
        let disk = disk(seed);
        synced_file(&disk, &data);
        disk.rename(p(A), p(B)).unwrap();
        disk.power_loss(&mut SimRng::new(seed));
        // A rename within a directory is atomic: exactly one name, and the data kept.
        match disk.list(p(DIR)).unwrap().as_slice() {
            [name] if name == "a" => reverted += 1,
            [name] if name == "b" => renamed += 1,
            other => panic!("seed {seed}: {other:?}"),
        }
        let name = if disk.exists(p(A)) { A } else { B };
        assert_eq!(read_all(&disk, p(name)), data, "seed {seed}");
    }
    assert!(
        reverted > 0 && renamed > 0,
        "reverted {reverted}, renamed {renamed}"
    );
}

#[test]
fn synced_rename_and_remove_survive() {
    for seed in 0..SEEDS {
        let disk = disk(seed);
        synced_file(&disk, b"x");
        disk.create(p("/data/gone")).unwrap();
        disk.rename(p(A), p(B)).unwrap();
        disk.remove(p("/data/gone")).unwrap();
        disk.sync_dir(p(DIR)).unwrap();
        disk.power_loss(&mut SimRng::new(seed));
        assert_eq!(disk.list(p(DIR)).unwrap(), ["b"], "seed {seed}");
    }
}

#[test]
fn power_loss_is_deterministic() {
    let run = |seed| {
        let disk = disk(seed);
        let file = disk.create(p(A)).unwrap();
        file.write_at(&pattern(5 * BLOCK, 7), 0).unwrap();
        disk.create(p(B)).unwrap();
        disk.power_loss(&mut SimRng::new(seed));
        (disk.list_all(), disk.cached_bytes(p(A)))
    };
    for seed in 0..20 {
        assert_eq!(run(seed), run(seed));
    }
}

#[test]
fn lying_fsync_loses_synced_data() {
    let data = pattern(2 * BLOCK, 8);
    let mut lost = 0;
    for seed in 0..SEEDS {
        let disk = disk(seed);
        synced_file(&disk, &[]);
        disk.set_lying_fsync(true);
        let file = disk.open(p(A)).unwrap();
        file.write_at(&data, 0).unwrap();
        file.sync_data().unwrap();
        disk.power_loss(&mut SimRng::new(seed));
        lost += usize::from(read_all(&disk, p(A)) != data);
        assert_eq!(disk.fault_counts().lied_fsyncs, 1);
    }
    assert!(lost > 0);
}

#[test]
fn torn_write_writes_a_strict_prefix_and_fails() {
    let disk = disk(1);
    let file = disk.create(p(A)).unwrap();
    disk.set_faults(FaultConfig {
        torn_write: 1.0,
        ..FaultConfig::default()
    });
    let data = pattern(1000, 9);
    assert!(file.write_at(&data, 0).is_err());
    let written = disk.cached_bytes(p(A)).unwrap();
    assert!(written.len() < data.len());
    assert_eq!(written[..], data[..written.len()]);
    assert_eq!(disk.fault_counts().torn_writes, 1);
}

#[test]
fn bit_rot_flips_one_bit_of_a_read_only() {
    let disk = disk(2);
    let data = pattern(64, 10);
    synced_file(&disk, &data);
    // Only a read from the platter rots: power-cycle so nothing is in the page cache.
    disk.power_loss(&mut SimRng::new(1));
    let file = disk.open(p(A)).unwrap();
    disk.set_faults(FaultConfig {
        bit_rot: 1.0,
        ..FaultConfig::default()
    });
    let mut buf = vec![0; data.len()];
    file.read_exact_at(&mut buf, 0).unwrap();
    let flipped: u32 = buf
        .iter()
        .zip(&data)
        .map(|(a, b)| (a ^ b).count_ones())
        .sum();
    assert_eq!(flipped, 1);
    assert_eq!(
        disk.cached_bytes(p(A)).unwrap(),
        data,
        "stored bytes intact"
    );
    assert_eq!(disk.fault_counts().bit_rots, 1);
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, data, "a cached block never rots");
}

#[test]
fn rot_flips_a_bit_for_good() {
    let disk = disk(3);
    let data = pattern(64, 11);
    synced_file(&disk, &data);
    disk.rot(p(A), 10).unwrap();
    let rotted = disk.cached_bytes(p(A)).unwrap();
    assert_eq!((rotted[10] ^ data[10]).count_ones(), 1);
    assert_eq!(disk.durable_bytes(p(A)).unwrap(), rotted);
    disk.power_loss(&mut SimRng::new(0));
    assert_eq!(read_all(&disk, p(A)), rotted);
    assert_eq!(
        disk.rot(p(A), 64).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        disk.rot(p(B), 0).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(disk.fault_counts().permanent_rots, 1);
}

#[test]
fn a_flush_sync_takes_the_drawn_latency_and_a_slow_one_more() {
    let disk = disk(4);
    disk.set_latency(DiskLatency {
        sync_us: 1_000,
        slow_sync_ms: 200,
    });
    for _ in 0..100 {
        let latency = disk.sync_latency();
        let total = latency.before + latency.after;
        assert!(
            (500..=1_500).contains(&(total.as_micros() as u64)),
            "{total:?}"
        );
    }
    disk.set_faults(FaultConfig {
        slow_fsync: 1.0,
        ..FaultConfig::default()
    });
    let latency = disk.sync_latency();
    assert!((latency.before + latency.after).as_millis() >= 200);
    assert_eq!(disk.fault_counts().slow_fsyncs, 1);
    // Slowness is time only: the sync itself succeeds.
    let file = synced_file(&disk, b"x");
    file.write_at(b"y", 1).unwrap();
    file.sync_data().unwrap();
    assert_eq!(disk.durable_bytes(p(A)).unwrap(), b"xy");
}

#[test]
fn read_eio_fails_a_read_and_the_next_one_reads_right() {
    let disk = disk(9);
    let file = synced_file(&disk, b"data");
    disk.set_faults(FaultConfig {
        read_eio: 1.0,
        ..FaultConfig::default()
    });
    let mut buf = [0; 4];
    assert!(file.read_exact_at(&mut buf, 0).is_err());
    assert_eq!(disk.fault_counts().read_eio, 1);
    disk.set_faults(FaultConfig::default());
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"data");
}

#[test]
fn a_misdirected_read_returns_another_block_once() {
    let disk = disk(10);
    let data: Vec<u8> = (0..2 * BLOCK).map(|i| (i / BLOCK) as u8 + 1).collect();
    synced_file(&disk, &data);
    disk.power_loss(&mut SimRng::new(1));
    let file = disk.open(p(A)).unwrap();
    disk.set_faults(FaultConfig {
        misdirected_read: 1.0,
        ..FaultConfig::default()
    });
    let mut buf = vec![0; 16];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, vec![2; 16], "block 1's bytes in place of block 0's");
    assert_eq!(disk.fault_counts().misdirected_reads, 1);
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, vec![1; 16], "the page cache holds the true block");
}

#[test]
fn a_misdirected_write_replaces_a_block_on_the_platter_for_good() {
    let disk = disk(11);
    let data: Vec<u8> = (0..3 * BLOCK).map(|i| (i / BLOCK) as u8 + 1).collect();
    synced_file(&disk, &data);
    assert!(disk.misdirect(p(A), 0, p(A), 2).unwrap());
    assert_eq!(disk.fault_counts().misdirected_writes, 1);
    // The process wrote block 0: its page cache keeps the true bytes until the power goes.
    assert_eq!(disk.cached_bytes(p(A)).unwrap()[..BLOCK], vec![1; BLOCK]);
    disk.power_loss(&mut SimRng::new(2));
    let after = read_all(&disk, p(A));
    assert_eq!(after[..BLOCK], vec![3; BLOCK]);
    assert_eq!(after[BLOCK..], data[BLOCK..]);
}

#[test]
fn enospc_fails_writes_and_growth_without_writing() {
    let disk = disk(5);
    let file = synced_file(&disk, b"abc");
    disk.set_faults(FaultConfig {
        enospc: 1.0,
        ..FaultConfig::default()
    });
    let full = |r: io::Result<()>| assert_eq!(r.unwrap_err().kind(), io::ErrorKind::StorageFull);
    full(file.write_at(b"zz", 1));
    full(file.set_len(10));
    file.set_len(1).unwrap();
    assert_eq!(disk.cached_bytes(p(A)).unwrap(), b"a");
    assert_eq!(disk.fault_counts().enospc, 2);
}

#[test]
fn eio_fails_syncs_and_keeps_data_dirty() {
    let disk = disk(6);
    let file = synced_file(&disk, b"old");
    disk.set_faults(FaultConfig {
        eio: 1.0,
        ..FaultConfig::default()
    });
    file.write_at(b"new", 0).unwrap();
    assert!(file.sync_data().is_err());
    disk.create(p(B)).unwrap();
    assert!(disk.sync_dir(p(DIR)).is_err());
    assert!(file.map(3).unwrap().flush().is_err());
    assert_eq!(disk.durable_bytes(p(A)).unwrap(), b"old");
    assert_eq!(disk.durable_list_all(), [p(A)]);
    assert_eq!(disk.cached_bytes(p(A)).unwrap(), b"new");
    assert_eq!(disk.fault_counts().eio, 3);
    disk.set_faults(FaultConfig::default());
    file.sync_data().unwrap();
    assert_eq!(
        disk.durable_bytes(p(A)).unwrap(),
        b"new",
        "still dirty, so a later sync works"
    );
}

#[test]
fn no_fault_fires_at_probability_zero() {
    let disk = disk(7);
    disk.set_faults(everything(0.0));
    for round in 0..200u64 {
        let path = format!("/data/f{round}");
        let file = disk.create(p(&path)).unwrap();
        let data = pattern(300, round as u8);
        file.write_at(&data, 0).unwrap();
        file.set_len(600).unwrap();
        file.sync_data().unwrap();
        disk.sync_dir(p(DIR)).unwrap();
        let mut buf = vec![0; 300];
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, data);
    }
    assert_eq!(disk.fault_counts(), FaultCounts::default());
}

#[test]
fn every_fault_fires_at_probability_one() {
    let disk = disk(8);
    synced_file(&disk, &[1; 10]);
    disk.power_loss(&mut SimRng::new(1));
    let file = disk.open(p(A)).unwrap();
    disk.set_faults(everything(1.0));
    assert!(file.write_at(b"x", 0).is_err());
    assert!(file.set_len(20).is_err());
    let mut buf = [0; 10];
    // A read that fails reads nothing to rot or misdirect.
    assert!(file.read_exact_at(&mut buf, 0).is_err());
    assert!(file.sync_data().is_err());
    disk.sync_latency();
    let counts = disk.fault_counts();
    // Enospc wins over tearing: a write refused for space writes nothing to tear.
    assert_eq!((counts.enospc, counts.torn_writes), (2, 0));
    assert_eq!(
        (counts.read_eio, counts.bit_rots, counts.misdirected_reads),
        (1, 0, 0)
    );
    assert_eq!((counts.slow_fsyncs, counts.eio), (1, 1));
}

#[test]
fn mapping_writes_through_and_flush_syncs() {
    let disk = disk(9);
    let file = synced_file(&disk, &[0; 32]);
    let mut mapping = file.map(16).unwrap();
    mapping.write(4, b"idx");
    assert_eq!(&mapping.bytes()[4..7], b"idx");
    assert_eq!(&disk.cached_bytes(p(A)).unwrap()[4..7], b"idx");
    assert_eq!(disk.durable_bytes(p(A)).unwrap(), [0; 32]);
    mapping.flush().unwrap();
    assert_eq!(&disk.durable_bytes(p(A)).unwrap()[4..7], b"idx");
    assert_eq!(
        file.map(33).err().unwrap().kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn namespace_errors_match_a_real_file_system() {
    let disk = disk(10);
    let kind = |r: io::Result<()>| r.unwrap_err().kind();
    assert_eq!(
        kind(disk.create(p("/nodir/a")).map(drop)),
        io::ErrorKind::NotFound
    );
    assert_eq!(kind(disk.open(p(A)).map(drop)), io::ErrorKind::NotFound);
    disk.create(p(A)).unwrap();
    assert_eq!(
        kind(disk.create(p(A)).map(drop)),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(disk.create(p(DIR)).map(drop)),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(kind(disk.remove(p(B))), io::ErrorKind::NotFound);
    assert_eq!(kind(disk.rename(p(B), p(A))), io::ErrorKind::NotFound);
    assert_eq!(
        kind(disk.rename(p(A), p("/nodir/a"))),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        kind(disk.create_dir_all(p("/data/a/sub"))),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(kind(disk.sync_dir(p("/nodir"))), io::ErrorKind::NotFound);
    assert_eq!(
        kind(disk.list(p("/nodir")).map(drop)),
        io::ErrorKind::NotFound
    );
    let file = disk.open(p(A)).unwrap();
    assert_eq!(
        kind(file.write_at(b"x", u64::MAX)),
        io::ErrorKind::FileTooLarge
    );
}

#[test]
fn cross_directory_rename_halves_survive_independently() {
    let (mut both, mut neither) = (0, 0);
    for seed in 0..SEEDS {
        let disk = disk(seed);
        disk.create_dir_all(p("/other")).unwrap();
        synced_file(&disk, b"data");
        disk.rename(p(A), p("/other/a")).unwrap();
        disk.power_loss(&mut SimRng::new(seed));
        let names = disk.list_all();
        both += usize::from(names.len() == 2);
        neither += usize::from(names.is_empty());
        for name in names {
            assert_eq!(read_all(&disk, &name), b"data", "seed {seed}");
        }
    }
    assert!(both > 0 && neither > 0, "both {both}, neither {neither}");
}

/// A small workload through the `Disk` seam; returns every file's visible bytes and the listing.
fn scenario<D: Disk>(disk: &D) -> (Vec<String>, Vec<Vec<u8>>) {
    disk.create_dir_all(p("/t/sub")).unwrap();
    let seg = disk.create(p("/t/0.log")).unwrap();
    seg.write_at(&pattern(5000, 12), 0).unwrap();
    seg.write_at(b"overwrite", 4090).unwrap();
    seg.write_at(b"hole", 9000).unwrap();
    seg.sync_data().unwrap();
    let idx = disk.create(p("/t/0.index")).unwrap();
    idx.set_len(64).unwrap();
    let mut mapping = idx.map(64).unwrap();
    mapping.write(8, b"entry");
    mapping.flush().unwrap();
    idx.set_len(40).unwrap();
    disk.create(p("/t/tmp"))
        .unwrap()
        .write_at(b"temp", 0)
        .unwrap();
    disk.rename(p("/t/tmp"), p("/t/sub/final")).unwrap();
    disk.create(p("/t/gone")).unwrap();
    disk.remove(p("/t/gone")).unwrap();
    disk.sync_dir(p("/t")).unwrap();
    assert!(disk.exists(p("/t/sub")) && !disk.exists(p("/t/gone")));
    let names = disk.list(p("/t")).unwrap();
    let files = ["/t/0.log", "/t/0.index", "/t/sub/final"];
    (names, files.iter().map(|f| read_all(disk, p(f))).collect())
}

#[test]
fn same_visible_bytes_as_mem_disk() {
    assert_eq!(scenario(&SimDisk::new(0)), scenario(&MemDisk::new()));
}

#[test]
fn syncs_fail_after_the_countdown_until_it_is_lifted_and_nothing_after_it_is_durable() {
    let disk = disk(1);
    let file = synced_file(&disk, b"one");
    disk.fail_syncs_after(Some(1));
    file.write_at(b"two", 0).unwrap();
    file.sync_data().unwrap();
    file.write_at(b"six", 0).unwrap();
    assert_eq!(file.sync_data().unwrap_err().kind(), io::ErrorKind::Other);
    disk.rename(p(A), p(B)).unwrap();
    assert!(disk.sync_dir(p(DIR)).is_err());
    assert_eq!(disk.fault_counts().eio, 2);
    assert_eq!(disk.durable_bytes(p(B)).unwrap(), b"two");
    assert!(!disk.durable_list_all().contains(&p(B).to_path_buf()));
    disk.fail_syncs_after(None);
    disk.sync_dir(p(DIR)).unwrap();
    assert!(disk.durable_list_all().contains(&p(B).to_path_buf()));
}
