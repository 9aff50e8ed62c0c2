//! The server's option table: each option's YAML key (Coder's names) and kind. It drives
//! reading `--config FILE` and printing `--write-config`; the clap fields in `mod.rs` hold the
//! flags, environment variables and defaults.

use std::path::PathBuf;

use clap::ArgMatches;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use serde_yaml_ng::{Mapping, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Bool,
    Int,
    Text,
    List,
}

pub(super) struct OptionSpec {
    /// The clap arg id (the field name).
    pub(super) id: &'static str,
    /// The dotted YAML path.
    pub(super) yaml: &'static str,
    pub(super) kind: Kind,
    /// Read from YAML, never written by `--write-config`.
    pub(super) secret: bool,
}

const fn option(id: &'static str, yaml: &'static str, kind: Kind) -> OptionSpec {
    OptionSpec {
        id,
        yaml,
        kind,
        secret: false,
    }
}

/// Every server option, in the order `--write-config` prints them.
pub(super) const OPTIONS: &[OptionSpec] = &[
    option("access_url", "networking.accessURL", Kind::Text),
    option(
        "wildcard_access_url",
        "networking.wildcardAccessURL",
        Kind::Text,
    ),
    option(
        "secure_auth_cookie",
        "networking.secureAuthCookie",
        Kind::Bool,
    ),
    option("http_address", "networking.http.httpAddress", Kind::Text),
    option(
        "session_duration",
        "networking.http.sessionDuration",
        Kind::Text,
    ),
    option(
        "max_token_lifetime",
        "networking.http.maxTokenLifetime",
        Kind::Text,
    ),
    option(
        "default_token_lifetime",
        "networking.http.defaultTokenLifetime",
        Kind::Text,
    ),
    option("tls_enable", "networking.tls.enable", Kind::Bool),
    option("tls_address", "networking.tls.address", Kind::Text),
    option("tls_cert_file", "networking.tls.certFiles", Kind::List),
    option("tls_key_file", "networking.tls.keyFiles", Kind::List),
    option("tls_client_auth", "networking.tls.clientAuth", Kind::Text),
    option(
        "tls_client_ca_file",
        "networking.tls.clientCAFile",
        Kind::Text,
    ),
    option("tls_min_version", "networking.tls.minVersion", Kind::Text),
    option(
        "derp_server_enable",
        "networking.derp.server.enable",
        Kind::Bool,
    ),
    option(
        "derp_server_region_id",
        "networking.derp.server.regionID",
        Kind::Int,
    ),
    option(
        "derp_server_region_code",
        "networking.derp.server.regionCode",
        Kind::Text,
    ),
    option(
        "derp_server_region_name",
        "networking.derp.server.regionName",
        Kind::Text,
    ),
    option(
        "proxy_health_interval",
        "networking.http.proxyHealthInterval",
        Kind::Text,
    ),
    option(
        "disable_path_apps",
        "networking.disablePathApps",
        Kind::Bool,
    ),
    option(
        "block_direct_connections",
        "networking.derp.blockDirect",
        Kind::Bool,
    ),
    option("derp_config_url", "networking.derp.url", Kind::Text),
    option("derp_config_path", "networking.derp.configPath", Kind::Text),
    option(
        "prometheus_enable",
        "introspection.prometheus.enable",
        Kind::Bool,
    ),
    option(
        "prometheus_address",
        "introspection.prometheus.address",
        Kind::Text,
    ),
    option("log_human", "introspection.logging.humanPath", Kind::Text),
    option("log_json", "introspection.logging.jsonPath", Kind::Text),
    option("log_filter", "introspection.logging.filter", Kind::Text),
    OptionSpec {
        id: "postgres_url",
        yaml: "pgConnectionURL",
        kind: Kind::Text,
        secret: true,
    },
    option("provisioner_daemons", "provisioning.daemons", Kind::Int),
    OptionSpec {
        id: "provisioner_daemon_psk",
        yaml: "provisioning.daemonPSK",
        kind: Kind::Text,
        secret: true,
    },
    option(
        "provisioner_heartbeat_timeout",
        "provisioning.heartbeatTimeout",
        Kind::Text,
    ),
    option("telemetry", "telemetry.enable", Kind::Bool),
    option("update_check", "updateCheck", Kind::Bool),
    option("experiments", "experiments", Kind::List),
];

/// `coder wsproxy server`'s own options; it also takes [`SHARED_WITH_PROXY`] from [`OPTIONS`].
const PROXY_ONLY: &[OptionSpec] = &[
    option(
        "primary_access_url",
        "externalWorkspaceProxy.primaryAccessURL",
        Kind::Text,
    ),
    OptionSpec {
        id: "proxy_session_token",
        yaml: "externalWorkspaceProxy.proxySessionToken",
        kind: Kind::Text,
        secret: true,
    },
    option("derp_only", "externalWorkspaceProxy.derpOnly", Kind::Bool),
];

