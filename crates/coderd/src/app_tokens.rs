//! Signed app tokens: how a browser signed in to the dashboard gets into a subdomain app,
//! whose host never receives the dashboard's session cookie.
//!
//! 1. A subdomain request without a session is redirected to the dashboard's
//!    `/api/v2/applications/auth-redirect?redirect_uri=...`.
//! 2. There the signed-in user gets a one-minute *exchange* token for that host, appended to
//!    the redirect back as `coder_application_connect_api_key`.
//! 3. The subdomain trades it for an *app* cookie, valid for that host only and for an hour,
//!    and redirects to the clean URL. Requests carrying the cookie need no session lookup.
//!
//! Tokens are `base64url(JSON claims).base64url(HMAC-SHA256(claims))` with a key kept in the
//! database (so every replica, and a restarted server, accepts them).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The query parameter that carries an exchange token.
pub(crate) const EXCHANGE_PARAM: &str = "coder_application_connect_api_key";
/// The subdomain cookie that carries an app token.
pub(crate) const APP_COOKIE: &str = "coder_subdomain_app_session_token";
/// How long an exchange token lives: one redirect.
pub(crate) const EXCHANGE_SECONDS: i64 = 60;
/// How long an app cookie lives before the browser goes through the exchange again (which
/// re-checks the user's access).
pub(crate) const APP_SECONDS: i64 = 3600;

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// `exchange` or `app`.
    pub(crate) kind: String,
    /// The user.
    pub(crate) user_id: Uuid,
    /// The only host it is good for.
    pub(crate) host: String,
    /// Unix seconds after which it is refused.
    pub(crate) expires: i64,
}

/// Signs and checks tokens with the deployment's key.
#[derive(Clone)]
pub(crate) struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub(crate) fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    pub(crate) fn sign(&self, claims: &Claims) -> String {
        let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mac = B64.encode(hmac_sha256(&self.key, payload.as_bytes()));
        format!("{payload}.{mac}")
    }

    /// The claims, if the signature holds, the token is of `kind`, for `host`, and unexpired.
    pub(crate) fn verify(&self, token: &str, kind: &str, host: &str, now: i64) -> Option<Claims> {
        let (payload, mac) = token.split_once('.')?;
        let given = B64.decode(mac).ok()?;
        let expected = hmac_sha256(&self.key, payload.as_bytes());
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_slice(),
            expected.as_slice(),
        )) {
            return None;
        }
        let claims: Claims = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        (claims.kind == kind && claims.host.eq_ignore_ascii_case(host) && claims.expires > now)
            .then_some(claims)
    }
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tokens_are_bound_to_kind_host_time_and_key() {
        let signer = Signer::new(vec![7; 32]);
        let claims = Claims {
            kind: "app".into(),
            user_id: Uuid::from_u128(1),
            host: "code--main--dev--alice.apps.example.com".into(),
            expires: 1000,
        };
        let token = signer.sign(&claims);
        let host = claims.host.as_str();
        assert_eq!(
            signer.verify(&token, "app", host, 999),
            Some(claims.clone())
        );
        assert_eq!(signer.verify(&token, "app", host, 1000), None, "expired");
        assert_eq!(
            signer.verify(&token, "exchange", host, 999),
            None,
            "wrong kind"
        );
        assert_eq!(
            signer.verify(&token, "app", "other.apps.example.com", 999),
            None
        );
        assert_eq!(
            Signer::new(vec![8; 32]).verify(&token, "app", host, 999),
            None
        );
        let tampered = token.replacen('e', "f", 1);
        assert_eq!(signer.verify(&tampered, "app", host, 999), None);
    }
}
