//! The key layout of the typed stores: `host 0x00 module 0x00 user 0x00 [rest]`.
//!
//! Archive keys put a big-endian `u64` id after the user prefix, so that key order is id
//! order; the partner index puts `partner 0x00` between the two; counters put one marker
//! byte and a name after the user prefix (none for the user's total).

use crate::storage::StorageError;

/// Ends each name in a key; names never contain it.
const SEPARATOR: u8 = 0x00;

/// A byte that never occurs in UTF-8, so `module_prefix + PAST_NAMES` sorts after every key of
/// that module and before the next module.
const PAST_NAMES: u8 = 0xFF;

/// The (host, module) a typed store is scoped to.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    host: String,
    module: &'static str,
}

impl Scope {
    /// Scopes a store; the names are checked when a key is built.
    pub(crate) fn new(host: &str, module: &'static str) -> Self {
        Scope {
            host: host.to_owned(),
            module,
        }
    }

    /// `host 0x00 module 0x00`: the prefix of every key of this store.
    pub(crate) fn prefix(&self) -> Result<Vec<u8>, StorageError> {
        let mut key = host_prefix(&self.host)?;
        push_part(&mut key, self.module, "module")?;
        Ok(key)
    }

    /// `host 0x00 module 0x00 user 0x00`: the prefix of every key `user` has in this store.
    pub(crate) fn user_prefix(&self, user: &str) -> Result<Vec<u8>, StorageError> {
        let mut key = self.prefix()?;
        push_part(&mut key, user, "user")?;
        Ok(key)
    }
}

/// `host 0x00`: the prefix of every key of a host.
pub(crate) fn host_prefix(host: &str) -> Result<Vec<u8>, StorageError> {
    let mut key = Vec::with_capacity(host.len() + 1);
    push_part(&mut key, host, "host")?;
    Ok(key)
}

/// Refuses a name containing the separator; `what` says which name, for the error.
pub(crate) fn check_part(part: &str, what: &'static str) -> Result<(), StorageError> {
    if part.as_bytes().contains(&SEPARATOR) {
        return Err(StorageError::InvalidKeyPart(what));
    }
    Ok(())
}

/// Appends `part` and its separator to `key`.
pub(crate) fn push_part(
    key: &mut Vec<u8>,
    part: &str,
    what: &'static str,
) -> Result<(), StorageError> {
    check_part(part, what)?;
    key.extend_from_slice(part.as_bytes());
    key.push(SEPARATOR);
    Ok(())
}

/// The name that starts right after `prefix` in `key`, e.g. the user after a scope prefix.
pub(crate) fn name_after(key: &[u8], prefix: &[u8]) -> Result<String, StorageError> {
    let rest = key
        .strip_prefix(prefix)
        .ok_or_else(|| StorageError::Codec("key outside its prefix".into()))?;
    let end = rest
        .iter()
        .position(|byte| *byte == SEPARATOR)
        .ok_or_else(|| StorageError::Codec("key name without separator".into()))?;
    String::from_utf8(rest[..end].to_vec()).map_err(StorageError::codec)
}

/// Splits `name 0x00 rest` into the name and the rest, both as text.
pub(crate) fn split_name(key: &[u8]) -> Result<(String, String), StorageError> {
    let end = key
        .iter()
        .position(|byte| *byte == SEPARATOR)
        .ok_or_else(|| StorageError::Codec("key name without separator".into()))?;
    let name = String::from_utf8(key[..end].to_vec()).map_err(StorageError::codec)?;
    let rest = String::from_utf8(key[end + 1..].to_vec()).map_err(StorageError::codec)?;
    Ok((name, rest))
}

/// `host 0x00 module 0x00` of `key`, whose host prefix is `host_prefix_len` bytes long.
pub(crate) fn module_prefix_of(
    key: &[u8],
    host_prefix_len: usize,
) -> Result<Vec<u8>, StorageError> {
    let module_len = key
        .get(host_prefix_len..)
        .and_then(|rest| rest.iter().position(|byte| *byte == SEPARATOR))
        .ok_or_else(|| StorageError::Codec("key without a module".into()))?;
    Ok(key[..host_prefix_len + module_len + 1].to_vec())
}

/// A key sorting after every key under `module_prefix` and before any other module's keys.
pub(crate) fn past_module(mut module_prefix: Vec<u8>) -> Vec<u8> {
    module_prefix.push(PAST_NAMES);
    module_prefix
}

/// Length of the big-endian id that ends every archive key.
const ARCHIVE_ID_LEN: usize = 8;

/// Marks a counter per conversation partner in [`crate::storage::Tree::ArchiveCounts`].
const PARTNER_COUNTER: u8 = b'p';

/// Marks a counter per class of entries in [`crate::storage::Tree::ArchiveCounts`].
const CLASS_COUNTER: u8 = b'c';

