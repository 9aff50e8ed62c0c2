//! The SFTP subsystem (russh-sftp's protocol, our file operations): what `sftp`, `scp` (which
//! speaks SFTP since OpenSSH 9) and editors' remote plugins use.

use std::collections::HashMap;
use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};

use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

/// Serves SFTP on the channel's stream until the client closes it.
pub(crate) async fn serve(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    directory: PathBuf,
) {
    let handler = Sftp {
        directory,
        handles: HashMap::new(),
        next_handle: 0,
    };
    russh_sftp::server::run(stream, handler).await;
}

enum Open {
    File(tokio::fs::File),
    /// A directory's remaining entries; `None` once they were all sent.
    Dir(Option<Vec<File>>),
}

struct Sftp {
    /// Relative paths start here.
    directory: PathBuf,
    handles: HashMap<String, Open>,
    next_handle: u64,
}

impl Sftp {
    fn path(&self, path: &str) -> PathBuf {
        if path.is_empty() || path == "." {
            self.directory.clone()
        } else {
            self.directory.join(path)
        }
    }

    fn insert(&mut self, open: Open) -> String {
        self.next_handle += 1;
        let handle = self.next_handle.to_string();
        self.handles.insert(handle.clone(), open);
        handle
    }
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".to_owned(),
        language_tag: "en-US".to_owned(),
    }
}

fn failure(err: std::io::Error) -> StatusReply {
    let code = match err.kind() {
        ErrorKind::NotFound => StatusCode::NoSuchFile,
        ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    };
    StatusReply::new(code).with_message(err.to_string())
}

fn bad_handle() -> StatusReply {
    StatusReply::new(StatusCode::Failure).with_message("invalid handle")
}

async fn attributes(path: &Path, follow: bool) -> Result<FileAttributes, StatusReply> {
    let metadata = if follow {
        tokio::fs::metadata(path).await
    } else {
        tokio::fs::symlink_metadata(path).await
    };
    metadata.map(|m| FileAttributes::from(&m)).map_err(failure)
}

async fn apply_attributes(path: &Path, attrs: &FileAttributes) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(mode) = attrs.permissions {
        let permissions = std::fs::Permissions::from_mode(mode & 0o7777);
        tokio::fs::set_permissions(path, permissions).await?;
    }
    if let Some(size) = attrs.size {
        let file = tokio::fs::OpenOptions::new().write(true).open(path).await?;
        file.set_len(size).await?;
    }
    if let (Some(atime), Some(mtime)) = (attrs.atime, attrs.mtime) {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let to_spec = |secs: u32| nix::sys::time::TimeSpec::new(i64::from(secs), 0);
            nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                &path,
                &to_spec(atime),
                &to_spec(mtime),
                nix::sys::stat::UtimensatFlags::FollowSymlink,
            )
            .map_err(std::io::Error::from)
        })
        .await
        .map_err(std::io::Error::other)??;
    }
    Ok(())
}

