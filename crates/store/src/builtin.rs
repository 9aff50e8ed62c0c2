//! The built-in PostgreSQL cluster: when the operator gives no `--postgres-url`, the server
//! creates a cluster in its config directory from the system's own binaries and runs it as a
//! child process, reachable only through a Unix socket in a private directory.
//!
//! PostgreSQL refuses to run as root, so a root server runs it as the system's `postgres`
//! user. That user usually cannot traverse the server's config directory (`/root` is 0700),
//! so the data and socket directories are handed over as open directory descriptors and named
//! `/proc/self/fd/N`, a path the kernel resolves without checking the ancestors.
//!
//! A lock file marks the cluster as owned by one live server. A server killed with SIGKILL
//! leaves its postmaster running; the next server to take the lock stops that orphan first.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{self, Signal};
use nix::unistd::{Gid, Pid, Uid, User};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Unix socket paths are limited to 107 bytes; keep room for `/.s.PGSQL.5432`.
const MAX_SOCKET_DIR_LEN: usize = 90;
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
// Also spelled out in the `CREATE DATABASE` statement, which must be a static string.
const DATABASE: &str = "coder";
const SUPERUSER: &str = "coder";

/// Why the built-in cluster could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    /// `initdb` and `postgres` are not installed.
    #[error(
        "PostgreSQL's server binaries (initdb, postgres) were found neither on PATH nor under \
         /usr/lib/postgresql/*/bin"
    )]
    BinariesNotFound,
    /// Another live server holds the cluster's lock.
    #[error("another coder server is already using the built-in PostgreSQL in {}", dir.display())]
    InUse {
        /// The cluster's directory.
        dir: PathBuf,
    },
    /// Running as root, and there is no `postgres` user to run the cluster as.
    #[error("PostgreSQL cannot run as root and this system has no 'postgres' user to run it as")]
    NoPostgresUser,
    /// A file operation failed.
    #[error("preparing {}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `initdb` failed.
    #[error("initdb failed ({status}):\n{output}")]
    Initdb {
        /// How it exited.
        status: String,
        /// What it printed.
        output: String,
    },
    /// `postgres` exited before accepting connections.
    #[error("PostgreSQL exited during start-up ({status}); the end of {}:\n{tail}", log.display())]
    Exited {
        /// How it exited.
        status: String,
        /// The log file.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// `postgres` did not accept connections in time.
    #[error("PostgreSQL did not accept connections within {timeout:?}; see {}", log.display())]
    StartTimeout {
        /// How long we waited.
        timeout: Duration,
        /// The log file.
        log: PathBuf,
    },
    /// A postmaster left by a killed server would not stop.
    #[error("the PostgreSQL left running by an earlier server (pid {pid}) did not stop")]
    OrphanStuck {
        /// Its process id.
        pid: i32,
    },
    /// Creating the `coder` database failed.
    #[error("creating the {DATABASE} database")]
    CreateDatabase(#[source] sqlx::Error),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BuiltinError + '_ {
    move |source| BuiltinError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A running built-in cluster. Stop it with [`BuiltinPostgres::stop`]; dropping it asks
/// PostgreSQL to shut down without waiting.
#[derive(Debug)]
#[must_use = "dropping the handle shuts PostgreSQL down"]
pub struct BuiltinPostgres {
    dir: PathBuf,
    url: String,
    child: Option<tokio::process::Child>,
    // Invariant: kept open while the child runs; the child names them /proc/self/fd/N.
    _data_dir: File,
    _socket_dir: File,
    // Invariant: held for the cluster's whole life; it is what makes a leftover postmaster
    // recognizably orphaned.
    _lock: Flock<File>,
}

struct Prepared {
    bin_dir: PathBuf,
    run_as: Option<(Uid, Gid)>,
    data_dir: File,
    socket_dir: File,
    socket_path: PathBuf,
    log_path: PathBuf,
    lock: Flock<File>,
}

impl BuiltinPostgres {
    /// Creates (on first use) and starts the cluster kept in `dir`, and makes sure the `coder`
    /// database exists. Takes up to a minute when the machine is slow; not cancel-safe (a
    /// cancelled start leaves a postmaster the next start will stop).
    pub async fn start(dir: &Path) -> Result<Self, BuiltinError> {
        let dir = dir.to_owned();
        let prepared = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || prepare(&dir))
                .await
                .map_err(|err| BuiltinError::Io {
                    path: PathBuf::new(),
                    source: std::io::Error::other(err),
                })??
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&prepared.log_path)
            .map_err(io_error(&prepared.log_path))?;
        let log_err = log.try_clone().map_err(io_error(&prepared.log_path))?;
        let data_fd = prepared.data_dir.as_raw_fd();
        let socket_fd = prepared.socket_dir.as_raw_fd();
        let mut command = tokio::process::Command::new(prepared.bin_dir.join("postgres"));
        command
            .arg("-D")
            .arg(format!("/proc/self/fd/{data_fd}"))
            .arg("-k")
            .arg(format!("/proc/self/fd/{socket_fd}"))
            .args([
                "-c",
                "listen_addresses=",
                "-c",
                "unix_socket_permissions=0700",
            ])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C in the terminal reaches only the server, which
            // then stops PostgreSQL in order.
            .process_group(0);
        inherit_fds(&mut command, &[data_fd, socket_fd]);
        if let Some((uid, gid)) = prepared.run_as {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        let mut child = command
            .spawn()
            .map_err(io_error(&prepared.bin_dir.join("postgres")))?;
        let url = format!(
            "postgres://{SUPERUSER}@localhost/{DATABASE}?host={}",
            percent_encode_path(&prepared.socket_path)
        );
        let admin_url = format!(
            "postgres://{SUPERUSER}@localhost/postgres?host={}",
            percent_encode_path(&prepared.socket_path)
        );
        let started = Instant::now();
        let mut admin = loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BuiltinError::Exited {
                    status: status.to_string(),
                    tail: log_tail(&prepared.log_path),
                    log: prepared.log_path,
                });
            }
            match PgConnection::connect(&admin_url).await {
                Ok(connection) => break connection,
                Err(_) if started.elapsed() < START_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => {
                    let _ = signal::kill(child_pid(&child), Signal::SIGQUIT);
                    return Err(BuiltinError::StartTimeout {
                        timeout: START_TIMEOUT,
                        log: prepared.log_path,
                    });
                }
            }
        };
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(DATABASE)
                .fetch_one(&mut admin)
                .await
                .map_err(BuiltinError::CreateDatabase)?;
        if !exists {
            sqlx::query(concat!("CREATE DATABASE ", "coder"))
                .execute(&mut admin)
                .await
                .map_err(BuiltinError::CreateDatabase)?;
        }
        let _ = admin.close().await;
        Ok(Self {
            dir,
            url,
            child: Some(child),
            _data_dir: prepared.data_dir,
            _socket_dir: prepared.socket_dir,
            _lock: prepared.lock,
        })
    }

    /// The URL of the `coder` database (a Unix socket; no password: only this user can reach
    /// the socket's directory).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Shuts PostgreSQL down (fast mode: rolls back open transactions, checkpoints) and waits
    /// for it to exit.
    pub async fn stop(mut self) -> Result<(), BuiltinError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child_pid(&child);
        let _ = signal::kill(pid, Signal::SIGINT);
        if tokio::time::timeout(STOP_TIMEOUT, child.wait())
            .await
            .is_err()
        {
            tracing::warn!(%pid, "built-in PostgreSQL did not stop in time; forcing it");
            let _ = signal::kill(pid, Signal::SIGQUIT);
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            let _ = child.start_kill();
        }
        Ok(())
    }
}

