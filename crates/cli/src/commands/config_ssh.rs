//! `coder config-ssh`: writes a managed block into `~/.ssh/config` so that plain `ssh`, `scp`,
//! `sftp` and `rsync` reach workspaces as `coder.<workspace>`, through `coder ssh --stdio`.
//!
//! The block uses one wildcard host, so no workspace or user name is ever written into the
//! file; the only values interpolated (this binary's path, the config directory, extra
//! options) are quoted or refused when they could break out of their line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::commands::GlobalArgs;
use crate::output;
use crate::session;

const START: &str = "# ------------START-CODER-----------";
const END: &str = "# ------------END-CODER------------";

#[derive(Debug, clap::Args)]
pub(crate) struct ConfigSshArgs {
    /// The SSH config file to change.
    #[arg(long, env = "CODER_SSH_CONFIG_FILE", default_value = "~/.ssh/config")]
    ssh_config_file: String,
    /// The host name prefix of workspaces.
    #[arg(
        long,
        env = "CODER_CONFIGSSH_SSH_HOST_PREFIX",
        default_value = "coder."
    )]
    ssh_host_prefix: String,
    /// An extra option for the workspaces' Host block (repeatable), e.g. "ForwardAgent yes".
    #[arg(
        short = 'o',
        long = "ssh-option",
        env = "CODER_SSH_CONFIG_OPTS",
        value_delimiter = ','
    )]
    ssh_option: Vec<String>,
    /// Print the changes instead of making them.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Make the changes without asking.
    #[arg(short = 'y', long)]
    yes: bool,
}

