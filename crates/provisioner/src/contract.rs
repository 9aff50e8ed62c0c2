//! The template contract: what a template receives (Terraform variables named `coder_*`,
//! passed as `TF_VAR_` environment variables so a template declares only those it uses) and
//! what it gives back (the `coder_agent` output: the agent's startup script, environment,
//! directory, apps and metadata). README.md documents it for template authors.

use sdk::{AgentSettings, Secret};

use crate::job::Transition;

/// The workspace's facts, for a build.
#[derive(Clone, Debug, Default)]
pub struct WorkspaceFacts {
    /// The URL the agent reaches the server at (`coder_access_url`).
    pub access_url: String,
    /// `coder_workspace_id`.
    pub workspace_id: String,
    /// `coder_workspace_name`.
    pub workspace_name: String,
    /// `coder_workspace_owner` (a username).
    pub workspace_owner: String,
    /// `coder_workspace_owner_email`.
    pub workspace_owner_email: String,
    /// `coder_template_name`.
    pub template_name: String,
    /// `coder_agent_token`: fresh for every build; empty for imports.
    pub agent_token: Secret,
}

impl WorkspaceFacts {
    /// The `TF_VAR_coder_*` environment of a run.
    pub(crate) fn environment(&self, transition: Transition) -> Vec<(String, String)> {
        let start_count = if transition == Transition::Start {
            "1"
        } else {
            "0"
        };
        let transition = match transition {
            Transition::Start => "start",
            Transition::Stop | Transition::Delete => "stop",
        };
        [
            ("coder_access_url", self.access_url.as_str()),
            ("coder_workspace_id", &self.workspace_id),
            ("coder_workspace_name", &self.workspace_name),
            ("coder_workspace_owner", &self.workspace_owner),
            ("coder_workspace_owner_email", &self.workspace_owner_email),
            ("coder_template_name", &self.template_name),
            ("coder_workspace_transition", transition),
            ("coder_workspace_start_count", start_count),
            ("coder_agent_token", self.agent_token.expose()),
        ]
        .into_iter()
        .map(|(name, value)| (format!("TF_VAR_{name}"), value.to_owned()))
        .collect()
    }
}

/// Parses and checks the `coder_agent` output's value against the contract.
pub(crate) fn agent_settings(value: serde_json::Value) -> Result<AgentSettings, String> {
    let settings: AgentSettings = serde_json::from_value(value).map_err(|err| err.to_string())?;
    let mut problems = Vec::new();
    let mut slugs = Vec::new();
    for (idx, app) in settings.apps.iter().enumerate() {
        let well_formed = !app.slug.is_empty()
            && app.slug.len() <= 32
            && app.slug.split('-').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
            });
        if !well_formed {
            problems.push(format!(
                "apps[{idx}].slug {:?}: use lowercase letters, digits and single inner hyphens",
                app.slug
            ));
        }
        if slugs.contains(&app.slug) {
            problems.push(format!("apps[{idx}].slug {:?} is used twice", app.slug));
        }
        slugs.push(app.slug.clone());
        if !matches!(app.share.as_str(), "owner" | "authenticated" | "public") {
            problems.push(format!(
                "apps[{idx}].share {:?}: must be owner, authenticated or public",
                app.share
            ));
        }
        if app.url.is_empty() == app.command.is_empty() {
            problems.push(format!("apps[{idx}]: give exactly one of url and command"));
        }
    }
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn check(value: serde_json::Value, expected: Result<(), &str>) {
        let got = agent_settings(value).map(drop);
        assert_eq!(got.as_ref().map(|_| ()).map_err(String::as_str), expected);
    }

    #[test]
    fn agent_output_is_checked() {
        check(json!({}), Ok(()));
        check(
            json!({"startup_script": "x", "apps": [{"slug": "code-server", "url": "http://localhost:8080", "healthcheck": {"url": "http://localhost:8080/healthz"}}]}),
            Ok(()),
        );
        check(
            json!({"startup_scrpit": "x"}),
            Err(
                "unknown field `startup_scrpit`, expected one of `startup_script`, `shutdown_script`, `env`, `dir`, `apps`, `metadata`",
            ),
        );
        check(
            json!({"apps": [{"slug": "Bad_Slug", "url": "u", "share": "everyone"}]}),
            Err(
                "apps[0].slug \"Bad_Slug\": use lowercase letters, digits and single inner hyphens; apps[0].share \"everyone\": must be owner, authenticated or public",
            ),
        );
        check(
            json!({"apps": [{"slug": "a", "url": "u"}, {"slug": "a"}]}),
            Err("apps[1].slug \"a\" is used twice; apps[1]: give exactly one of url and command"),
        );
    }

    #[test]
    fn facts_become_tf_vars() {
        let facts = WorkspaceFacts {
            workspace_name: "dev".into(),
            agent_token: Secret::new("t0ken"),
            ..WorkspaceFacts::default()
        };
        let env: BTreeMap<String, String> =
            facts.environment(Transition::Stop).into_iter().collect();
        assert_eq!(env["TF_VAR_coder_workspace_name"], "dev");
        assert_eq!(env["TF_VAR_coder_workspace_transition"], "stop");
        assert_eq!(env["TF_VAR_coder_workspace_start_count"], "0");
        assert_eq!(env["TF_VAR_coder_agent_token"], "t0ken");
    }
}
