//! The persisted sysctls file (`/etc/sysctl.d/90-ctguard.conf` by default): only allowlisted
//! keys, one `name = value` per line, rewritten atomically on every change.

use std::{collections::BTreeMap, path::Path};

use ctguard_protocol::SysctlKey;

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

/// Sets `key` in the file at `path`, keeping the other keys.
pub fn persist(path: &Path, key: SysctlKey, value: u64) -> std::io::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error),
    };
    let mut values = parse(&existing);
    values.insert(key, value);
    // 0644 like every file in /etc/sysctl.d.
    crate::state::write_atomically(path, render(&values).as_bytes(), 0o644)
}

/// The module option that sizes the hash table when nf_conntrack loads.
pub fn persist_hashsize(path: &Path, buckets: u64) -> std::io::Result<()> {
    let text = format!(
        "# Written by ctguard-helper: the conntrack hash size set from the panel.\n\
         options nf_conntrack hashsize={buckets}\n"
    );
    crate::state::write_atomically(path, text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_updated_in_place_and_foreign_lines_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sysctl.d/90-ctguard.conf");
        persist(&path, SysctlKey::TcpTimeoutEstablished, 7200).expect("writes");
        persist(&path, SysctlKey::NfConntrackMax, 262_144).expect("writes");
        persist(&path, SysctlKey::TcpTimeoutEstablished, 3600).expect("writes");
        let text = std::fs::read_to_string(&path).expect("reads");
        assert!(
            text.contains("net.netfilter.nf_conntrack_max = 262144\n"),
            "{text}"
        );
        assert!(text.contains("net.netfilter.nf_conntrack_tcp_timeout_established = 3600\n"));
        assert_eq!(text.matches(" = ").count(), 2);
        let modprobe = dir.path().join("modprobe.d/ctguard.conf");
        persist_hashsize(&modprobe, 65_536).expect("writes");
        let text = std::fs::read_to_string(&modprobe).expect("reads");
        assert!(
            text.ends_with("options nf_conntrack hashsize=65536\n"),
            "{text}"
        );
        let parsed = parse("kernel.core_pattern = |/bin/sh\nnet.netfilter.nf_conntrack_max=5\n");
        assert_eq!(parsed.len(), 1);
    }
}
