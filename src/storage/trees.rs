//! Every tree (table) the server stores data in, listed once.

/// A named tree of the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tree {
    /// Schema version and other server-wide metadata.
    Meta,
    /// Key-value stores: one value per (host, module, user).
    Kv,
    /// Map stores: many keyed values per (host, module, user).
    Map,
    /// Archive stores: time-ordered entries per (host, module, user).
    Archive,
    /// Archive entries by conversation partner: (host, module, user, partner, id) → nothing,
    /// so a MAM query `with` a JID reads only that conversation.
    ArchiveByPartner,
    /// The partner and class an archive entry was written with, under the entry's own key, so
    /// deleting the entry finds its index key and counters.
    ArchiveEntryTags,
    /// Entry and byte totals per (host, module, user), per partner and per class, so quota
    /// checks and counts read two numbers instead of the archive.
    ArchiveCounts,
}

impl Tree {
    /// All trees, for backends that create them up front.
    pub const ALL: [Tree; 7] = [
        Tree::Meta,
        Tree::Kv,
        Tree::Map,
        Tree::Archive,
        Tree::ArchiveByPartner,
        Tree::ArchiveEntryTags,
        Tree::ArchiveCounts,
    ];

    /// Position of the tree in [`Tree::ALL`], for backends that keep their trees in an array.
    pub fn index(self) -> usize {
        match self {
            Tree::Meta => 0,
            Tree::Kv => 1,
            Tree::Map => 2,
            Tree::Archive => 3,
            Tree::ArchiveByPartner => 4,
            Tree::ArchiveEntryTags => 5,
            Tree::ArchiveCounts => 6,
        }
    }

    /// The on-disk name of the tree.
    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Kv => "kv",
            Tree::Map => "map",
            Tree::Archive => "archive",
            Tree::ArchiveByPartner => "archive_by_partner",
            Tree::ArchiveEntryTags => "archive_entry_tags",
            Tree::ArchiveCounts => "archive_counts",
        }
    }
}
