//! How app URLs name apps: `/@USER/WORKSPACE[.AGENT]/apps/SLUG/` paths, and
//! `SLUG--AGENT--WORKSPACE--USER` or `PORT[s]--AGENT--WORKSPACE--USER` labels under a wildcard
//! host (`*.apps.example.com`).

/// What a request asks for inside the workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A template-declared app, by slug.
    App(String),
    /// Any port on the workspace's loopback (port URLs); `true` for HTTPS (`PORTs--...`).
    Port(u16, bool),
}

/// `WORKSPACE[.AGENT]`.
pub fn split_agent(workspace: &str) -> (&str, Option<&str>) {
    match workspace.split_once('.') {
        Some((workspace, agent)) => (workspace, Some(agent)),
        None => (workspace, None),
    }
}

/// The wildcard's `*` part of `host`, when it matches `--wildcard-access-url`.
pub fn wildcard_label(wildcard: Option<&str>, host: &str) -> Option<String> {
    let wildcard = wildcard?;
    let pattern = wildcard
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let suffix = pattern.strip_prefix('*')?;
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let suffix = suffix.rsplit_once(':').map_or(suffix, |(name, _)| name);
    let label = host
        .to_ascii_lowercase()
        .strip_suffix(&suffix.to_ascii_lowercase())?
        .to_owned();
    (!label.is_empty() && !label.contains('.')).then_some(label)
}

/// The first part of a subdomain label: a port (`8080`, or `8443s` for HTTPS) or an app slug.
pub fn subdomain_target(first: &str) -> Target {
    let (digits, https) = match first.strip_suffix('s') {
        Some(digits) => (digits, true),
        None => (first, false),
    };
    match digits.parse::<u16>() {
        Ok(port) if port > 0 => Target::Port(port, https),
        _ => Target::App(first.to_owned()),
    }
}

/// `SLUG--AGENT--WORKSPACE--USER` or `PORT[s]--AGENT--WORKSPACE--USER`.
pub fn parse_label(label: &str) -> Option<(Target, String, String, String)> {
    let parts: Vec<&str> = label.split("--").collect();
    let [first, agent, workspace, user] = parts.as_slice() else {
        return None;
    };
    if [first, agent, workspace, user]
        .iter()
        .any(|part| part.is_empty())
    {
        return None;
    }
    Some((
        subdomain_target(first),
        (*agent).to_owned(),
        (*workspace).to_owned(),
        (*user).to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let Some((Target::App(slug), agent, workspace, user)) =
            parse_label("code--main--dev--alice")
        else {
            panic!("an app label parses");
        };
        assert_eq!(
            (
                slug.as_str(),
                agent.as_str(),
                workspace.as_str(),
                user.as_str()
            ),
            ("code", "main", "dev", "alice")
        );
        assert!(matches!(
            parse_label("8080--main--dev--alice"),
            Some((Target::Port(8080, false), ..))
        ));
        assert!(matches!(
            parse_label("8443s--main--dev--alice"),
            Some((Target::Port(8443, true), ..))
        ));
        assert!(parse_label("code--dev--alice").is_none());
        assert!(parse_label("code----dev--alice").is_none());
        assert!(matches!(
            parse_label("0--main--dev--alice"),
            Some((Target::App(_), ..))
        ));
    }
}
