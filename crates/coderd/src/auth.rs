//! Authentication: session tokens (`id-secret`, only sha256 of the secret stored), where a
//! request may carry one, the `CurrentUser` extractor, and the session cookie.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::FromRequestParts;
use chrono::Utc;
use http::request::Parts;
use http::{HeaderValue, Method, header};
use rand::Rng;
use rand::distr::Alphanumeric;
use sdk::{Role, Secret};
use sha2::{Digest, Sha256};
use store::{ApiKeyRow, NewApiKey, UserRow};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::authz::Subject;
use crate::error::ApiError;
use crate::state::AppState;

const ID_LEN: usize = 10;
const SECRET_LEN: usize = 22;
/// Usage is written back at most this often per key, so reads stay reads.
const USAGE_WRITE_INTERVAL: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// A token split into its public id and its secret.
pub(crate) struct ParsedToken<'a> {
    pub(crate) id: &'a str,
    pub(crate) secret: &'a str,
}

/// Splits `id-secret`; `None` when the shape is wrong.
pub(crate) fn parse_token(token: &str) -> Option<ParsedToken<'_>> {
    let (id, secret) = token.split_once('-')?;
    let well_formed = |part: &str, len: usize| {
        part.len() == len && part.bytes().all(|byte| byte.is_ascii_alphanumeric())
    };
    (well_formed(id, ID_LEN) && well_formed(secret, SECRET_LEN))
        .then_some(ParsedToken { id, secret })
}

pub(crate) fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

pub(crate) fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// What kind of key to create.
pub(crate) enum KeyKind<'a> {
    /// A login session (sliding expiry).
    Session,
    /// A named long-lived token.
    Token { name: &'a str },
}

/// Creates an API key for `user_id` and returns the row and the whole token (shown once).
pub(crate) async fn create_api_key(
    state: &AppState,
    user_id: Uuid,
    kind: KeyKind<'_>,
    lifetime: Duration,
) -> Result<(ApiKeyRow, Secret), ApiError> {
    let id = random_string(ID_LEN);
    let secret = random_string(SECRET_LEN);
    let lifetime_seconds = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let expires_at = Utc::now()
        .checked_add_signed(chrono::TimeDelta::seconds(lifetime_seconds))
        .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
    let (login_type, token_name) = match kind {
        KeyKind::Session => ("password", ""),
        KeyKind::Token { name } => ("token", name),
    };
    let row = state
        .store
        .insert_api_key(&NewApiKey {
            id: id.clone(),
            hashed_secret: hash_secret(&secret),
            user_id,
            login_type: login_type.to_owned(),
            scope: "all".to_owned(),
            token_name: token_name.to_owned(),
            lifetime_seconds,
            expires_at,
        })
        .await?;
    Ok((row, Secret::new(format!("{id}-{secret}"))))
}

/// Where the token of a request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenSource {
    Header,
    Cookie,
    Query,
}

fn find_token(parts: &Parts) -> Option<(String, TokenSource)> {
    if let Some(value) = parts.headers.get(sdk::SESSION_TOKEN_HEADER)
        && let Ok(token) = value.to_str()
    {
        return Some((token.trim().to_owned(), TokenSource::Header));
    }
    if let Some(token) = cookie(parts, sdk::SESSION_TOKEN_COOKIE) {
        return Some((token, TokenSource::Cookie));
    }
    // Browsers cannot set headers on WebSockets; accept the token in the URL only there, so
    // ordinary URLs with tokens (which end up in logs and history) are not honoured.
    let is_websocket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if is_websocket && let Some(query) = parts.uri.query() {
        return url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == sdk::SESSION_TOKEN_QUERY)
            .map(|(_, value)| (value.into_owned(), TokenSource::Query));
    }
    None
}

/// The value of the named cookie.
pub(crate) fn cookie(parts: &Parts, name: &str) -> Option<String> {
    apps::forward::header_cookie(&parts.headers, name)
}

/// The authenticated user of a request, with the key it used and what it may do.
pub(crate) struct CurrentUser {
    pub(crate) user: UserRow,
    pub(crate) key: ApiKeyRow,
    pub(crate) subject: Subject,
}

pub(crate) fn subject_of(user: &UserRow) -> Subject {
    let roles: BTreeSet<Role> = user
        .rbac_roles
        .iter()
        .filter_map(|name| name.parse().ok())
        .chain([Role::Member])
        .collect();
    Subject {
        user_id: user.id,
        roles,
        organization_ids: user.organization_ids.clone(),
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some((token, source)) = find_token(parts) else {
            return Err(
                ApiError::unauthorized("You are not signed in.").detail(format!(
                    "Send a session token in the {} header or the {} cookie; \
                 'coder login' creates one.",
                    sdk::SESSION_TOKEN_HEADER,
                    sdk::SESSION_TOKEN_COOKIE
                )),
            );
        };
        if source == TokenSource::Cookie && is_cross_site_write(parts, state) {
            return Err(ApiError::forbidden()
                .detail("Cross-site requests may not change anything with a session cookie."));
        }
        authenticate(state, &token).await
    }
}

impl CurrentUser {
    /// The user holding `user_id`'s identity without a session (a signed app cookie): the
    /// user must still exist and not be suspended.
    pub(crate) async fn by_id(state: &AppState, user_id: Uuid) -> Result<UserRow, ApiError> {
        let user = state
            .store
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| ApiError::unauthorized("Your app sign-in is no longer valid."))?;
        if user.status == "suspended" {
            return Err(ApiError::unauthorized(
                "Your account is suspended. Contact an admin to reactivate your account.",
            ));
        }
        Ok(user)
    }
}