/// `user_prefix id`: the key of an archive entry.
pub(crate) fn archive_entry_key(user_prefix: &[u8], id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(user_prefix.len() + ARCHIVE_ID_LEN);
    key.extend_from_slice(user_prefix);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The id that ends an archive key (an entry or its partner index key).
pub(crate) fn archive_id_of(key: &[u8]) -> Result<u64, StorageError> {
    let start = key
        .len()
        .checked_sub(ARCHIVE_ID_LEN)
        .ok_or_else(|| StorageError::Codec("archive key shorter than an id".into()))?;
    decode_id(&key[start..])
}

/// The user prefix of an archive entry key: everything before its id.
pub(crate) fn archive_user_prefix_of(key: &[u8]) -> Result<&[u8], StorageError> {
    let end = key
        .len()
        .checked_sub(ARCHIVE_ID_LEN)
        .ok_or_else(|| StorageError::Codec("archive key shorter than an id".into()))?;
    Ok(&key[..end])
}

/// Reads a big-endian `u64` id.
pub(crate) fn decode_id(bytes: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; ARCHIVE_ID_LEN] = bytes
        .try_into()
        .map_err(|_| StorageError::Codec("archive id is not eight bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// `user_prefix partner 0x00`: the prefix of the index keys of one conversation.
pub(crate) fn partner_prefix(user_prefix: &[u8], partner: &str) -> Result<Vec<u8>, StorageError> {
    let mut key = user_prefix.to_vec();
    push_part(&mut key, partner, "partner")?;
    Ok(key)
}

/// `user_prefix`: the key of the counter of all the user's entries.
pub(crate) fn user_counter_key(user_prefix: &[u8]) -> Vec<u8> {
    user_prefix.to_vec()
}

/// The key of the counter of the user's entries with `partner`.
pub(crate) fn partner_counter_key(
    user_prefix: &[u8],
    partner: &str,
) -> Result<Vec<u8>, StorageError> {
    named_counter_key(user_prefix, PARTNER_COUNTER, partner, "partner")
}

/// The key of the counter of the user's entries of `class`.
pub(crate) fn class_counter_key(user_prefix: &[u8], class: &str) -> Result<Vec<u8>, StorageError> {
    named_counter_key(user_prefix, CLASS_COUNTER, class, "class")
}

/// `user_prefix marker name 0x00`: one named counter of the user.
fn named_counter_key(
    user_prefix: &[u8],
    marker: u8,
    name: &str,
    what: &'static str,
) -> Result<Vec<u8>, StorageError> {
    let mut key = user_prefix.to_vec();
    key.push(marker);
    push_part(&mut key, name, what)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_prefix_separates_every_name() {
        let scope = Scope::new("example.org", "roster");
        let key = scope.user_prefix("alice").expect("valid names");
        assert_eq!(key, b"example.org\0roster\0alice\0");
    }

    #[test]
    fn nul_in_a_name_is_refused() {
        let scope = Scope::new("example.org", "roster");
        assert!(matches!(
            scope.user_prefix("al\0ice"),
            Err(StorageError::InvalidKeyPart("user"))
        ));
        assert!(matches!(
            Scope::new("exa\0mple.org", "roster").prefix(),
            Err(StorageError::InvalidKeyPart("host"))
        ));
    }

    #[test]
    fn name_after_reads_the_user_of_a_key() {
        let scope = Scope::new("h", "m");
        let prefix = scope.prefix().expect("valid names");
        let key = scope.user_prefix("bob").expect("valid names");
        assert_eq!(name_after(&key, &prefix).expect("well formed"), "bob");
    }

    #[test]
    fn archive_keys_end_with_the_id_in_big_endian() {
        let user = Scope::new("h", "m")
            .user_prefix("alice")
            .expect("valid names");
        let key = archive_entry_key(&user, 0x0102);
        assert_eq!(key, b"h\0m\0alice\0\0\0\0\0\0\0\x01\x02");
        assert_eq!(archive_id_of(&key).expect("an id"), 0x0102);
        assert_eq!(archive_user_prefix_of(&key).expect("an id"), user);
        assert!(archive_entry_key(&user, 1) < archive_entry_key(&user, 256));
        assert!(matches!(
            partner_prefix(&user, "b\0b"),
            Err(StorageError::InvalidKeyPart("partner"))
        ));
    }

    #[test]
    fn counter_keys_of_a_user_are_distinct_and_under_its_prefix() {
        let user = Scope::new("h", "m")
            .user_prefix("alice")
            .expect("valid names");
        let total = user_counter_key(&user);
        let partner = partner_counter_key(&user, "x").expect("valid name");
        let class = class_counter_key(&user, "x").expect("valid name");
        assert!(total != partner && partner != class && class != total);
        assert!([&partner, &class].iter().all(|key| key.starts_with(&user)));
    }

    #[test]
    fn past_module_sorts_between_modules() {
        let module = Scope::new("h", "ab").prefix().expect("valid names");
        let longer_module = Scope::new("h", "abc").prefix().expect("valid names");
        let last_user_key = Scope::new("h", "ab")
            .user_prefix("\u{10FFFF}")
            .expect("valid names");
        let past = past_module(module_prefix_of(&module, 2).expect("has a module"));
        assert!(last_user_key < past);
        assert!(past < longer_module);
    }
}
