//! The console's sessions: random ids, bounded in number and lifetime, in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::config::AdminRole;

struct Session {
    token: String,
    role: AdminRole,
    csrf: String,
    last: Instant,
}

/// The console's sessions, bounded in number and lifetime.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    pub(super) ttl: Duration,
    max: usize,
}

/// A live session as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub token: String,
    pub role: AdminRole,
    pub csrf: String,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Sessions {
    pub fn new(ttl: Duration, max: usize) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            ttl,
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `token`; answers its id. Expired sessions go first, then, at
    /// the bound, the least recently used.
    pub fn create(&self, token: &str, role: AdminRole, now: Instant) -> String {
        let mut map = self.lock();
        map.retain(|_, s| now.saturating_duration_since(s.last) < self.ttl);
        while map.len() >= self.max {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        let id = random_hex();
        map.insert(
            id.clone(),
            Session {
                token: token.to_string(),
                role,
                csrf: random_hex(),
                last: now,
            },
        );
        id
    }

    /// The live session `id`, its expiry slid to `now`.
    pub fn get(&self, id: &str, now: Instant) -> Option<Live> {
        let mut map = self.lock();
        let s = map.get_mut(id)?;
        if now.saturating_duration_since(s.last) >= self.ttl {
            map.remove(id);
            return None;
        }
        s.last = now;
        Some(Live {
            token: s.token.clone(),
            role: s.role,
            csrf: s.csrf.clone(),
        })
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