impl Drop for BuiltinPostgres {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            let _ = signal::kill(child_pid(child), Signal::SIGINT);
        }
    }
}

fn child_pid(child: &tokio::process::Child) -> Pid {
    Pid::from_raw(child.id().map_or(0, |id| id as i32))
}

/// Everything before spawning `postgres`: blocking file work, `initdb`, orphan clean-up.
fn prepare(dir: &Path) -> Result<Prepared, BuiltinError> {
    let bin_dir = find_binaries().ok_or(BuiltinError::BinariesNotFound)?;
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(dir))?;
    let lock_path = dir.join("server.lock");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| {
        BuiltinError::InUse {
            dir: dir.to_owned(),
        }
    })?;
    let run_as = if Uid::effective().is_root() {
        let user = User::from_name("postgres")
            .ok()
            .flatten()
            .ok_or(BuiltinError::NoPostgresUser)?;
        Some((user.uid, user.gid))
    } else {
        None
    };

    let data_path = dir.join("data");
    if !data_path.join("PG_VERSION").exists() {
        // A half-initialized directory (initdb killed midway) is useless: start over.
        if data_path.exists() {
            fs::remove_dir_all(&data_path).map_err(io_error(&data_path))?;
        }
        private_dir(&data_path, run_as)?;
        run_initdb(&bin_dir, &data_path, run_as)?;
    }
    stop_orphan(&data_path)?;

    let mut socket_path = dir.join("run");
    if socket_path.as_os_str().len() > MAX_SOCKET_DIR_LEN {
        // Too long for a Unix socket address: use a short private directory instead.
        socket_path = tempfile_dir()?;
    } else {
        private_dir(&socket_path, run_as)?;
    }
    if let Some((uid, gid)) = run_as {
        nix::unistd::chown(&socket_path, Some(uid), Some(gid))
            .map_err(|errno| io_error(&socket_path)(errno.into()))?;
    }
    let data_dir = File::open(&data_path).map_err(io_error(&data_path))?;
    let socket_dir = File::open(&socket_path).map_err(io_error(&socket_path))?;
    Ok(Prepared {
        bin_dir,
        run_as,
        data_dir,
        socket_dir,
        socket_path,
        log_path: dir.join("postgres.log"),
        lock,
    })
}