/// The server options a workspace proxy has too, under the same YAML keys.
const SHARED_WITH_PROXY: &[&str] = &[
    "access_url",
    "wildcard_access_url",
    "http_address",
    "tls_enable",
    "tls_address",
    "tls_cert_file",
    "tls_key_file",
    "tls_client_auth",
    "tls_client_ca_file",
    "tls_min_version",
    "derp_server_enable",
    "block_direct_connections",
    "disable_path_apps",
    "prometheus_enable",
    "prometheus_address",
    "log_human",
    "log_json",
    "log_filter",
];

/// Which command's options a config file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// `coder server`.
    Server,
    /// `coder wsproxy server`.
    Proxy,
}

impl Role {
    pub(super) fn options(self) -> Vec<&'static OptionSpec> {
        match self {
            Role::Server => OPTIONS.iter().collect(),
            Role::Proxy => PROXY_ONLY
                .iter()
                .chain(
                    OPTIONS
                        .iter()
                        .filter(|spec| SHARED_WITH_PROXY.contains(&spec.id)),
                )
                .collect(),
        }
    }

    /// The matches of the role's own subcommand, when argv ran it.
    pub(crate) fn of(matches: &ArgMatches) -> Option<(Role, &ArgMatches)> {
        match matches.subcommand() {
            Some(("server", server)) => Some((Role::Server, server)),
            Some(("wsproxy", wsproxy)) => match wsproxy.subcommand() {
                Some(("server", server)) => Some((Role::Proxy, server)),
                _ => None,
            },
            _ => None,
        }
    }
}

fn config_error(path: &std::path::Path, message: impl std::fmt::Display) -> clap::Error {
    clap::Error::raw(
        ErrorKind::InvalidValue,
        format!("invalid --config file {}: {message}\n", path.display()),
    )
}

/// Values for one option from the YAML file: (clap arg id, values).
pub(crate) type YamlDefaults = Vec<(&'static str, Vec<String>)>;

/// For `coder server --config FILE`: the YAML values of the options that neither a flag nor an
/// environment variable set, to become their defaults. `None` when there is no config file.
pub(crate) fn config_file_defaults(
    matches: &ArgMatches,
) -> Result<Option<(Role, YamlDefaults)>, clap::Error> {
    let Some((role, server)) = Role::of(matches) else {
        return Ok(None);
    };
    let Some(path) = server.get_one::<PathBuf>("config") else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|err| config_error(path, err))?;
    let yaml: Value = serde_yaml_ng::from_str(&text).map_err(|err| config_error(path, err))?;
    let mut leaves = Vec::new();
    flatten(&yaml, String::new(), &mut leaves);
    let mut defaults = Vec::new();
    for (key, value) in leaves {
        let Some(spec) = role.options().into_iter().find(|spec| spec.yaml == key) else {
            return Err(config_error(path, format!("unknown key {key:?}")));
        };
        let set_elsewhere = matches!(
            server.value_source(spec.id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if set_elsewhere {
            continue;
        }
        let values = to_strings(value, spec.kind)
            .ok_or_else(|| config_error(path, format!("{key} has the wrong type")))?;
        defaults.push((spec.id, values));
    }
    Ok(Some((role, defaults)))
}

/// Collects `(dotted.path, value)` for every non-mapping value.
fn flatten<'a>(value: &'a Value, prefix: String, leaves: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Mapping(mapping) => {
            for (key, child) in mapping {
                let key = match key {
                    Value::String(key) => key.clone(),
                    other => serde_yaml_ng::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                };
                let path = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(child, path, leaves);
            }
        }
        Value::Null if prefix.is_empty() => {}
        other => leaves.push((prefix, other)),
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn to_strings(value: &Value, kind: Kind) -> Option<Vec<String>> {
    match (kind, value) {
        (Kind::List, Value::Sequence(items)) => items.iter().map(scalar).collect(),
        (Kind::Bool, Value::Bool(flag)) => Some(vec![flag.to_string()]),
        (Kind::Bool, _) => None,
        (_, value) => scalar(value).map(|text| vec![text]),
    }
}

/// The effective configuration as YAML, secrets left out.
pub(crate) fn effective_yaml(role: Role, server: &ArgMatches) -> String {
    let mut root = Mapping::new();
    for spec in role.options().into_iter().filter(|spec| !spec.secret) {
        let raw: Vec<String> = server
            .get_raw(spec.id)
            .map(|values| {
                values
                    .map(|value| value.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let value = match spec.kind {
            Kind::Bool => Value::Bool(raw.first().is_some_and(|value| value == "true")),
            Kind::Int => raw
                .first()
                .and_then(|value| value.parse::<u64>().ok())
                .map_or(Value::Null, |number| Value::Number(number.into())),
            Kind::List => Value::Sequence(raw.into_iter().map(Value::String).collect()),
            Kind::Text => Value::String(raw.into_iter().next().unwrap_or_default()),
        };
        insert(&mut root, spec.yaml, value);
    }
    serde_yaml_ng::to_string(&Value::Mapping(root)).unwrap_or_default()
}

fn insert(mapping: &mut Mapping, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            mapping.insert(Value::String(path.to_owned()), value);
        }
        Some((head, rest)) => {
            let child = mapping
                .entry(Value::String(head.to_owned()))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if let Value::Mapping(child) = child {
                insert(child, rest, value);
            }
        }
    }
}
