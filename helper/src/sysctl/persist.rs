//! The persisted sysctls files in the helper's state directory, each rewritten atomically on
//! every change, only allowlisted keys, one `name = value` per line:
//! - `90-ctguard.conf`, which the install links as `/etc/sysctl.d/90-ctguard.conf` (so the helper
//!   never writes in /etc): applied at boot, by systemd-sysctl, to the host's own namespace. It
//!   takes global keys, and per-namespace keys when the helper watches its own namespace.
//! - `netns.conf`: per-namespace keys set while the helper watches another namespace
//!   (`--netns`), with that namespace's name; never linked anywhere, the helper re-applies it
//!   there when it starts (boot would apply it to the wrong namespace).
//! - `ctguard-conntrack.conf` (linked into /etc/modprobe.d): the hash size.

use std::collections::BTreeMap;

use ctguard_protocol::SysctlKey;

use crate::state_dir::StateDir;

/// The sysctl.d file's name in the state directory.
pub const SYSCTL_FILE: &str = "90-ctguard.conf";
/// The modprobe.d file's name in the state directory.
pub const MODPROBE_FILE: &str = "ctguard-conntrack.conf";
/// The watched namespace's settings, in the state directory only.
pub const NETNS_FILE: &str = "netns.conf";
/// The line of [`NETNS_FILE`] that names the namespace.
const NETNS_NAME: &str = "netns";

const HEADER: &str = "# Written by ctguard-helper: the panel's persisted settings.\n\
# Applied at boot by systemd-sysctl; edits here are overwritten by the next change.\n";

/// Parses the file's allowlisted `name = value` lines; anything else is dropped.
pub fn parse(text: &str) -> BTreeMap<SysctlKey, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            let key = SysctlKey::ALL
                .iter()
                .copied()
                .find(|k| k.name() == name.trim())?;
            Some((key, value.trim().parse().ok()?))
        })
        .collect()
}

pub fn render(values: &BTreeMap<SysctlKey, u64>) -> String {
    let mut text = HEADER.to_owned();
    for (key, value) in values {
        text.push_str(&format!("{} = {value}\n", key.name()));
    }
    text
}

/// The persisted values; none when the file does not exist yet.
pub fn read(dir: &StateDir) -> std::io::Result<BTreeMap<SysctlKey, u64>> {
    Ok(match dir.read(SYSCTL_FILE)? {
        Some(bytes) => parse(&String::from_utf8_lossy(&bytes)),
        None => BTreeMap::new(),
    })
}

/// Sets `key` in the sysctl.d file, keeping the other keys.
pub fn persist(dir: &StateDir, key: SysctlKey, value: u64) -> std::io::Result<()> {
    let mut values = read(dir)?;
    values.insert(key, value);
    // 0644 like every file in /etc/sysctl.d.
    dir.write_atomically(SYSCTL_FILE, render(&values).as_bytes(), 0o644)
}

/// Per-namespace values persisted for one named namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceValues {
    pub netns: String,
    pub values: BTreeMap<SysctlKey, u64>,
}

const NETNS_HEADER: &str = "# Written by ctguard-helper: settings of the network namespace it watches.\n\
# Re-applied there by the helper when it starts; not a sysctl.d file, never applied at boot.\n";

/// The watched namespace's persisted values; none when the file does not exist yet or names no
/// namespace.
pub fn read_netns(dir: &StateDir) -> std::io::Result<Option<NamespaceValues>> {
    let Some(bytes) = dir.read(NETNS_FILE)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let netns = text.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        (name.trim() == NETNS_NAME).then(|| value.trim().to_owned())
    });
    Ok(netns.map(|netns| NamespaceValues {
        netns,
        values: parse(&text),
    }))
}

/// Sets `key` for namespace `netns`, keeping its other keys. Values saved for another namespace
/// are dropped: one helper (one state directory) watches one namespace.
pub fn persist_netns(
    dir: &StateDir,
    netns: &str,
    key: SysctlKey,
    value: u64,
) -> std::io::Result<()> {
    let mut saved = read_netns(dir)?
        .filter(|saved| saved.netns == netns)
        .unwrap_or_else(|| NamespaceValues {
            netns: netns.to_owned(),
            values: BTreeMap::new(),
        });
    saved.values.insert(key, value);
    let mut text = format!("{NETNS_HEADER}{NETNS_NAME} = {netns}\n");
    text.push_str(&render(&saved.values)[HEADER.len()..]);
    // Root-only like the helper's other state: nothing else reads it.
    dir.write_atomically(NETNS_FILE, text.as_bytes(), 0o600)
}

/// The module option that sizes the hash table when nf_conntrack loads.
pub fn persist_hashsize(dir: &StateDir, buckets: u64) -> std::io::Result<()> {
    let text = format!(
        "# Written by ctguard-helper: the conntrack hash size set from the panel.\n\
         options nf_conntrack hashsize={buckets}\n"
    );
    dir.write_atomically(MODPROBE_FILE, text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_updated_in_place_and_foreign_lines_dropped() {
        let base = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(&base.path().join("state")).expect("state dir");
        let path = state.display_path(SYSCTL_FILE);
        persist(&state, SysctlKey::TcpTimeoutEstablished, 7200).expect("writes");
        persist(&state, SysctlKey::NfConntrackMax, 262_144).expect("writes");
        persist(&state, SysctlKey::TcpTimeoutEstablished, 3600).expect("writes");
        let text = std::fs::read_to_string(&path).expect("reads");
        assert!(
            text.contains("net.netfilter.nf_conntrack_max = 262144\n"),
            "{text}"
        );
        assert!(text.contains("net.netfilter.nf_conntrack_tcp_timeout_established = 3600\n"));
        assert_eq!(text.matches(" = ").count(), 2);
        let modprobe = state.display_path(MODPROBE_FILE);
        persist_hashsize(&state, 65_536).expect("writes");
        let text = std::fs::read_to_string(&modprobe).expect("reads");
        assert!(
            text.ends_with("options nf_conntrack hashsize=65536\n"),
            "{text}"
        );
        let parsed = parse("kernel.core_pattern = |/bin/sh\nnet.netfilter.nf_conntrack_max=5\n");
        assert_eq!(parsed.len(), 1);
    }

    #[test]
    fn namespace_values_go_to_their_own_file_named_after_the_namespace() {
        let base = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(&base.path().join("state")).expect("state dir");
        assert_eq!(read_netns(&state).expect("reads"), None);
        let key = SysctlKey::TcpTimeoutCloseWait;
        persist_netns(&state, "guests", key, 3_600).expect("writes");
        persist_netns(&state, "guests", SysctlKey::UdpTimeout, 30).expect("writes");
        persist_netns(&state, "guests", key, 120).expect("writes");
        let saved = read_netns(&state).expect("reads").expect("saved");
        assert_eq!(saved.netns, "guests");
        assert_eq!(
            saved.values,
            BTreeMap::from([(key, 120), (SysctlKey::UdpTimeout, 30)])
        );
        assert_eq!(
            read(&state).expect("reads"),
            BTreeMap::new(),
            "not the sysctl.d file"
        );
        assert!(state.read(SYSCTL_FILE).expect("reads").is_none());
        // Another namespace starts afresh.
        persist_netns(&state, "other", SysctlKey::UdpTimeout, 40).expect("writes");
        let saved = read_netns(&state).expect("reads").expect("saved");
        assert_eq!((saved.netns.as_str(), saved.values.len()), ("other", 1));
    }
}
