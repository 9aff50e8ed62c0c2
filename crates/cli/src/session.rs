//! The CLI's config directory (`~/.config/coderv2`, or `CODER_CONFIG_DIR`): the deployment URL
//! and session token saved by `coder login`, and building an API client from them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use sdk::Secret;
use sdk::client::Client;
use url::Url;

use crate::commands::GlobalArgs;
use crate::output;

/// The default config directory, as Coder lays it out.
pub(crate) fn default_config_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("coderv2")
}

/// The files `coder login` writes.
pub(crate) struct ConfigDir {
    dir: PathBuf,
}

impl ConfigDir {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn read(&self, name: &str) -> Result<Option<String>> {
        let path = self.dir.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.trim().to_owned()).filter(|text| !text.is_empty())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The saved deployment URL.
    pub(crate) fn url(&self) -> Result<Option<Url>> {
        self.read("url")?
            .map(|text| {
                Url::parse(&text)
                    .with_context(|| format!("the saved URL in {} is invalid", self.dir.display()))
            })
            .transpose()
    }

    /// The saved session token.
    pub(crate) fn session(&self) -> Result<Option<Secret>> {
        Ok(self.read("session")?.map(Secret::new))
    }

    /// Saves the URL and token; the directory is 0700 and the files 0600, written whole
    /// (temp file + rename) so a crash never leaves half a token.
    pub(crate) fn save(&self, url: &Url, token: &Secret) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        self.write("url", url.as_str())?;
        self.write("session", token.expose())
    }

    fn write(&self, name: &str, contents: &str) -> Result<()> {
        let path = self.dir.join(name);
        let temporary = self.dir.join(format!(".{name}.tmp"));
        let _ = fs::remove_file(&temporary);
        let mut file = fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&temporary)
            .with_context(|| format!("writing {}", temporary.display()))?;
        file.write_all(contents.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", temporary.display()))?;
        fs::rename(&temporary, &path).with_context(|| format!("writing {}", path.display()))
    }

    /// Forgets the session (keeps the URL, so `coder login` can default to it).
    pub(crate) fn clear_session(&self) -> Result<()> {
        let path = self.dir.join("session");
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err).with_context(|| format!("removing {}", path.display())),
        }
    }
}

/// An HTTP client with sane timeouts, trusting the system's CA certificates (and
/// `SSL_CERT_FILE`). The timeout is per read, not per request: a followed build log may last
/// an hour, but its stream sends a keep-alive every 15 s (and a provisioner's claim waits 30 s).
pub(crate) fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(format!("coder-cli/{}", coderd::VERSION))
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")
}

/// Adds `https://` to a bare host, as users type `coder login coder.example.com`.
pub(crate) fn parse_deployment_url(text: &str) -> Result<Url> {
    let text = text.trim().trim_end_matches('/');
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("https://{text}")
    };
    let url = Url::parse(&with_scheme).with_context(|| format!("{text:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("{text:?} must be an http:// or https:// URL");
    }
    Ok(url)
}

/// The deployment URL in force: `--url`/`CODER_URL`, else the saved one.
pub(crate) fn deployment_url(global: &GlobalArgs) -> Result<Option<Url>> {
    match &global.url {
        Some(url) => parse_deployment_url(url).map(Some),
        None => ConfigDir::new(&global.config_dir()).url(),
    }
}

/// An authenticated client from the flags, environment or saved session.
pub(crate) fn client(global: &GlobalArgs) -> Result<Client> {
    let not_logged_in = || {
        output::hint(
            anyhow::anyhow!("you are not logged in"),
            "log in with 'coder login <url>'",
        )
    };
    let url = deployment_url(global)?.ok_or_else(not_logged_in)?;
    let token = match &global.token {
        Some(token) => Secret::new(token.clone()),
        None => ConfigDir::new(&global.config_dir())
            .session()?
            .ok_or_else(not_logged_in)?,
    };
    Ok(Client::new(url, http_client()?).with_session_token(token))
}

/// Turns "your token is invalid" answers into a hint to log in again.
pub(crate) fn explain(err: sdk::client::ClientError) -> anyhow::Error {
    match err.status() {
        Some(401) => output::hint(err, "log in again with 'coder login <url>'"),
        _ => err.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(parse_deployment_url(input).unwrap().as_str(), expected);
    }

    #[test]
    fn deployment_urls() {
        check("coder.example.com", "https://coder.example.com/");
        check("http://127.0.0.1:3000/", "http://127.0.0.1:3000/");
        assert!(parse_deployment_url("ftp://x").is_err());
    }

    #[test]
    fn saves_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigDir::new(&dir.path().join("coderv2"));
        assert!(config.session().unwrap().is_none());
        let url = Url::parse("http://127.0.0.1:3000").unwrap();
        config.save(&url, &Secret::new("abc-def")).unwrap();
        assert_eq!(config.url().unwrap(), Some(url));
        assert_eq!(config.session().unwrap().unwrap().expose(), "abc-def");
        let mode = |name: &str| {
            fs::metadata(dir.path().join("coderv2").join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("session"), 0o600);
        assert_eq!(mode("url"), 0o600);
        assert_eq!(mode(""), 0o700);
        config.clear_session().unwrap();
        assert!(config.session().unwrap().is_none());
    }
}
