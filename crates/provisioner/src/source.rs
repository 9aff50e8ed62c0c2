//! Unpacking a template's source (a tar archive) into a job's work directory, refusing
//! anything that could write outside it.

use std::io::Read;
use std::path::{Component, Path};

/// The largest unpacked template accepted.
const MAX_UNPACKED_BYTES: u64 = 100 << 20;
const MAX_ENTRIES: usize = 10_000;

/// Why a template archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Not a readable tar archive.
    #[error("the template source is not a valid tar archive")]
    NotTar(#[source] std::io::Error),
    /// An entry's path is absolute or climbs out with `..`.
    #[error("the template source contains an unsafe path: {path}")]
    UnsafePath {
        /// The entry's path as archived.
        path: String,
    },
    /// Links are refused: a template needs none, and they can point outside the directory.
    #[error("the template source contains a link: {path}")]
    Link {
        /// The entry's path as archived.
        path: String,
    },
    /// Too big, or too many files.
    #[error(
        "the template source is too large (limit {MAX_UNPACKED_BYTES} bytes, {MAX_ENTRIES} files)"
    )]
    TooLarge,
    /// Writing into the work directory failed.
    #[error("unpacking the template source")]
    Io(#[source] std::io::Error),
}

/// Unpacks `archive` into `dir` (blocking: call from a blocking thread).
pub(crate) fn unpack(archive: &[u8], dir: &Path) -> Result<(), SourceError> {
    let mut archive = tar::Archive::new(archive);
    let mut total = 0u64;
    for (idx, entry) in archive.entries().map_err(SourceError::NotTar)?.enumerate() {
        if idx >= MAX_ENTRIES {
            return Err(SourceError::TooLarge);
        }
        let mut entry = entry.map_err(SourceError::NotTar)?;
        let path = entry.path().map_err(SourceError::NotTar)?.into_owned();
        let shown = path.display().to_string();
        let safe = path
            .components()
            .all(|component| matches!(component, Component::Normal(_) | Component::CurDir));
        if !safe {
            return Err(SourceError::UnsafePath { path: shown });
        }
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(SourceError::Link { path: shown });
        }
        if kind.is_dir() {
            std::fs::create_dir_all(dir.join(&path)).map_err(SourceError::Io)?;
            continue;
        }
        if !kind.is_file() {
            // Devices, FIFOs and the like have no place in a template: skip them.
            continue;
        }
        total += entry.header().size().map_err(SourceError::NotTar)?;
        if total > MAX_UNPACKED_BYTES {
            return Err(SourceError::TooLarge);
        }
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(SourceError::Io)?;
        }
        let mut contents = Vec::new();
        entry
            .by_ref()
            .take(MAX_UNPACKED_BYTES)
            .read_to_end(&mut contents)
            .map_err(SourceError::NotTar)?;
        std::fs::write(&target, contents).map_err(SourceError::Io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, contents) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`, so write the raw name to test what attackers can send.
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, *contents).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn check(entries: &[(&str, &[u8])], expected: Result<(), &str>) {
        let dir = tempfile::tempdir().unwrap();
        let result = unpack(&archive(entries), dir.path()).map_err(|err| err.to_string());
        assert_eq!(
            result.as_ref().map(|_| ()).map_err(String::as_str),
            expected
        );
    }

    #[test]
    fn unpacks_plain_files_and_refuses_escapes() {
        check(&[("main.tf", b"# ok"), ("modules/a/b.tf", b"")], Ok(()));
        check(
            &[("../evil.tf", b"")],
            Err("the template source contains an unsafe path: ../evil.tf"),
        );
        check(
            &[("/etc/evil", b"")],
            Err("the template source contains an unsafe path: /etc/evil"),
        );
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(
            b"definitely not a tar archive, but long enough to be read as one. \
                         "
            .repeat(20)
            .as_slice(),
            dir.path(),
        );
        assert!(err.is_err());
    }

    #[test]
    fn refuses_links() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "main.tf", "/etc/passwd")
            .unwrap();
        let archive = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(&archive, dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the template source contains a link: main.tf"
        );
    }
}
