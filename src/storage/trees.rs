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
}

impl Tree {
    /// All trees, for backends that create them up front.
    pub const ALL: [Tree; 4] = [Tree::Meta, Tree::Kv, Tree::Map, Tree::Archive];

    /// Position of the tree in [`Tree::ALL`], for backends that keep their trees in an array.
    pub fn index(self) -> usize {
        match self {
            Tree::Meta => 0,
            Tree::Kv => 1,
            Tree::Map => 2,
            Tree::Archive => 3,
        }
    }

    /// The on-disk name of the tree.
    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Kv => "kv",
            Tree::Map => "map",
            Tree::Archive => "archive",
        }
    }
}
