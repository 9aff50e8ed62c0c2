//! The server's configuration, already parsed and validated by the CLI.

use std::path::PathBuf;
use std::time::Duration;

use sdk::Secret;
use url::Url;

/// Everything `coder server` needs besides its listeners.
#[derive(Clone, Debug)]
pub struct Config {
    /// The URL users, agents and proxies reach this server at.
    pub access_url: Url,
    /// The wildcard host for subdomain apps, e.g. `*.coder.example.com`.
    pub wildcard_access_url: Option<String>,
    /// Where the data lives.
    pub database: Database,
    /// How long a login session lasts without use (use slides it forward).
    pub session_duration: Duration,
    /// The longest lifetime a user may give an API token.
    pub max_token_lifetime: Duration,
    /// The lifetime of a token created without one.
    pub default_token_lifetime: Duration,
    /// Mark the session cookie `Secure` (always when the access URL is HTTPS).
    pub secure_auth_cookie: bool,
    /// The largest request body accepted, in bytes.
    pub max_request_body_bytes: usize,
    /// Password attempts allowed per client address per minute.
    pub login_attempts_per_minute: u32,
    /// Enabled experiments, by name.
    pub experiments: Vec<String>,
    /// Whether telemetry is enabled (reported in build info; nothing is sent anywhere).
    pub telemetry: bool,
    /// Keys provisioner daemons may authenticate with: the operator's pre-shared key (for
    /// external provisioners) and the built-in daemons' own. Empty: no provisioner may connect.
    pub provisioner_keys: Vec<Secret>,
    /// A running job whose provisioner sends no heartbeat for this long fails.
    pub provisioner_heartbeat_timeout: Duration,
    /// Serve the relay at `/relay` on the API's own listeners.
    pub relay_enabled: bool,
    /// The relay map clients and agents use (the base map plus the embedded region).
    pub relay_map: sdk::DerpMap,
    /// `--block-direct-connections`: agents and clients use relayed paths only.
    pub block_direct_connections: bool,
    /// `--disable-path-apps`: apps only on subdomains (path apps share the dashboard's origin).
    pub disable_path_apps: bool,
    /// `--proxy-health-interval`: how often each workspace proxy's health is checked.
    pub proxy_health_interval: Duration,
}

/// Where the server keeps its state.
#[derive(Clone, Debug)]
pub enum Database {
    /// An external PostgreSQL.
    Url(Secret),
    /// The built-in cluster kept in this directory.
    Builtin {
        /// The cluster's directory (`<config dir>/postgres`).
        dir: PathBuf,
    },
}

impl Config {
    /// Whether the session cookie must only travel over HTTPS.
    pub(crate) fn cookie_is_secure(&self) -> bool {
        self.secure_auth_cookie || self.access_url.scheme() == "https"
    }
}
