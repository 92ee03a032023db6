//! A small routed network of throwaway namespaces, after end2end/sandbox/sandbox.sh:
//!
//! ```text
//! inet  eth0 203.0.113.10 (client), .66 (attacker)  <->  va 203.0.113.1   router (conntrack on,
//! guest eth0 198.51.100.10, TCP listener :8080      <->  vg 198.51.100.1   forwarding)
//! ```
//!
//! Documentation ranges only, no link to the machine's namespace, floods bounded in count and
//! time, everything deleted on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Netns, run, wait_for};

pub const ROUTER_INET: &str = "203.0.113.1";
pub const CLIENT: &str = "203.0.113.10";
pub const ATTACKER: &str = "203.0.113.66";
pub const GUEST: &str = "198.51.100.10";
pub const PORT: u16 = 8080;
/// The panel user's address in requests: outside every test network.
pub const ADMIN: &str = "192.0.2.200";

const ROUTER_RULESET: &str = "table inet ctgtest {
  chain forward { type filter hook forward priority filter; policy accept; ct state new counter accept; }
}";

#[derive(Debug)]
pub struct Topology {
    listener: Child,
    pub router: Netns,
    pub inet: Netns,
    pub guest: Netns,
}

impl Topology {
    pub fn new(tag: &str) -> Self {
        let router = Netns::bare(&format!("{tag}-r"));
        let inet = Netns::bare(&format!("{tag}-i"));
        let guest = Netns::bare(&format!("{tag}-g"));
        for ns in [&router, &inet, &guest] {
            ns.exec(
                "sysctl",
                &[
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            );
        }
        // veth pairs created directly inside the namespaces: nothing lives in the initial one.
        run(
            "ip",
            &[
                "link",
                "add",
                "va",
                "netns",
                &router.name,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &inet.name,
            ],
        );
        run(
            "ip",
            &[
                "link",
                "add",
                "vg",
                "netns",
                &router.name,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &guest.name,
            ],
        );
        router.exec("ip", &["addr", "add", "203.0.113.1/24", "dev", "va"]);
        router.exec("ip", &["addr", "add", "198.51.100.1/24", "dev", "vg"]);
        router.exec("ip", &["link", "set", "va", "up"]);
        router.exec("ip", &["link", "set", "vg", "up"]);
        for address in [CLIENT, ATTACKER] {
            inet.exec(
                "ip",
                &["addr", "add", &format!("{address}/24"), "dev", "eth0"],
            );
        }
        inet.exec("ip", &["link", "set", "eth0", "up"]);
        inet.exec("ip", &["route", "add", "default", "via", ROUTER_INET]);
        guest.exec(
            "ip",
            &["addr", "add", &format!("{GUEST}/24"), "dev", "eth0"],
        );
        guest.exec("ip", &["link", "set", "eth0", "up"]);
        guest.exec("ip", &["route", "add", "default", "via", "198.51.100.1"]);
        router.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        router.exec(
            "sysctl",
            &[
                "-qw",
                "net.netfilter.nf_conntrack_udp_timeout=600",
                "net.netfilter.nf_conntrack_udp_timeout_stream=600",
            ],
        );
        let listener = Command::new("ip")
            .args([
                "netns",
                "exec",
                &guest.name,
                "socat",
                &format!("TCP-LISTEN:{PORT},bind={GUEST},reuseaddr,fork"),
                "EXEC:echo ctgtest-ok",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat is installed");
        let topology = Self {
            listener,
            router,
            inet,
            guest,
        };
        topology.load_router_ruleset();
        wait_for("the guest's listener", Duration::from_secs(10), || {
            topology
                .guest
                .exec("ss", &["-Hltn", &format!("sport = :{PORT}")])
                .contains(&PORT.to_string())
        });
        topology
    }

    /// The router's own rules (conntrack on for forwarded traffic); also what an operator
    /// reloads after `nft flush ruleset`.
    pub fn load_router_ruleset(&self) {
        self.router.exec("nft", &[ROUTER_RULESET]);
    }

    /// `count` UDP packets from `source` (an address of inet) to the guest, each from its own
    /// source port starting at `base_port` (or all from `base_port` with `fixed_sport`, then
    /// to successive destination ports): `count` new entries on the router unless dropped.
    pub fn flood(&self, source: &str, count: u32, base_port: u16, fixed_sport: bool) {
        let count = count.to_string();
        let base = base_port.to_string();
        let mut args = vec![
            "20", "hping3", "--udp", "-q", "-I", "eth0", "-a", source, "-c", &count, "-i", "u200",
        ];
        if fixed_sport {
            args.extend(["-s", &base, "-k", "-p", "++20000"]);
        } else {
            args.extend(["-s", &base, "-p", "9999"]);
        }
        args.push(GUEST);
        // hping3 exits 1 when nothing answers, which is normal here: only the time bound matters.
        let status = Command::new("ip")
            .args(["netns", "exec", &self.inet.name, "timeout"])
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("hping3 runs");
        assert!(
            matches!(status.code(), Some(0 | 1)),
            "hping3 did not finish in time: {status}"
        );
    }

    /// The router's entries whose original source is `source` (optionally with that source
    /// port), as conntrack-tools lists them.
    pub fn entries_from(&self, source: &str, sport: Option<u16>) -> u64 {
        let mut args = vec!["-L".to_owned(), "-s".to_owned(), source.to_owned()];
        if let Some(port) = sport {
            args.extend([
                "-p".into(),
                "udp".into(),
                "--sport".into(),
                port.to_string(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = Command::new("ip")
            .args(["netns", "exec", &self.router.name, "conntrack"])
            .args(&args)
            .output()
            .expect("conntrack runs");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count() as u64
    }

    /// The legitimate client: a TCP connection through the router to the guest's listener.
    pub fn client_connects(&self) -> bool {
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.inet.name,
                "timeout",
                "5",
                "socat",
                "-T3",
                "-u",
                &format!("TCP:{GUEST}:{PORT},bind={CLIENT},connect-timeout=3"),
                "STDOUT",
            ])
            .output()
            .expect("socat runs");
        String::from_utf8_lossy(&output.stdout).trim() == "ctgtest-ok"
    }

    /// `nft list set inet ctguard SET` on the router, or `None` when it is missing.
    pub fn nft_set(&self, set: &str) -> Option<String> {
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.router.name,
                "nft",
                "list",
                "set",
                "inet",
                "ctguard",
                set,
            ])
            .output()
            .expect("nft runs");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = self.listener.kill();
        let _ = self.listener.wait();
    }
}