fn private_dir(path: &Path, run_as: Option<(Uid, Gid)>) -> Result<(), BuiltinError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_error(path))?;
    if let Some((uid, gid)) = run_as {
        nix::unistd::chown(path, Some(uid), Some(gid))
            .map_err(|errno| io_error(path)(errno.into()))?;
    }
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf, BuiltinError> {
    let template = std::env::temp_dir().join("coder-pg-XXXXXX");
    nix::unistd::mkdtemp(&template).map_err(|errno| io_error(&template)(errno.into()))
}

fn run_initdb(
    bin_dir: &Path,
    data_path: &Path,
    run_as: Option<(Uid, Gid)>,
) -> Result<(), BuiltinError> {
    let data_dir = File::open(data_path).map_err(io_error(data_path))?;
    let data_fd = data_dir.as_raw_fd();
    let mut command = std::process::Command::new(bin_dir.join("initdb"));
    command
        .arg("-D")
        .arg(format!("/proc/self/fd/{data_fd}"))
        .args([
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-locale",
        ])
        .current_dir("/")
        .stdin(Stdio::null());
    std_inherit_fds(&mut command, &[data_fd]);
    if let Some((uid, gid)) = run_as {
        std::os::unix::process::CommandExt::uid(&mut command, uid.as_raw());
        std::os::unix::process::CommandExt::gid(&mut command, gid.as_raw());
    }
    let output = command
        .output()
        .map_err(io_error(&bin_dir.join("initdb")))?;
    if !output.status.success() {
        return Err(BuiltinError::Initdb {
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(())
}

/// Stops a postmaster still running on `data_path`. Only called while holding the lock, so
/// such a postmaster belongs to no live server.
fn stop_orphan(data_path: &Path) -> Result<(), BuiltinError> {
    let Ok(pid_file) = fs::read_to_string(data_path.join("postmaster.pid")) else {
        return Ok(());
    };
    let Some(pid) = pid_file
        .lines()
        .next()
        .and_then(|line| line.trim().parse::<i32>().ok())
    else {
        return Ok(());
    };
    let is_postgres =
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "postgres");
    if !is_postgres {
        // A stale pid file; PostgreSQL removes it itself on start.
        return Ok(());
    }
    tracing::warn!(
        pid,
        "stopping the built-in PostgreSQL left running by an earlier server"
    );
    let pid = Pid::from_raw(pid);
    for (signal, wait) in [
        (Signal::SIGINT, STOP_TIMEOUT),
        (Signal::SIGQUIT, Duration::from_secs(5)),
    ] {
        let _ = signal::kill(pid, signal);
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if signal::kill(pid, None).is_err() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Err(BuiltinError::OrphanStuck { pid: pid.as_raw() })
}

/// The directory holding both `initdb` and `postgres`: the first on PATH, else the newest
/// version under /usr/lib/postgresql.
fn find_binaries() -> Option<PathBuf> {
    find_binaries_in(
        std::env::var_os("PATH").as_deref(),
        Path::new("/usr/lib/postgresql"),
    )
}

fn find_binaries_in(path: Option<&std::ffi::OsStr>, versions_root: &Path) -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(path) = path
        && let Some(dir) = std::env::split_paths(path).find(|dir| has_both(dir))
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(versions_root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn log_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(2048)));
    let mut tail = String::new();
    let _ = file.read_to_string(&mut tail);
    tail.lines()
        .rev()
        .take(10)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}

fn percent_encode_path(path: &Path) -> String {
    let mut encoded = String::new();
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                encoded.push(*byte as char)
            }
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    encoded
}

