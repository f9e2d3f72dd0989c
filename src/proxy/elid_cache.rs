//! A short-lived memory of refused unknown `elid`s, per (reseller, id).
//!
//! An id the gateway never recorded costs one upstream `func=certificate` list call to
//! check. A billing that keeps sending a foreign or made-up id would pay that call every
//! time; with this cache it pays it once per [`REFUSAL_TTL`].
//!
//! The cache is only asked about ids the store does not know: the ownership check reads
//! the store first, so a certificate the gateway records (order, reconciliation, sync,
//! lookup) passes at once even while an older refusal of its id is still remembered.
//! The cost of the cache is that a certificate created directly at the upstream under an
//! id refused a moment before is refused until the refusal expires.

use std::time::{Duration, Instant};

use dashmap::DashMap;

/// How long a refusal is remembered.
pub const REFUSAL_TTL: Duration = Duration::from_secs(30);

/// How many refusals are remembered at most.
pub const REFUSAL_CAPACITY: usize = 10_000;

/// Refused (reseller, id) pairs and when they were refused.
#[derive(Debug)]
pub struct RefusedElids {
    refused: DashMap<(String, u64), Instant>,
    ttl: Duration,
    capacity: usize,
}

impl Default for RefusedElids {
    fn default() -> Self {
        RefusedElids::new(REFUSAL_TTL, REFUSAL_CAPACITY)
    }
}

impl RefusedElids {
    pub fn new(ttl: Duration, capacity: usize) -> RefusedElids {
        RefusedElids {
            refused: DashMap::new(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// Whether `id` was refused to `reseller` less than the TTL before `now`. An expired
    /// refusal is forgotten.
    pub fn is_refused(&self, reseller: &str, id: u64, now: Instant) -> bool {
        let key = (reseller.to_string(), id);
        let fresh = match self.refused.get(&key) {
            Some(at) => now.saturating_duration_since(*at) < self.ttl,
            None => return false,
        };
        if !fresh {
            self.refused
                .remove_if(&key, |_, at| now.saturating_duration_since(*at) >= self.ttl);
        }
        fresh
    }

    /// Remember that `id` was refused to `reseller` at `now`. When the cache is full,
    /// expired refusals are dropped first; when it is still full, everything is forgotten
    /// (memory stays bounded; the worst case is one more upstream lookup per id).
    pub fn remember(&self, reseller: &str, id: u64, now: Instant) {
        if self.refused.len() >= self.capacity {
            self.refused
                .retain(|_, at| now.saturating_duration_since(*at) < self.ttl);
            if self.refused.len() >= self.capacity {
                self.refused.clear();
            }
        }
        self.refused.insert((reseller.to_string(), id), now);
    }

    /// How many refusals are remembered (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.refused.len()
    }

    pub fn is_empty(&self) -> bool {
        self.refused.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_remembered_until_the_ttl_passes() {
        let c = RefusedElids::new(Duration::from_secs(30), 10);
        let t0 = Instant::now();
        assert!(!c.is_refused("acme", 5001, t0));
        c.remember("acme", 5001, t0);
        assert!(c.is_refused("acme", 5001, t0));
        assert!(c.is_refused("acme", 5001, t0 + Duration::from_secs(29)));
        assert!(!c.is_refused("acme", 5001, t0 + Duration::from_secs(30)));
        // the expired refusal was dropped
        assert!(c.is_empty());
    }

    #[test]
    fn refusals_are_per_reseller_and_per_id() {
        let c = RefusedElids::new(Duration::from_secs(30), 10);
        let t0 = Instant::now();
        c.remember("acme", 5001, t0);
        assert!(!c.is_refused("globex", 5001, t0));
        assert!(!c.is_refused("acme", 5002, t0));
    }

    #[test]
    fn a_new_refusal_restarts_the_ttl() {
        let c = RefusedElids::new(Duration::from_secs(30), 10);
        let t0 = Instant::now();
        c.remember("acme", 5001, t0);
        c.remember("acme", 5001, t0 + Duration::from_secs(20));
        assert!(c.is_refused("acme", 5001, t0 + Duration::from_secs(40)));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = RefusedElids::new(Duration::from_secs(30), 3);
        let t0 = Instant::now();
        for id in 0..3 {
            c.remember("acme", id, t0);
        }
        assert_eq!(c.len(), 3);
        // full of fresh refusals: everything is forgotten to make room
        c.remember("acme", 100, t0);
        assert_eq!(c.len(), 1);
        assert!(c.is_refused("acme", 100, t0));
        assert!(!c.is_refused("acme", 0, t0));
        // full with expired refusals among them: only those are dropped
        c.remember("acme", 101, t0 + Duration::from_secs(20));
        c.remember("acme", 102, t0 + Duration::from_secs(20));
        let later = t0 + Duration::from_secs(35);
        c.remember("acme", 103, later);
        assert_eq!(c.len(), 3);
        assert!(!c.is_refused("acme", 100, later));
        for id in [101, 102, 103] {
            assert!(c.is_refused("acme", id, later), "{id}");
        }
        for n in 0..1000 {
            c.remember("globex", n, later);
            assert!(c.len() <= 3);
        }
    }
}
