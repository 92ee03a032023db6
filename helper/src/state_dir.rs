//! The helper's own directory (blocks, journal, persisted settings): checked at start to be
//! writable by the helper's user alone, all the way up from `/`, then held open as a directory
//! handle; every file in it is opened relative to that handle and never through a symlink.
//!
//! Why by hand: the standard library has no `openat`, and a crate that sandboxes paths
//! (cap-std) would still follow symlinks that stay inside the directory, where a planted
//! `blocks.json.tmp -> /etc/ld.so.preload` must fail instead. The few calls needed are nix's.

use std::{
    ffi::OsStr,
    fs::File,
    io::Write,
    os::fd::{AsFd, OwnedFd},
    path::{Component, Path, PathBuf},
};

use nix::{
    dir::Dir,
    errno::Errno,
    fcntl::{AT_FDCWD, Flock, FlockArg, OFlag, RenameFlags, openat, renameat, renameat2},
    sys::stat::{Mode, fchmod, fstat, mkdirat},
    unistd::{Uid, UnlinkatFlags, fsync, unlinkat},
};

#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("the state directory {0} must be an absolute path without `.` or `..`")]
    NotAbsolute(PathBuf),
    #[error(
        "refusing to use {path}: it is owned by uid {owner}, not by root (or the helper's own \
         user): another user could swap or plant files the helper writes as root"
    )]
    ForeignOwner { path: PathBuf, owner: u32 },
    #[error(
        "refusing to use {path}: its mode {mode:04o} lets group or others write in it (a parent \
         may be world-writable only with the sticky bit); chmod go-w it"
    )]
    Writable { path: PathBuf, mode: u32 },
    #[error("refusing to use {path}: it is a symlink or not a directory; give the real path")]
    NotADirectory { path: PathBuf },
    #[error("cannot open {path}: {source}")]
    Io { path: PathBuf, source: Errno },
}

/// A file name inside the state directory: one component, no `/`, not `.` or `..`. The names
/// are the helper's own constants, so a bad one is a programming error.
fn checked_name(name: &str) -> &str {
    assert!(
        !name.is_empty() && name != "." && name != ".." && !name.contains('/'),
        "{name:?} is not a file name"
    );
    name
}

/// The open state directory.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    dir: OwnedFd,
}

/// The uids a state directory and its parents may belong to: root, and the helper's own user
/// when it runs as another one (a developer's unprivileged test run).
fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == Uid::effective().as_raw()
}

const DIRECTORY: OFlag = OFlag::O_DIRECTORY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_RDONLY)
    .union(OFlag::O_CLOEXEC);

