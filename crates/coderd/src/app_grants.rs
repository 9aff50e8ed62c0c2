//! What signed app tokens do for browsers, for clients that send the session token in a header
//! on every request (the CLI, scripts, `curl`) and keep no cookies: an authorized (token, app)
//! pair is remembered for as long as a signed token would live, so the next requests skip the
//! session lookup and the database. Keys are hashes of the token and the app's scope; the
//! table is bounded and simply emptied when full.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use apps::client::Upstream;
use sha2::{Digest, Sha256};

/// Entries kept at most.
const CAPACITY: usize = 10_000;

pub(crate) type GrantKey = [u8; 32];

/// The key for a session token on one app.
pub(crate) fn key(token: &str, scope: &str) -> GrantKey {
    Sha256::new()
        .chain_update(token.as_bytes())
        .chain_update([0])
        .chain_update(scope.as_bytes())
        .finalize()
        .into()
}

#[derive(Default)]
pub(crate) struct AppGrants {
    grants: Mutex<HashMap<GrantKey, (Upstream, i64)>>,
}

impl AppGrants {
    /// The upstream granted to `key`, unless it expired by `now` (unix seconds).
    pub(crate) fn get(&self, key: &GrantKey, now: i64) -> Option<Upstream> {
        let grants = self.grants.lock().unwrap_or_else(PoisonError::into_inner);
        grants
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(upstream, _)| upstream.clone())
    }

    /// Remembers a grant until `expires`.
    pub(crate) fn insert(&self, key: GrantKey, upstream: Upstream, expires: i64) {
        let mut grants = self.grants.lock().unwrap_or_else(PoisonError::into_inner);
        if grants.len() >= CAPACITY {
            grants.clear();
        }
        grants.insert(key, (upstream, expires));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_per_token_and_app_and_expire() {
        let grants = AppGrants::default();
        let upstream = Upstream {
            agent_id: uuid::Uuid::from_u128(1),
            port: 8080,
            https: false,
            base_path: String::new(),
        };
        grants.insert(key("token", "host/@a/dev/apps/x"), upstream.clone(), 100);
        assert_eq!(
            grants.get(&key("token", "host/@a/dev/apps/x"), 99),
            Some(upstream)
        );
        assert_eq!(grants.get(&key("token", "host/@a/dev/apps/x"), 100), None);
        assert_eq!(grants.get(&key("other", "host/@a/dev/apps/x"), 99), None);
        assert_eq!(grants.get(&key("token", "host/@a/dev/apps/y"), 99), None);
    }
}
