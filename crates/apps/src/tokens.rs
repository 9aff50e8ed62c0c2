//! Signed app tokens: how a browser signed in to the dashboard gets into a subdomain app,
//! whose host never receives the dashboard's session cookie, and how app requests after the
//! first skip the database.
//!
//! 1. A subdomain request without a session is redirected to the dashboard's
//!    `/api/v2/applications/auth-redirect?redirect_uri=...`.
//! 2. There the signed-in user gets a one-minute *exchange* token for that host, appended to
//!    the redirect back as `coder_application_connect_api_key`.
//! 3. The subdomain trades it for an *app* cookie, valid for that host only and for an hour,
//!    and redirects to the clean URL.
//! 4. Once a request to an app has been authorized the long way (session or app cookie, then
//!    the workspace, build, agent and sharing level from the database), the response carries a
//!    one-minute *signed* token naming the app and where it lives (agent, port). Requests that
//!    bring it back go straight to the tunnel: no database, no session lookup. A minute bounds
//!    how long a revoked share or a deleted workspace stays reachable.
//!
//! Tokens are `base64url(JSON claims).base64url(HMAC-SHA256(claims))` with a key kept in the
//! database (so every replica, and a restarted server, accepts them).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::client::Upstream;

/// The query parameter that carries an exchange token.
pub const EXCHANGE_PARAM: &str = "coder_application_connect_api_key";
/// The subdomain cookie that carries an app token.
pub const APP_COOKIE: &str = "coder_subdomain_app_session_token";
/// The cookie that carries a signed token for one app.
pub const SIGNED_COOKIE: &str = "coder_signed_app_token";
/// The query parameter a terminal WebSocket may carry its signed token in (browsers cannot set
/// headers on WebSockets, and a proxy on another site cannot read the dashboard's cookie).
pub const SIGNED_TERMINAL_PARAM: &str = "coder_signed_app_token_23db1dde";
/// How long an exchange token lives: one redirect.
pub const EXCHANGE_SECONDS: i64 = 60;
/// How long an app cookie lives before the browser goes through the exchange again (which
/// re-checks the user's access).
pub const APP_SECONDS: i64 = 3600;
/// How long a signed app token lets requests skip the authorization checks.
pub const SIGNED_SECONDS: i64 = 60;

/// The scope of a signed token for the web terminal of `agent_id`.
pub fn terminal_scope(agent_id: uuid::Uuid) -> String {
    format!("terminal:{agent_id}")
}

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One redirect from the dashboard to a subdomain app.
    Exchange,
    /// A user's identity on one subdomain app host.
    App,
    /// An authorized app and its upstream.
    Signed,
}

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub kind: Kind,
    /// The user; nil for anonymous access to a public app.
    pub user_id: Uuid,
    /// The only app it is good for: a subdomain app's host, or a path app's
    /// `/@USER/WORKSPACE[.AGENT]/apps/SLUG` under the access URL's host.
    pub scope: String,
    /// Unix seconds after which it is refused.
    pub expires: i64,
    /// Where the app lives ([`Kind::Signed`] only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
}

