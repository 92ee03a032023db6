//! Whether nf_conntrack is a loadable module or built into the kernel: the hash size persists as
//! a modprobe.d option only for the former; the latter takes `nf_conntrack.hashsize=` on the
//! kernel command line.
//!
//! A loaded module's /sys/module/<name> holds `initstate` (kernel/module/sysfs.c adds it with
//! the other modinfo attributes); a built-in one with parameters has the directory (for
//! `parameters/`, kernel/params.c's `param_sysfs_builtin`) but no `initstate`.

use std::path::Path;

use ctguard_protocol::ConntrackModule;

/// Where the kernel shows nf_conntrack.
pub const SYS_MODULE_DIR: &str = "/sys/module/nf_conntrack";

/// How nf_conntrack is present in the kernel whose /sys/module/nf_conntrack is `dir`.
pub fn conntrack_module(dir: &Path) -> ConntrackModule {
    if dir.join("initstate").exists() {
        ConntrackModule::Loadable
    } else if dir.join("parameters").is_dir() {
        ConntrackModule::BuiltIn
    } else {
        ConntrackModule::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_has_initstate_a_built_in_only_parameters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let module = dir.path().join("nf_conntrack");
        assert_eq!(conntrack_module(&module), ConntrackModule::Unknown);
        std::fs::create_dir_all(module.join("parameters")).expect("mkdir");
        assert_eq!(conntrack_module(&module), ConntrackModule::BuiltIn);
        std::fs::write(module.join("initstate"), "live\n").expect("writes");
        assert_eq!(conntrack_module(&module), ConntrackModule::Loadable);
    }

    #[test]
    fn this_hosts_kernel_is_read_as_it_is() {
        // Whatever this kernel has, the answer agrees with what /sys shows.
        let dir = Path::new(SYS_MODULE_DIR);
        let expected = match (dir.join("initstate").exists(), dir.is_dir()) {
            (true, _) => ConntrackModule::Loadable,
            (false, true) => ConntrackModule::BuiltIn,
            (false, false) => ConntrackModule::Unknown,
        };
        assert_eq!(conntrack_module(dir), expected);
    }
}