/// Checks a session token (from wherever the request carried it) and finds its user.
pub(crate) async fn authenticate(state: &AppState, token: &str) -> Result<CurrentUser, ApiError> {
    {
        let invalid = || {
            ApiError::unauthorized("Your session token is invalid.")
                .detail("Log in again with 'coder login'.")
        };
        let parsed = parse_token(token).ok_or_else(invalid)?;
        let key = state
            .store
            .api_key_by_id(parsed.id)
            .await?
            .ok_or_else(invalid)?;
        let matches: bool = key.hashed_secret.ct_eq(&hash_secret(parsed.secret)).into();
        if !matches {
            return Err(invalid());
        }
        let now = Utc::now();
        if key.expires_at <= now {
            return Err(ApiError::unauthorized("Your session token has expired.")
                .detail("Log in again with 'coder login'."));
        }
        let user = state
            .store
            .user_by_id(key.user_id)
            .await?
            .ok_or_else(invalid)?;
        if user.status == "suspended" {
            return Err(ApiError::unauthorized(
                "Your account is suspended. Contact an admin to reactivate your account.",
            ));
        }
        record_usage(state, &key, &user, now).await?;
        Ok(CurrentUser {
            subject: subject_of(&user),
            user,
            key,
        })
    }
}

/// A state-changing request whose browser says it comes from another site.
fn is_cross_site_write(parts: &Parts, state: &AppState) -> bool {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    if parts
        .headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() == b"cross-site")
    {
        return true;
    }
    let Some(origin) = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return false;
    };
    origin.trim_end_matches('/') != state.config.access_url.origin().ascii_serialization()
}

/// Slides login sessions forward and records use, at most once a minute per key and user.
async fn record_usage(
    state: &AppState,
    key: &ApiKeyRow,
    user: &UserRow,
    now: chrono::DateTime<Utc>,
) -> Result<(), ApiError> {
    let lifetime = chrono::TimeDelta::seconds(key.lifetime_seconds);
    let mut expires_at = key.expires_at;
    if key.login_type == "password" && expires_at - now < lifetime / 2 {
        expires_at = now + lifetime;
    }
    if expires_at != key.expires_at || now - key.last_used > USAGE_WRITE_INTERVAL {
        state
            .store
            .update_api_key_usage(&key.id, now, expires_at)
            .await?;
    }
    if now - user.last_seen_at > USAGE_WRITE_INTERVAL {
        state.store.touch_user_last_seen(user.id).await?;
    }
    Ok(())
}

/// `Set-Cookie` for a new session.
pub(crate) fn session_cookie(token: &Secret, lifetime: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        sdk::SESSION_TOKEN_COOKIE,
        token.expose(),
        lifetime.as_secs()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` removing the session.
pub(crate) fn clear_session_cookie(secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}",
        sdk::SESSION_TOKEN_COOKIE
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A workspace proxy, authenticated by its token (`ID:SECRET` in the
/// `Coder-External-Proxy-Token` header).
pub(crate) struct CurrentProxy(pub(crate) store::WorkspaceProxyRow);

/// A proxy token: the proxy's id and 64 hex characters of secret.
pub(crate) fn new_proxy_token(id: Uuid) -> (Secret, Vec<u8>) {
    let secret: [u8; 32] = rand::random();
    let secret = hex::encode(secret);
    let hash = hash_secret(&secret);
    (Secret::new(format!("{id}:{secret}")), hash)
}

impl FromRequestParts<AppState> for CurrentProxy {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::unauthorized("Invalid workspace proxy token.").detail(format!(
                "Send the token `coder wsproxy create` (or `regenerate-token`) printed in the {} header.",
                sdk::PROXY_TOKEN_HEADER
            ))
        };
        let token = parts
            .headers
            .get(sdk::PROXY_TOKEN_HEADER)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(invalid)?;
        let (id, secret) = token.trim().split_once(':').ok_or_else(invalid)?;
        let id = Uuid::try_parse(id).map_err(|_| invalid())?;
        let proxy = state
            .store
            .workspace_proxy_by_id(id)
            .await?
            .ok_or_else(invalid)?;
        let matches: bool = proxy.token_hashed_secret.ct_eq(&hash_secret(secret)).into();
        if !matches {
            return Err(invalid());
        }
        Ok(CurrentProxy(proxy))
    }
}

/// The address of the client's TCP connection (`None` in in-process tests without a socket).
pub(crate) struct PeerAddress(pub(crate) Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerAddress(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(token: &str, expected: Option<(&str, &str)>) {
        let got = parse_token(token).map(|parsed| (parsed.id, parsed.secret));
        assert_eq!(got, expected, "{token:?}");
    }

    #[test]
    fn token_shape() {
        check(
            "abcdefghij-0123456789abcdefghijkl",
            Some(("abcdefghij", "0123456789abcdefghijkl")),
        );
        check("abcdefghij0123456789abcdefghijkl", None);
        check("abcdefghi-0123456789abcdefghijklm", None);
        check("abcdefghij-0123456789abcdefghijk!", None);
        check("", None);
    }

    #[test]
    fn generated_tokens_parse() {
        let token = format!("{}-{}", random_string(ID_LEN), random_string(SECRET_LEN));
        assert!(parse_token(&token).is_some());
    }
}