/// `Set-Cookie` for a signed app token: `HttpOnly`, `SameSite=Lax`, for `path` on the host
/// that sets it, living as long as the token.
pub fn signed_cookie(token: &str, path: &str, secure: bool) -> Option<axum::http::HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    axum::http::HeaderValue::from_str(&format!(
        "{SIGNED_COOKIE}={token}; Path={path}; Max-Age={SIGNED_SECONDS}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

/// `Set-Cookie` for an app cookie (a user's identity on one app host): host-only, so no other
/// subdomain (nor the dashboard) ever sees it.
pub fn app_cookie(token: &str, secure: bool) -> Option<axum::http::HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    axum::http::HeaderValue::from_str(&format!(
        "{APP_COOKIE}={token}; Path=/; Max-Age={APP_SECONDS}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

/// Trades an exchange token (from `uri`'s query) for an app cookie for `host`, and sends the
/// browser on to the same URL without the token. `None` when the token is not a valid
/// exchange token for `host`.
pub fn exchange(
    signer: &Signer,
    uri: &axum::http::Uri,
    host: &str,
    token: &str,
    secure: bool,
    now: i64,
) -> Option<axum::response::Response> {
    use axum::response::IntoResponse;
    let claims = signer.verify(token, Kind::Exchange, host, now)?;
    let app_token = signer.sign(&Claims {
        kind: Kind::App,
        user_id: claims.user_id,
        scope: host.to_owned(),
        expires: now + APP_SECONDS,
        upstream: None,
    });
    let query: Vec<(String, String)> = uri
        .query()
        .map(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .filter(|(name, _)| name != EXCHANGE_PARAM)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let mut clean = uri.path().to_owned();
    if !query.is_empty() {
        clean.push('?');
        clean.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish(),
        );
    }
    let mut response = axum::response::Redirect::to(&clean).into_response();
    if let Some(value) = app_cookie(&app_token, secure) {
        response
            .headers_mut()
            .insert(axum::http::header::SET_COOKIE, value);
    }
    Some(response)
}

/// Signs and checks tokens with the deployment's key.
#[derive(Clone)]
pub struct Signer {
    key: hmac::Key,
    recent: Arc<Recent>,
}

impl Signer {
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            recent: Arc::default(),
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mac = B64.encode(hmac::sign(&self.key, payload.as_bytes()));
        format!("{payload}.{mac}")
    }

    /// The claims, if the signature holds, the token is of `kind`, for `scope`, and unexpired.
    pub fn verify(&self, token: &str, kind: Kind, scope: &str, now: i64) -> Option<Claims> {
        let claims = match self.recent.get(token) {
            Some(claims) => claims,
            None => {
                let claims = self.decode(token)?;
                self.recent.put(token, &claims);
                claims
            }
        };
        (claims.kind == kind && claims.scope.eq_ignore_ascii_case(scope) && claims.expires > now)
            .then_some(claims)
    }

    /// The claims of a token whose signature holds, whatever they say.
    fn decode(&self, token: &str) -> Option<Claims> {
        let (payload, mac) = token.split_once('.')?;
        hmac::verify(&self.key, payload.as_bytes(), &B64.decode(mac).ok()?).ok()?;
        serde_json::from_slice(&B64.decode(payload).ok()?).ok()
    }
}

/// Tokens whose signature held lately, so that a browser's burst of requests with one signed
/// token pays for the HMAC, base64 and JSON once (that was a twentieth of the server's CPU per
/// proxied request). Only what a signature vouched for gets in; whoever reads an entry still
/// checks kind, scope and expiry. A few slots, each holding one token, picked by the token's
/// next-to-last character: six bits of its MAC, which reach every slot (the last character
/// carries only four and reached 11). A miss only costs the full check.
#[derive(Default)]
struct Recent {
    slots: [std::sync::Mutex<Option<Verified>>; 16],
}

/// A token and what it said.
type Verified = (Box<str>, Claims);

impl Recent {
    fn slot(&self, token: &str) -> &std::sync::Mutex<Option<Verified>> {
        let picked = token.as_bytes().iter().rev().nth(1).copied();
        &self.slots[usize::from(picked.unwrap_or_default()) % self.slots.len()]
    }

    fn get(&self, token: &str) -> Option<Claims> {
        let slot = self.slot(token).lock().ok()?;
        let (known, claims) = slot.as_ref()?;
        let (known_payload, known_mac) = known.rsplit_once('.')?;
        let (payload, mac) = token.rsplit_once('.')?;
        // The claims are no secret, the MAC is: the slot holds someone's valid token, and a
        // caller must not learn its MAC byte by byte from how long a wrong guess took.
        (payload == known_payload && bool::from(mac.as_bytes().ct_eq(known_mac.as_bytes())))
            .then(|| claims.clone())
    }

    fn put(&self, token: &str, claims: &Claims) {
        if let Ok(mut slot) = self.slot(token).lock() {
            *slot = Some((token.into(), claims.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_kind_host_time_and_key() {
        let signer = Signer::new(&[7; 32]);
        let claims = Claims {
            kind: Kind::App,
            user_id: Uuid::from_u128(1),
            scope: "code--main--dev--alice.apps.example.com".into(),
            expires: 1000,
            upstream: None,
        };
        let token = signer.sign(&claims);
        let host = claims.scope.as_str();
        assert_eq!(
            signer.verify(&token, Kind::App, host, 999),
            Some(claims.clone())
        );
        assert_eq!(
            signer.verify(&token, Kind::App, host, 1000),
            None,
            "expired"
        );
        assert_eq!(
            signer.verify(&token, Kind::Exchange, host, 999),
            None,
            "wrong kind"
        );
        assert_eq!(
            signer.verify(&token, Kind::App, "other.apps.example.com", 999),
            None
        );
        assert_eq!(
            Signer::new(&[8; 32]).verify(&token, Kind::App, host, 999),
            None
        );
        let tampered = token.replacen('e', "f", 1);
        assert_eq!(signer.verify(&tampered, Kind::App, host, 999), None);
        // The real token is remembered by now; a forged MAC that lands in its slot (the same
        // last two characters) must still be refused.
        let mut forged = token.clone().into_bytes();
        let third_last = forged.len() - 3;
        forged[third_last] = if forged[third_last] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(signer.verify(&forged, Kind::App, host, 999), None);
        assert_eq!(
            signer.verify(&token, Kind::App, host, 999),
            Some(claims.clone()),
            "the real one still passes"
        );
    }
}
