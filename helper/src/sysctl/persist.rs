//! The persisted sysctls file (`90-ctguard.conf` in the helper's state directory, which the
//! install links as `/etc/sysctl.d/90-ctguard.conf`, so the helper never writes in /etc): only
//! allowlisted keys, one `name = value` per line, rewritten atomically on every change. The hash
//! size also goes to `ctguard-conntrack.conf` (linked into /etc/modprobe.d).

use std::collections::BTreeMap;

use ctguard_protocol::SysctlKey;

use crate::state_dir::StateDir;

/// The sysctl.d file's name in the state directory.
pub const SYSCTL_FILE: &str = "90-ctguard.conf";
/// The modprobe.d file's name in the state directory.
pub const MODPROBE_FILE: &str = "ctguard-conntrack.conf";

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
}
