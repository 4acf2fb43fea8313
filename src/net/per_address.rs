//! Connections counted per client address, so that one host cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per address, with a ceiling (0 means no ceiling).
#[derive(Debug, Default)]
pub struct PerAddress {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one connection's place; releases it when dropped.
#[derive(Debug)]
pub struct AddressSlot {
    counter: Arc<PerAddress>,
    address: IpAddr,
}

impl PerAddress {
    /// A counter allowing `limit` connections per address (0: unlimited).
    pub fn new(limit: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a place for `address`, or `None` when it already has `limit` connections.
    pub fn acquire(self: &Arc<Self>, address: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(address).or_insert(0);
        if self.limit != 0 && *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counter: self.clone(),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_beyond_the_limit_and_frees_on_drop() {
        let counter = PerAddress::new(1);
        let address: IpAddr = [192, 0, 2, 1].into();
        let first = counter.acquire(address).expect("first");
        assert!(counter.acquire(address).is_none());
        assert!(counter.acquire([192, 0, 2, 2].into()).is_some());
        drop(first);
        assert!(counter.acquire(address).is_some());
    }
}