impl russh_sftp::server::Handler for Sftp {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusReply::new(StatusCode::OpUnsupported)
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        flags: OpenFlags,
        attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let path = self.path(&filename);
        let mut options = tokio::fs::OpenOptions::new();
        options
            .read(flags.contains(OpenFlags::READ))
            .write(flags.contains(OpenFlags::WRITE) || flags.contains(OpenFlags::APPEND))
            .append(flags.contains(OpenFlags::APPEND))
            .truncate(flags.contains(OpenFlags::TRUNCATE));
        if flags.contains(OpenFlags::EXCLUDE) {
            options.create_new(true);
        } else if flags.contains(OpenFlags::CREATE) {
            options.create(true);
        }
        if let Some(mode) = attrs.permissions {
            options.mode(mode & 0o7777);
        }
        let file = options.open(&path).await.map_err(failure)?;
        Ok(Handle {
            id,
            handle: self.insert(Open::File(file)),
        })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(Open::File(mut file)) => {
                file.flush().await.map_err(failure)?;
                Ok(ok(id))
            }
            Some(Open::Dir(_)) => Ok(ok(id)),
            None => Err(bad_handle()),
        }
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let Some(Open::File(file)) = self.handles.get_mut(&handle) else {
            return Err(bad_handle());
        };
        file.seek(SeekFrom::Start(offset)).await.map_err(failure)?;
        let mut data = vec![0; len.min(256 * 1024) as usize];
        let mut filled = 0;
        while filled < data.len() {
            let n = file.read(&mut data[filled..]).await.map_err(failure)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Err(StatusReply::new(StatusCode::Eof));
        }
        data.truncate(filled);
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let Some(Open::File(file)) = self.handles.get_mut(&handle) else {
            return Err(bad_handle());
        };
        file.seek(SeekFrom::Start(offset)).await.map_err(failure)?;
        file.write_all(&data).await.map_err(failure)?;
        Ok(ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let attrs = attributes(&self.path(&path), false).await?;
        Ok(Attrs { id, attrs })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let attrs = attributes(&self.path(&path), true).await?;
        Ok(Attrs { id, attrs })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let Some(Open::File(file)) = self.handles.get(&handle) else {
            return Err(bad_handle());
        };
        let metadata = file.metadata().await.map_err(failure)?;
        Ok(Attrs {
            id,
            attrs: FileAttributes::from(&metadata),
        })
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        apply_attributes(&self.path(&path), &attrs)
            .await
            .map_err(failure)?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let Some(Open::File(file)) = self.handles.get(&handle) else {
            return Err(bad_handle());
        };
        if let Some(size) = attrs.size {
            file.set_len(size).await.map_err(failure)?;
        }
        if let Some(mode) = attrs.permissions {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
                .await
                .map_err(failure)?;
        }
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let path = self.path(&path);
        let mut entries = tokio::fs::read_dir(&path).await.map_err(failure)?;
        let mut files = vec![
            File::new(".", attributes(&path, true).await?),
            File::new("..", attributes(&path.join(".."), true).await?),
        ];
        while let Some(entry) = entries.next_entry().await.map_err(failure)? {
            let Ok(metadata) = entry.metadata().await else {
                continue;
            };
            files.push(File::new(
                entry.file_name().to_string_lossy(),
                FileAttributes::from(&metadata),
            ));
        }
        Ok(Handle {
            id,
            handle: self.insert(Open::Dir(Some(files))),
        })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let Some(Open::Dir(files)) = self.handles.get_mut(&handle) else {
            return Err(bad_handle());
        };
        match files.take() {
            Some(files) => Ok(Name { id, files }),
            None => Err(StatusReply::new(StatusCode::Eof)),
        }
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        tokio::fs::remove_file(self.path(&filename))
            .await
            .map_err(failure)?;
        Ok(ok(id))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let path = self.path(&path);
        tokio::fs::create_dir(&path).await.map_err(failure)?;
        if attrs.permissions.is_some() {
            let _ = apply_attributes(&path, &attrs).await;
        }
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        tokio::fs::remove_dir(self.path(&path))
            .await
            .map_err(failure)?;
        Ok(ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let full = self.path(&path);
        // Like OpenSSH: a path that does not exist yet is normalised, not refused.
        let resolved = tokio::fs::canonicalize(&full)
            .await
            .unwrap_or_else(|_| normalise(&full));
        Ok(Name {
            id,
            files: vec![File::dummy(resolved.to_string_lossy())],
        })
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        tokio::fs::rename(self.path(&oldpath), self.path(&newpath))
            .await
            .map_err(failure)?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let target = tokio::fs::read_link(self.path(&path))
            .await
            .map_err(failure)?;
        Ok(Name {
            id,
            files: vec![File::dummy(target.to_string_lossy())],
        })
    }

    async fn symlink(
        &mut self,
        id: u32,
        linkpath: String,
        targetpath: String,
    ) -> Result<Status, Self::Error> {
        tokio::fs::symlink(&targetpath, self.path(&linkpath))
            .await
            .map_err(failure)?;
        Ok(ok(id))
    }
}

/// Removes `.` and `..` without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(part) => out.push(part),
            _ => {}
        }
    }
    out
}
