//! Which table the counters belong to: the watched namespace's inode and the boot id. The kernel
//! allocates a namespace's statistics zeroed when the namespace is created, and all of them at
//! boot; nothing else resets them. So a change of either is a reset, and nothing else is, however
//! far a sum of 32-bit per-CPU counters falls.

use std::{os::unix::fs::MetadataExt, path::Path};

use ctguard_protocol::status::TableIdentity;

use super::{KernelError, read};

/// The namespace of the reading thread (setns is per thread; the helper's threads all share the
/// watched one, but this is the one that reads the counters).
const NETNS: &str = "thread-self/ns/net";
const BOOT_ID: &str = "sys/kernel/random/boot_id";

/// The identity under `root` (`/proc`): the nsfs inode the namespace link points to (what the
/// kernel prints as `netns N`) and the boot id.
pub fn read_identity(root: &Path) -> Result<TableIdentity, KernelError> {
    let netns = root.join(NETNS);
    let netns_inode = std::fs::metadata(&netns)
        .map_err(|e| KernelError::at(&netns, e))?
        .ino();
    let boot_id_path = root.join(BOOT_ID);
    let boot_id = read(&boot_id_path)?.trim().to_owned();
    if boot_id.is_empty() {
        return Err(KernelError::at(&boot_id_path, "empty boot id"));
    }
    Ok(TableIdentity {
        netns_inode,
        boot_id,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const BOOT: &str = "0991dbc6-54d6-4513-855b-eae570f0bee5";

    /// The two files under a fixture root (a plain file stands in for the namespace link).
    pub(crate) fn write(root: &Path) {
        for (relative, text) in [(NETNS, "net"), (BOOT_ID, BOOT)] {
            let path = root.join(relative);
            std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
            std::fs::write(path, format!("{text}\n")).expect("write");
        }
    }

    #[test]
    fn reads_the_namespace_inode_and_the_boot_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path());
        let identity = read_identity(dir.path()).expect("reads");
        let inode = std::fs::metadata(dir.path().join(NETNS))
            .expect("stat")
            .ino();
        assert_eq!(identity.netns_inode, inode);
        assert_eq!(identity.boot_id, BOOT);
    }

    #[test]
    fn the_live_identity_is_this_threads_namespace() {
        let identity = read_identity(Path::new("/proc")).expect("procfs is mounted");
        let link = std::fs::read_link("/proc/thread-self/ns/net").expect("readlink");
        assert_eq!(
            link.to_string_lossy(),
            format!("net:[{}]", identity.netns_inode)
        );
        assert_eq!(identity.boot_id.len(), 36, "a UUID");
    }

    #[test]
    fn missing_files_are_errors_naming_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = read_identity(dir.path()).expect_err("nothing there");
        assert!(error.path.ends_with(NETNS), "{error}");
    }
}