/// Lets the child inherit `fds` (which Rust opens close-on-exec).
#[allow(unsafe_code)]
fn inherit_fds(command: &mut tokio::process::Command, fds: &[i32]) {
    let fds = fds.to_vec();
    // SAFETY: the closure runs between fork and exec and calls only fcntl, which is
    // async-signal-safe; it touches no memory shared with other threads.
    unsafe {
        command.pre_exec(move || clear_cloexec(&fds));
    }
}

#[allow(unsafe_code)]
fn std_inherit_fds(command: &mut std::process::Command, fds: &[i32]) {
    let fds = fds.to_vec();
    // SAFETY: as in `inherit_fds`.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(command, move || clear_cloexec(&fds));
    }
}

#[allow(unsafe_code)]
fn clear_cloexec(fds: &[i32]) -> std::io::Result<()> {
    for &fd in fds {
        // SAFETY: fcntl on a descriptor number; an invalid one yields EBADF, not UB.
        if unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, expected: &str) {
        assert_eq!(percent_encode_path(Path::new(path)), expected);
    }

    #[test]
    fn binaries_come_from_path_else_the_newest_version() {
        let root = tempfile::tempdir().unwrap();
        let make = |dir: &Path| {
            fs::create_dir_all(dir).unwrap();
            fs::write(dir.join("initdb"), "").unwrap();
            fs::write(dir.join("postgres"), "").unwrap();
        };
        let versions = root.path().join("lib");
        let empty = root.path().join("empty");
        fs::create_dir_all(&empty).unwrap();
        assert_eq!(find_binaries_in(Some(empty.as_os_str()), &versions), None);
        make(&versions.join("9/bin"));
        make(&versions.join("15/bin"));
        assert_eq!(
            find_binaries_in(Some(empty.as_os_str()), &versions),
            Some(versions.join("15/bin"))
        );
        let on_path = root.path().join("bin");
        make(&on_path);
        let path = std::env::join_paths([&empty, &on_path]).unwrap();
        assert_eq!(find_binaries_in(Some(&path), &versions), Some(on_path));
        assert!(
            BuiltinError::BinariesNotFound
                .to_string()
                .starts_with("PostgreSQL's server binaries (initdb, postgres) were found neither")
        );
    }

    #[test]
    fn socket_paths_are_url_safe() {
        check(
            "/root/.config/coderv2/postgres/run",
            "/root/.config/coderv2/postgres/run",
        );
        check("/tmp/my dir/run", "/tmp/my%20dir/run");
    }
}