pub(crate) async fn run(global: &GlobalArgs, args: ConfigSshArgs) -> Result<ExitCode> {
    // The block is useless without a session; say so now rather than at the first ssh.
    let client = session::client(global)?;
    client
        .user("me")
        .await
        .map_err(session::explain)
        .context("checking your session")?;
    let path = expand_home(&args.ssh_config_file)?;
    let binary = std::env::current_exe().context("locating the coder binary")?;
    let block = managed_block(
        &binary,
        &global.config_dir(),
        &args.ssh_host_prefix,
        &args.ssh_option,
    )?;
    let current = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let updated = replace_block(&current, &block)?;
    if updated == current {
        output::line(format!(
            "No changes to make: {} is up to date.",
            path.display()
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        output::line(format!(
            "Dry run: would write this block to {}:",
            path.display()
        ))?;
        output::line(block.trim_end())?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes {
        if !rustix::termios::isatty(std::io::stdin()) {
            bail!("pass --yes to change {} without a prompt", path.display());
        }
        output::prompt(format!(
            "Update {} with the coder block (Host {}*)? [yes/no] ",
            path.display(),
            args.ssh_host_prefix
        ));
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "yes") {
            bail!("nothing changed");
        }
    }
    write_atomically(&path, &updated)?;
    output::line(format!("Updated {}.", path.display()))?;
    output::line(format!(
        "You should now be able to ssh into your workspaces, e.g. 'ssh {}<workspace>'.",
        args.ssh_host_prefix
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn expand_home(path: &str) -> Result<PathBuf> {
    match path.strip_prefix("~/") {
        Some(rest) => {
            let home = std::env::var_os("HOME").context("HOME is not set")?;
            Ok(PathBuf::from(home).join(rest))
        }
        None => Ok(PathBuf::from(path)),
    }
}

/// Quotes a word for the shell OpenSSH runs ProxyCommand with; `%` is doubled because OpenSSH
/// expands `%` tokens first.
fn quote(word: &str) -> Result<String> {
    if word.contains(['\n', '\r', '\0']) {
        bail!("{word:?} contains a line break and cannot go into an SSH config");
    }
    Ok(format!(
        "'{}'",
        word.replace('\'', r"'\''").replace('%', "%%")
    ))
}

/// The managed block.
fn managed_block(
    binary: &Path,
    config_dir: &Path,
    prefix: &str,
    options: &[String],
) -> Result<String> {
    let valid_prefix = !prefix.is_empty()
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !valid_prefix {
        bail!("--ssh-host-prefix {prefix:?} may contain only letters, digits, '.', '-' and '_'");
    }
    let mut block = String::new();
    block.push_str(START);
    block.push('\n');
    block.push_str("# Managed by 'coder config-ssh'; edits here are replaced on its next run.\n");
    block.push_str("# Remove the whole block to stop using it.\n");
    block.push_str(&format!("Host {prefix}*\n"));
    for option in options {
        let option = option.trim();
        if option.is_empty() {
            continue;
        }
        if option.contains(['\n', '\r', '\0']) || option.starts_with('#') {
            bail!("--ssh-option {option:?} must be one option on one line");
        }
        let keyword = option
            .split(|c: char| c.is_whitespace() || c == '=')
            .next()
            .unwrap_or_default();
        if keyword.eq_ignore_ascii_case("host") || keyword.eq_ignore_ascii_case("match") {
            bail!("--ssh-option cannot start another Host or Match block");
        }
        block.push_str(&format!("\t{option}\n"));
    }
    block.push_str("\tConnectTimeout=0\n");
    // The tunnel authenticates the agent (its endpoint id is its key); host keys change on
    // every workspace start and would only train users to ignore warnings.
    block.push_str("\tStrictHostKeyChecking=no\n");
    block.push_str("\tUserKnownHostsFile=/dev/null\n");
    block.push_str("\tLogLevel ERROR\n");
    // The session runs inside the encrypted tunnel, so its cipher is pure overhead, mostly
    // in the agent: AES-GCM costs a fraction of ChaCha20-Poly1305 there (OpenSSH's first
    // choice). Every OpenSSH since 6.5 knows all three; an --ssh-option above still wins.
    block.push_str(
        "\tCiphers aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com\n",
    );
    let binary = binary
        .to_str()
        .context("the coder binary's path is not UTF-8")?;
    let config_dir = config_dir
        .to_str()
        .context("the config directory's path is not UTF-8")?;
    block.push_str(&format!(
        "\tProxyCommand {} --global-config {} ssh --stdio --ssh-host-prefix {} %h\n",
        quote(binary)?,
        quote(config_dir)?,
        quote(prefix)?
    ));
    block.push_str(END);
    block.push('\n');
    Ok(block)
}

/// The config with the managed block replaced (in place) or appended.
fn replace_block(current: &str, block: &str) -> Result<String> {
    let start = current.find(START);
    let end = current.find(END);
    match (start, end) {
        (Some(start), Some(end)) if start < end => {
            let mut after = end + END.len();
            if current[after..].starts_with('\n') {
                after += 1;
            }
            Ok(format!(
                "{}{}{}",
                &current[..start],
                block,
                &current[after..]
            ))
        }
        (None, None) => {
            let mut updated = current.to_owned();
            if !updated.is_empty() && !updated.ends_with('\n') {
                updated.push('\n');
            }
            if !updated.is_empty() {
                updated.push('\n');
            }
            updated.push_str(block);
            Ok(updated)
        }
        _ => bail!(
            "the SSH config has a broken coder block (a start or end marker is missing); fix or remove it"
        ),
    }
}

/// Writes through a temporary file and a rename, so a crash leaves the old or the new file,
/// never half of one; the file keeps (or gets) owner-only permissions.
fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    let temporary = dir.join(format!(
        ".{}.coder-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config"),
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    let written = file
        .write_all(contents.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(err).with_context(|| format!("writing {}", temporary.display()));
    }
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> String {
        managed_block(
            Path::new("/usr/bin/co'der"),
            Path::new("/home/u/.config/coderv2"),
            "coder.",
            &["ForwardAgent yes".to_owned()],
        )
        .unwrap()
    }

    #[test]
    fn the_block_is_added_then_replaced_in_place() {
        let user = "Host work\n\tUser me\n";
        let once = replace_block(user, &block()).unwrap();
        assert!(once.starts_with(user), "the user's own config is kept");
        assert!(once.contains("Host coder.*\n"));
        assert!(once.contains("ProxyCommand '/usr/bin/co'\\''der' --global-config"));
        let twice = replace_block(&once, &block()).unwrap();
        assert_eq!(once, twice, "idempotent");
        let with_tail = format!("{once}Host after\n");
        let replaced = replace_block(&with_tail, &block()).unwrap();
        assert!(
            replaced.ends_with("Host after\n"),
            "text after the block survives"
        );
    }

    #[test]
    fn nothing_can_break_out_of_its_line() {
        let inject = |option: &str| {
            managed_block(
                Path::new("/c"),
                Path::new("/d"),
                "coder.",
                &[option.to_owned()],
            )
        };
        assert!(inject("ForwardAgent yes\nHost *").is_err());
        assert!(inject("Host evil").is_err());
        assert!(inject("Match all").is_err());
        assert!(managed_block(Path::new("/c\n"), Path::new("/d"), "coder.", &[]).is_err());
        assert!(managed_block(Path::new("/c"), Path::new("/d"), "x y", &[]).is_err());
        let percent = managed_block(Path::new("/a%h"), Path::new("/d"), "coder.", &[]).unwrap();
        assert!(percent.contains("'/a%%h'"), "% tokens are escaped");
    }

    #[test]
    fn a_broken_block_is_refused() {
        assert!(replace_block(&format!("{START}\nHost x\n"), &block()).is_err());
    }
}
