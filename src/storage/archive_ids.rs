//! Archive ids: microseconds since the Unix epoch, bumped past the last id handed out, so that
//! they sort by time (a MAM `start`/`end` is an id range) and keep increasing across restarts.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use crate::storage::backend::{Backend, WriteOp};
use crate::storage::keys::decode_id;
use crate::storage::trees::Tree;
use crate::storage::StorageError;

/// The key of [`Tree::Meta`] holding the highest archive id ever written, a big-endian `u64`,
/// so ids keep increasing across restarts even if the clock goes back.
const ARCHIVE_LAST_ID_KEY: &[u8] = b"archive_last_id";

/// Hands out archive ids; owned by the commit thread, which records the highest id in the
/// same batch as the entries that use it.
#[derive(Debug)]
pub(crate) struct ArchiveIds {
    last: u64,
    recorded: u64,
}

impl ArchiveIds {
    /// Ids continuing after `last`.
    pub(crate) fn after(last: u64) -> Self {
        ArchiveIds {
            last,
            recorded: last,
        }
    }

    /// Ids continuing after the highest id the backend has recorded.
    pub(crate) fn load(backend: &dyn Backend) -> Result<Self, StorageError> {
        let last = match backend.get(Tree::Meta, ARCHIVE_LAST_ID_KEY)? {
            None => 0,
            Some(bytes) => decode_id(&bytes)?,
        };
        Ok(ArchiveIds::after(last))
    }

    /// A fresh id: the current time in microseconds, or the last id plus one if that is later.
    pub(crate) fn next(&mut self) -> Result<u64, StorageError> {
        let next = self
            .last
            .checked_add(1)
            .ok_or_else(|| StorageError::Backend("archive ids exhausted".into()))?;
        self.last = next.max(now_unix_micros());
        Ok(self.last)
    }

    /// The write recording the highest id handed out, when it changed since the last call.
    /// Recording an id whose entry was then refused only skips that id.
    pub(crate) fn record(&mut self) -> Option<WriteOp> {
        (self.last != self.recorded).then(|| {
            self.recorded = self.last;
            WriteOp::Put {
                tree: Tree::Meta,
                key: ARCHIVE_LAST_ID_KEY.to_vec(),
                value: self.last.to_be_bytes().to_vec(),
            }
        })
    }
}

/// Microseconds since the Unix epoch, the floor for new archive ids (0 if the clock is broken).
fn now_unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The smallest id an entry written at `time` can have: its microseconds since the epoch
/// (0 before the epoch).
pub(crate) fn id_for_time(time: OffsetDateTime) -> u64 {
    let micros = time.unix_timestamp_nanos() / 1_000;
    u64::try_from(micros.max(0)).unwrap_or(u64::MAX)
}

/// The time an id was handed out at (later ids of a burst are a few microseconds ahead);
/// `None` for an id beyond the calendar.
pub(crate) fn time_of_id(id: u64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(id) * 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_clock_and_never_repeat() {
        let mut ids = ArchiveIds::after(0);
        let first = ids.next().expect("an id");
        let second = ids.next().expect("an id");
        assert!(first >= id_for_time(OffsetDateTime::UNIX_EPOCH + time::Duration::days(365)));
        assert!(second > first);
    }

    #[test]
    fn ids_stay_above_a_last_id_ahead_of_the_clock() {
        let ahead = u64::MAX / 2;
        let mut ids = ArchiveIds::after(ahead);
        assert_eq!(ids.next().expect("an id"), ahead + 1);
        assert!(ids.record().is_some());
        assert!(ids.record().is_none(), "nothing new to record");
    }

    #[test]
    fn id_for_time_and_time_of_id_are_inverse_to_the_microsecond() {
        let time = time::macros::datetime!(2024-05-06 07:08:09.123456 UTC);
        let id = id_for_time(time);
        assert_eq!(id, 1_714_979_289_123_456);
        assert_eq!(time_of_id(id), Some(time));
        assert_eq!(
            id_for_time(OffsetDateTime::UNIX_EPOCH - time::Duration::days(1)),
            0
        );
        assert_eq!(time_of_id(u64::MAX), None);
    }
}