/// Checks one opened directory of the path: a directory, owned by a trusted user, and not
/// writable by group or others, except a root-owned sticky directory like /tmp (there nobody
/// can rename or remove entries that are not theirs, and the next component is checked in turn).
fn check_directory(fd: &OwnedFd, path: &Path, is_final: bool) -> Result<(), StateDirError> {
    // Opened with O_DIRECTORY: it is a directory; who may change it is the question.
    let stat = fstat(fd).map_err(|source| StateDirError::Io {
        path: path.to_owned(),
        source,
    })?;
    if !trusted_owner(stat.st_uid) {
        return Err(StateDirError::ForeignOwner {
            path: path.to_owned(),
            owner: stat.st_uid,
        });
    }
    let mode = stat.st_mode & 0o7777;
    let sticky_root_dir = !is_final && stat.st_uid == 0 && mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky_root_dir {
        return Err(StateDirError::Writable {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

impl StateDir {
    /// Opens `path`, creating it (mode 0700) and any missing parent when the directory above
    /// passed its check. Walks down from `/` with `openat(O_NOFOLLOW)`, checking each directory
    /// it holds, so no symlink and no directory swapped in between the check and the use can
    /// redirect it.
    pub fn open(path: &Path) -> Result<Self, StateDirError> {
        let not_absolute = || StateDirError::NotAbsolute(path.to_owned());
        if !path.is_absolute() {
            return Err(not_absolute());
        }
        let io = |at: &Path| {
            let at = at.to_owned();
            move |source| StateDirError::Io { path: at, source }
        };
        let root = Path::new("/");
        let mut dir = openat(AT_FDCWD, root, DIRECTORY, Mode::empty()).map_err(io(root))?;
        let components: Vec<&OsStr> = path
            .components()
            .map(|c| match c {
                Component::RootDir => Ok(None),
                Component::Normal(name) => Ok(Some(name)),
                _ => Err(not_absolute()),
            })
            .filter_map(Result::transpose)
            .collect::<Result<_, _>>()?;
        check_directory(&dir, root, components.is_empty())?;
        let mut at = PathBuf::from("/");
        for (index, name) in components.iter().enumerate() {
            at.push(name);
            let is_final = index + 1 == components.len();
            let opened = match openat(&dir, *name, DIRECTORY, Mode::empty()) {
                Err(Errno::ENOENT) => {
                    match mkdirat(&dir, *name, Mode::from_bits_truncate(0o700)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(source) => return Err(io(&at)(source)),
                    }
                    openat(&dir, *name, DIRECTORY, Mode::empty())
                }
                other => other,
            };
            dir = match opened {
                Ok(fd) => fd,
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    return Err(StateDirError::NotADirectory { path: at });
                }
                Err(source) => return Err(io(&at)(source)),
            };
            check_directory(&dir, &at, is_final)?;
        }
        Ok(Self {
            path: path.to_owned(),
            dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A second handle on the same directory (a `dup`: the same open directory, no new lookup).
    pub fn try_clone(&self) -> std::io::Result<Self> {
        Ok(Self {
            path: self.path.clone(),
            dir: self.dir.try_clone()?,
        })
    }

    /// Where `name` lives, for messages.
    pub fn display_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn open_at(&self, name: &str, flags: OFlag, mode: u32) -> std::io::Result<File> {
        let fd = openat(
            &self.dir,
            checked_name(name),
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )?;
        Ok(File::from(fd))
    }

    /// Opens `name` for reading; `None` when it does not exist. A symlink is an error (ELOOP).
    pub fn open_read(&self, name: &str) -> std::io::Result<Option<File>> {
        match self.open_at(name, OFlag::O_RDONLY, 0) {
            Ok(file) => Ok(Some(file)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The whole content of `name`; `None` when it does not exist.
    pub fn read(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        use std::io::Read as _;
        let Some(mut file) = self.open_read(name)? else {
            return Ok(None);
        };
        let mut body = Vec::new();
        file.read_to_end(&mut body)?;
        Ok(Some(body))
    }

    /// Opens `name` for reading and appending, creating it with `mode` if missing; a new file
    /// makes the directory entry durable (fsync of the directory) before it is used.
    pub fn open_append(&self, name: &str, mode: u32) -> std::io::Result<File> {
        let file = match self.open_at(name, OFlag::O_RDWR | OFlag::O_APPEND, 0) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let file = self.open_at(
                    name,
                    OFlag::O_RDWR | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_EXCL,
                    mode,
                )?;
                fsync(&self.dir)?;
                file
            }
            Err(error) => Err(error)?,
        };
        reject_hard_links(&file)?;
        Ok(file)
    }

    /// Writes `body` to `name` so readers (and a crash) see the old content or the new, whole:
    /// a new temporary file (`O_EXCL`: never one somebody planted, nor a symlink), fsync,
    /// `renameat` over the name, fsync of the directory.
    pub fn write_atomically(&self, name: &str, body: &[u8], mode: u32) -> std::io::Result<()> {
        let temporary = format!("{}.tmp", checked_name(name));
        // A leftover from a crash, or anything planted there: unlinkat removes the entry itself
        // (a symlink, not what it points to).
        match unlinkat(&self.dir, temporary.as_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(error) => return Err(error.into()),
        }
        let mut file = self.open_at(
            &temporary,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            mode,
        )?;
        // The umask may have narrowed the mode; a world-readable sysctl.d file needs its 0644.
        fchmod(file.as_fd(), Mode::from_bits_truncate(mode))?;
        file.write_all(body)?;
        file.sync_all()?;
        renameat(&self.dir, temporary.as_str(), &self.dir, checked_name(name))?;
        fsync(&self.dir)?;
        Ok(())
    }

    /// The names of the directory's entries (`.` and `..` left out), in no particular order.
    pub fn names(&self) -> std::io::Result<Vec<String>> {
        // A second descriptor of the same open directory: reading it moves its position only.
        let mut listing = Dir::from_fd(self.dir.try_clone()?)?;
        let mut names = Vec::new();
        for entry in listing.iter() {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Renames `from` to `to`, refusing (EEXIST) when `to` exists instead of replacing it, and
    /// makes the change durable (fsync of the directory).
    pub fn rename_no_replace(&self, from: &str, to: &str) -> std::io::Result<()> {
        renameat2(
            &self.dir,
            checked_name(from),
            &self.dir,
            checked_name(to),
            RenameFlags::RENAME_NOREPLACE,
        )?;
        fsync(&self.dir)?;
        Ok(())
    }

    /// Takes the directory's exclusive lock (`flock` on the directory itself) without waiting:
    /// one helper per state. Held as long as the returned guard lives.
    pub fn lock(&self) -> std::io::Result<Flock<File>> {
        let handle = File::from(self.dir.try_clone()?);
        Flock::lock(handle, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| errno.into())
    }
}

/// A file with a second name elsewhere (a hard link made while the directory was shared) could
/// be the target of writes meant for ours; the helper's files have exactly one link.
fn reject_hard_links(file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    if file.metadata()?.nlink() > 1 {
        return Err(std::io::Error::other(
            "the file has more than one link: refusing to write through it",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn private_tempdir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        dir
    }

    #[test]
    fn a_missing_directory_is_created_private() {
        let base = private_tempdir();
        let path = base.path().join("a/b/state");
        let dir = StateDir::open(&path).expect("opens");
        assert_eq!(dir.path(), path);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn relative_and_dotted_paths_are_refused() {
        for bad in ["relative/state", "/tmp/../etc"] {
            assert!(matches!(
                StateDir::open(Path::new(bad)),
                Err(StateDirError::NotAbsolute(_))
            ));
        }
    }

    #[test]
    fn a_directory_writable_by_others_is_refused_by_name() {
        let base = private_tempdir();
        let shared = base.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o770)).expect("chmod");
        let error = StateDir::open(&shared.join("state")).expect_err("refused");
        assert!(
            matches!(&error, StateDirError::Writable { path, mode: 0o770 } if *path == shared),
            "{error}"
        );
        assert!(error.to_string().contains(&shared.display().to_string()));
    }

    #[test]
    fn a_symlinked_directory_is_refused() {
        let base = private_tempdir();
        std::fs::create_dir(base.path().join("real")).expect("mkdir");
        symlink(base.path().join("real"), base.path().join("link")).expect("symlink");
        assert!(matches!(
            StateDir::open(&base.path().join("link")),
            Err(StateDirError::NotADirectory { .. })
        ));
        assert!(matches!(
            StateDir::open(&base.path().join("link/state")),
            Err(StateDirError::NotADirectory { .. })
        ));
    }

    #[test]
    fn writes_replace_a_planted_symlink_instead_of_following_it() {
        let base = private_tempdir();
        let dir = StateDir::open(&base.path().join("state")).expect("opens");
        let victim = base.path().join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        symlink(&victim, base.path().join("state/blocks.json.tmp")).expect("symlink");
        dir.write_atomically("blocks.json", b"{}", 0o600)
            .expect("writes");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        assert_eq!(dir.read("blocks.json").expect("read"), Some(b"{}".to_vec()));
        // A symlink at the final name is replaced by the rename, never written through.
        std::fs::remove_file(base.path().join("state/blocks.json")).expect("rm");
        symlink(&victim, base.path().join("state/blocks.json")).expect("symlink");
        assert!(
            dir.read("blocks.json").is_err(),
            "reads never follow a symlink"
        );
        dir.write_atomically("blocks.json", b"{\"x\":1}", 0o600)
            .expect("writes");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        let meta = std::fs::symlink_metadata(base.path().join("state/blocks.json")).expect("meta");
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn appends_refuse_symlinks_and_hard_links() {
        let base = private_tempdir();
        let dir = StateDir::open(&base.path().join("state")).expect("opens");
        let victim = base.path().join("victim");
        std::fs::write(&victim, b"").expect("write");
        symlink(&victim, base.path().join("state/journal.jsonl")).expect("symlink");
        assert!(dir.open_append("journal.jsonl", 0o600).is_err());
        std::fs::remove_file(base.path().join("state/journal.jsonl")).expect("rm");
        std::fs::hard_link(&victim, base.path().join("state/journal.jsonl")).expect("link");
        assert!(dir.open_append("journal.jsonl", 0o600).is_err());
        std::fs::remove_file(base.path().join("state/journal.jsonl")).expect("rm");
        let mut file = dir.open_append("journal.jsonl", 0o600).expect("creates");
        file.write_all(b"line\n").expect("appends");
        assert_eq!(std::fs::read(&victim).expect("read"), b"");
    }

    #[test]
    fn a_second_lock_is_refused_while_the_first_is_held() {
        let base = private_tempdir();
        let first = StateDir::open(&base.path().join("state")).expect("opens");
        let second = StateDir::open(&base.path().join("state")).expect("opens");
        let held = first.lock().expect("first lock");
        let refused = second.lock().expect_err("second lock");
        assert_eq!(refused.raw_os_error(), Some(Errno::EWOULDBLOCK as i32));
        drop(held);
        assert!(second.lock().is_ok());
    }
}
