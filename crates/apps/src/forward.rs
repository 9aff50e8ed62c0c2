//! Forwarding one request to an app inside a workspace: the request as the app should see it
//! (no session token or our cookies, hop-by-hop headers dropped, `X-Forwarded-*` set), over a
//! pooled connection, with upgrades (WebSockets) spliced through; and reading what a request
//! carries (its host, cookies, whether a browser sent it).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use url::Url;

use crate::client::{AppClient, Upstream, describe};
use crate::tokens;

// Parsed once: every proxied request sets them.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Why a request did not reach the app: a status and a sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    pub status: StatusCode,
    pub message: String,
}

impl ProxyError {
    /// 502: the workspace side failed.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            message: message.into(),
        }
    }

    /// 400: the request cannot be forwarded.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(sdk::Response::message(self.message)),
        )
            .into_response()
    }
}

/// Forwards `request` to `upstream`, at `path` below the app's own base path, over a pooled
/// connection.
pub async fn proxy(
    client: &AppClient,
    access_url: &Url,
    upstream: &Upstream,
    path: &str,
    request: Request,
) -> Result<Response, ProxyError> {
    let mut request = request;
    // A WebSocket (or other) upgrade passes through: both sides switch protocols and the
    // bytes are copied until either closes.
    let upgrade = upgrade_protocol(request.headers());
    let client_upgrade = upgrade.as_ref().and_then(|_| {
        request
            .extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>()
    });
    let (mut parts, body) = request.into_parts();
    let query = parts
        .uri
        .query()
        .map(|query| format!("?{query}"))
        .unwrap_or_default();
    // HTTP/2 requests carry the host in the URI only; the app gets it as a Host header.
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, value);
    }
    parts.uri = upstream
        .uri(&format!("{path}{query}"))
        .map_err(|_| ProxyError::bad_request("The app path is not a valid URI."))?;
    parts.version = axum::http::Version::HTTP_11;
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    forwarded_headers(&mut parts.headers, access_url, peer);
    if let Some(protocol) = &upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, protocol.clone());
    }
    let mut response = client
        .request(Request::from_parts(parts, body))
        .await
        .map_err(|err| ProxyError::bad_gateway(describe(&err, upstream.port)))?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => {
                    let _ = tunnel::pipe::splice(
                        &mut TokioIo::new(client),
                        &mut TokioIo::new(upstream),
                    )
                    .await;
                }
                Err(err) => tracing::debug!(error = %err, "an app upgrade failed"),
            }
        });
        let (parts, body) = response.into_parts();
        return Ok(Response::from_parts(parts, Body::new(body)));
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The protocol a request asks to switch to (`Connection: upgrade` plus `Upgrade: ...`).
pub fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Hop-by-hop headers describe one connection, not the message (RFC 9110 §7.6.1).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // The sender may name more hop-by-hop headers in `Connection` (RFC 9110, 7.6.1).
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        // Where the request is going is not the previous hop's to take away.
        .filter(|name| name != header::HOST)
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// Cookies that prove who the user is to us; an app never sees them.
pub const OUR_COOKIES: [&str; 3] = [
    sdk::SESSION_TOKEN_COOKIE,
    tokens::APP_COOKIE,
    tokens::SIGNED_COOKIE,
];

