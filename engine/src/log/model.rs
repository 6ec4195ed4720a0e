//! A model of what a log keeps through appends, truncation, retention and DeleteRecords: its
//! start, its end and the batches still stored. The log's property test and the `log_ops` fuzz
//! target compare the log against it; it works out what truncation and retention must leave
//! without asking the log (only where segments begin, since rolling is tested elsewhere).

/// A stored batch: base offset, last offset, bytes.
pub type ModelBatch = (u64, u64, u64);

#[derive(Debug, Default)]
pub struct LogModel {
    pub start: u64,
    pub next: u64,
    pub batches: Vec<ModelBatch>,
}

impl LogModel {
    /// A batch appended at `base..=last`, of `bytes` bytes.
    pub fn appended(&mut self, base: u64, last: u64, bytes: u64) {
        assert_eq!(base, self.next, "appends are dense");
        self.batches.push((base, last, bytes));
        self.next = last + 1;
    }

    /// Truncation to `target`: batches that do not end below it go; the end is at the start of
    /// the first of them, or `target`. Below the log start the log starts afresh at `target`.
    pub fn truncate(&mut self, target: u64) {
        if target >= self.next {
            return;
        }
        let end = self
            .batches
            .iter()
            .find(|&&(base, last, _)| base < target && target <= last)
            .map_or(target, |&(base, _, _)| base);
        if end < self.start {
            self.batches.clear();
            self.start = target;
            self.next = target;
        } else {
            self.batches.retain(|&(base, _, _)| base < end);
            self.next = end;
        }
    }

    /// Retention by size: closed segments (of those beginning at `bases`) go from the oldest
    /// while the log is larger than `limit` by at least their size (`limit` < 0: no size
    /// limit), or while they lie wholly below the log start. The start moves to the first kept
    /// segment.
    pub fn retain(&mut self, bases: &[u64], limit: i64) {
        let segment_bytes = |from: u64, to: u64| -> u64 {
            self.batches
                .iter()
                .filter(|&&(base, _, _)| from <= base && base < to)
                .map(|b| b.2)
                .sum()
        };
        let mut excess = (limit >= 0).then(|| self.stored_bytes() as i64 - limit);
        let mut kept_from = None;
        for pair in bases.windows(2) {
            let bytes = segment_bytes(pair[0], pair[1]) as i64;
            let oversize = excess.is_some_and(|e| e >= bytes);
            if !(oversize || pair[1] <= self.start) {
                break;
            }
            excess = excess.map(|e| e - bytes);
            kept_from = Some(pair[1]);
        }
        if let Some(first) = kept_from {
            self.start = self.start.max(first);
            self.batches.retain(|&(base, _, _)| base >= first);
        }
    }

    /// DeleteRecords before `offset`: the start moves there, and segments wholly below it go.
    pub fn delete_records_before(&mut self, offset: u64, bases: &[u64]) {
        self.start = self.start.max(offset);
        self.retain(bases, -1);
    }

    /// The bytes of the batches still stored.
    pub fn stored_bytes(&self) -> u64 {
        self.batches.iter().map(|b| b.2).sum()
    }
}