/// The request as the app sees it: no session token, and where it came from.
pub fn forwarded_headers(
    headers: &mut HeaderMap,
    access_url: &Url,
    peer: Option<std::net::IpAddr>,
) {
    // First, so that no header we set below can be named away in `Connection`.
    strip_hop_by_hop(headers);
    // Appended to what a proxy in front of us already recorded.
    if let Some(peer) = peer {
        let chain = match headers
            .get(&X_FORWARDED_FOR)
            .and_then(|value| value.to_str().ok())
        {
            Some(earlier) => format!("{earlier}, {peer}"),
            None => peer.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    headers.remove(sdk::SESSION_TOKEN_HEADER);
    let cookies: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .map(str::trim)
        .filter(|cookie| {
            let name = cookie.split('=').next().unwrap_or_default();
            !cookie.is_empty() && !OUR_COOKIES.contains(&name)
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !cookies.is_empty()
        && let Ok(value) = HeaderValue::from_str(&cookies.join("; "))
    {
        headers.insert(header::COOKIE, value);
    }
    let access = access_url;
    if let Some(host) = access.host_str() {
        let host = match access.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        if let Ok(value) = HeaderValue::from_str(&host) {
            headers.insert(X_FORWARDED_HOST, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(access.scheme()) {
        headers.insert(X_FORWARDED_PROTO, value);
    }
}

/// A query parameter of the request.
pub fn query_param(request: &Request, name: &str) -> Option<String> {
    let query = request.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A cookie the request carries.
pub fn cookie(request: &Request, name: &str) -> Option<String> {
    header_cookie(request.headers(), name)
}

/// The value of the named cookie in `headers` (quotes around it removed).
pub fn header_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

/// Whether a WebSocket upgrade may use the browser's ambient credentials (cookies): only from
/// a page of the host it is sent to, from one of `origins`, or from a non-browser client (no
/// `Origin`). Browsers send cookies on cross-origin WebSocket handshakes without any
/// preflight, and a subdomain app is same-site with the dashboard, so without this check a
/// workspace app could open its visitor's terminal with their cookie.
pub fn websocket_origin_allowed(headers: &axum::http::HeaderMap, origins: &[&url::Url]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(origin) = origin
        .to_str()
        .ok()
        .and_then(|origin| url::Url::parse(origin).ok())
    else {
        return false;
    };
    let authority = |url: &url::Url| {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    };
    let same_host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(&authority(&origin)));
    same_host
        || origins
            .iter()
            .any(|allowed| allowed.origin() == origin.origin())
}

/// Whether a browser asked for a page (so a redirect to sign in makes sense).
pub fn wants_html(request: &Request) -> bool {
    matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) && request
        .headers()
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// The Host the client asked for, port included.
pub fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| request.uri().host())
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_stay_behind() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "app.example.com"),
            ("connection", "keep-alive, X-Trace-Hop, host"),
            ("connection", "x-forwarded-for"),
            ("keep-alive", "timeout=5"),
            ("x-trace-hop", "1"),
            ("x-forwarded-for", "198.18.0.9"),
            ("accept", "text/html"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        let access = url::Url::parse("https://coder.example.com").unwrap();
        forwarded_headers(&mut headers, &access, Some([198, 18, 0, 1].into()));
        let mut left: Vec<_> = headers
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "accept: text/html",
                "host: app.example.com",
                // The chain the previous hop named away is gone; ours is set.
                "x-forwarded-for: 198.18.0.1",
                "x-forwarded-host: coder.example.com",
                "x-forwarded-proto: https",
            ]
        );
    }

    #[test]
    fn websockets_use_cookies_only_from_their_own_or_listed_origins() {
        let primary = url::Url::parse("https://coder.example.com").unwrap();
        let allowed = |host, origin| websocket_origin_allowed(&headers(host, origin), &[&primary]);
        // Non-browser clients send no Origin.
        assert!(allowed("coder.example.com", None));
        // The page's own host, any port spelled the same way.
        assert!(allowed(
            "coder.example.com",
            Some("https://coder.example.com")
        ));
        assert!(allowed("127.0.0.1:3000", Some("http://127.0.0.1:3000")));
        // The primary's dashboard opening a proxy's terminal.
        assert!(allowed(
            "east.example.com",
            Some("https://coder.example.com")
        ));
        // A workspace app on a subdomain (same site, other origin), another site, a sandbox.
        assert!(!allowed(
            "coder.example.com",
            Some("https://code--main--dev--alice.coder.example.com")
        ));
        assert!(!allowed("coder.example.com", Some("https://evil.example")));
        assert!(!allowed("127.0.0.1:3000", Some("http://127.0.0.1:3001")));
        assert!(!allowed("coder.example.com", Some("null")));
    }
}
