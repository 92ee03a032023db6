//! Test support: a real helper process on a throwaway socket, a throwaway network namespace, and a
//! minimal synchronous client that speaks raw frames (so tests can also send bad ones).

#![allow(dead_code, clippy::unwrap_used)]

use std::{
    io::{Read, Write},
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use ctguard_protocol::{PROTOCOL_VERSION, Request, Response, frame};

// A path of its own, so that the benchmarks' binary, which declares this file by `#[path]`, finds
// it too.
#[path = "support/topology.rs"]
pub mod topology;

/// The machine's conntrack settings, which every namespace's table obeys (`nf_conntrack_max`, the
/// hash size, the neighbour table's thresholds): the tests of this binary run in parallel threads
/// of one process, so a test that changes them, or compares them with a reading, runs alone
/// ([`host_alone`]), and every test holds a share from its first namespace ([`Netns::bare`]) until
/// its thread ends.
static HOST_SETTINGS: std::sync::RwLock<()> = std::sync::RwLock::new(());

enum HostTurn {
    Shared(std::sync::RwLockReadGuard<'static, ()>),
    Alone,
}

thread_local! {
    static HOST_TURN: std::cell::RefCell<Option<HostTurn>> = const { std::cell::RefCell::new(None) };
}

/// Waits until no other test holds a share of the machine's settings, and keeps them to this test
/// until the answer is dropped. Taken before the test's first namespace.
#[must_use]
pub fn host_alone() -> HostAlone {
    let guard = HOST_SETTINGS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    HOST_TURN.with(|turn| {
        let mut turn = turn.borrow_mut();
        assert!(
            turn.is_none(),
            "host_alone is taken before the test's first namespace"
        );
        *turn = Some(HostTurn::Alone);
    });
    HostAlone { _guard: guard }
}

/// The machine's settings held by one test alone (see [`host_alone`]).
pub struct HostAlone {
    _guard: std::sync::RwLockWriteGuard<'static, ()>,
}

impl Drop for HostAlone {
    fn drop(&mut self) {
        HOST_TURN.with(|turn| turn.borrow_mut().take());
    }
}

/// This test's share of the machine's settings, held until its thread ends (once per test).
fn share_host() {
    HOST_TURN.with(|turn| {
        let mut turn = turn.borrow_mut();
        if turn.is_none() {
            *turn = Some(HostTurn::Shared(
                HOST_SETTINGS
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            ));
        }
    });
}

/// Tests that need root and namespaces run where they can (CI runs as root, and the test command
/// sets `CTGUARD_REQUIRE_ROOT_TESTS=1` so they can never be skipped there); elsewhere they skip
/// loudly, naming the reason.
pub fn have_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CTGUARD_REQUIRE_ROOT_TESTS").is_none(),
        "{test} needs root, and CTGUARD_REQUIRE_ROOT_TESTS is set"
    );
    eprintln!("SKIPPED {test}: needs root (network namespaces, sockets owned by other groups)");
    false
}

/// Runs a command and returns its stdout, failing the test with its stderr.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Waits for a condition with a deadline; the condition is checked, never assumed.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A network namespace of our own, with conntrack active and deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A namespace with only `lo` up.
    pub fn bare(tag: &str) -> Self {
        share_host();
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("ctgtest-{tag}-{}-{n}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        let netns = Self { name };
        netns.exec("ip", &["link", "set", "lo", "up"]);
        netns
    }

    /// A namespace with conntrack active for locally sent traffic.
    pub fn new(tag: &str) -> Self {
        let netns = Self::bare(tag);
        // Conntrack only tracks a namespace once a rule there needs it.
        netns.exec(
            "nft",
            &[
                "add table inet t; add chain inet t out { type filter hook output priority 0; }; add rule inet t out ct state new counter",
            ],
        );
        // Keep unreplied UDP entries long enough for counts to be compared at leisure.
        netns.exec(
            "sysctl",
            &["-qw", "net.netfilter.nf_conntrack_udp_timeout=600"],
        );
        netns
    }

    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Sends `count` UDP packets from distinct source ports to a closed loopback port: each is a
    /// new conntrack entry.
    pub fn udp_flows(&self, count: u32, base_port: u16) {
        self.exec(
            "timeout",
            &[
                "20",
                "hping3",
                "--udp",
                "-q",
                "-c",
                &count.to_string(),
                "-i",
                "u200",
                "-s",
                &base_port.to_string(),
                "-p",
                "9",
                "127.0.0.1",
            ],
        );
    }

    /// One statistic of `conntrack -S` (read over netlink, not procfs), summed over CPUs.
    pub fn conntrack_stat_sum(&self, name: &str) -> u64 {
        let prefix = format!("{name}=");
        self.exec("conntrack", &["-S"])
            .split_whitespace()
            .filter_map(|field| field.strip_prefix(&prefix))
            .map(|value| value.parse::<u64>().unwrap())
            .sum()
    }

    /// Every statistic of one `conntrack -S` (read over netlink, not procfs), each summed over
    /// CPUs, by the name conntrack-tools prints.
    pub fn conntrack_stats(&self) -> std::collections::BTreeMap<String, u64> {
        let mut sums = std::collections::BTreeMap::new();
        for field in self.exec("conntrack", &["-S"]).split_whitespace() {
            let (name, value) = field.split_once('=').unwrap();
            if name != "cpu" {
                *sums.entry(name.to_owned()).or_default() += value.parse::<u64>().unwrap();
            }
        }
        sums
    }

    pub fn conntrack_count(&self) -> u64 {
        let out = self.exec("conntrack", &["-C"]);
        out.trim().parse().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A helper process on a socket in a fresh directory, killed on drop. It always watches a
/// throwaway namespace (its own unless `--netns` is given), so its `table inet ctguard` never
/// lands in the machine's namespace, and keeps its state and journal in the directory.
#[derive(Debug)]
pub struct HelperProcess {
    child: Child,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    _netns: Option<Netns>,
    _dir: Option<tempfile::TempDir>,
}

impl HelperProcess {
    pub fn start(extra_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut helper = Self::start_in(dir.path(), extra_args);
        helper._dir = Some(dir);
        helper
    }

    /// Starts a helper whose socket, state and journal are in `dir` (which outlives it, so a
    /// second helper can continue where the first stopped).
    pub fn start_in(dir: &Path, extra_args: &[&str]) -> Self {
        // Let other users reach the socket's directory; the socket's own mode decides the rest.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.join("helper.sock");
        let state_dir = dir.join("state");
        let own_netns = (!extra_args.contains(&"--netns")).then(|| Netns::new("helper"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_ctguard-helper"));
        command
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(&state_dir)
            .args(extra_args);
        if let Some(netns) = &own_netns {
            command.args(["--netns", &netns.name]);
        }
        let child = command
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut helper = Self {
            child,
            socket,
            state_dir,
            _netns: own_netns,
            _dir: None,
        };
        let socket = helper.socket.clone();
        wait_for("the helper's socket", Duration::from_secs(10), || {
            UnixStream::connect(&socket).is_ok()
        });
        assert!(helper.is_running(), "helper exited at start");
        helper
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs a command in the namespace the helper watches, when it made its own.
    pub fn netns_exec(&self, program: &str, args: &[&str]) -> String {
        self._netns
            .as_ref()
            .expect("the helper watches a namespace of its own")
            .exec(program, args)
    }

    pub fn journal(&self) -> PathBuf {
        self.state_dir.join("journal.jsonl")
    }

    /// SIGKILL, as a crash would: no clean-up runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn connect(&self) -> Connection {
        connect_to(&self.socket)
    }

    /// Connects, shakes hands, and returns the connection ready for requests.
    pub fn session(&self) -> Connection {
        session_at(&self.socket)
    }
}

/// A connection to the helper socket at `socket`, with a read timeout.
pub fn connect_to(socket: &Path) -> Connection {
    let stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    Connection { stream }
}

/// Connects to `socket`, shakes hands, and returns the connection ready for requests.
pub fn session_at(socket: &Path) -> Connection {
    let mut connection = connect_to(socket);
    let welcome = connection.ask(&Request::Hello {
        protocol_version: PROTOCOL_VERSION,
    });
    assert!(matches!(welcome, Response::Welcome { .. }), "{welcome:?}");
    connection
}

impl Drop for HelperProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Connection {
    pub stream: UnixStream,
}

impl Connection {
    pub fn send_raw(&mut self, body: &[u8]) {
        let len = u32::try_from(body.len()).unwrap();
        self.stream.write_all(&len.to_be_bytes()).unwrap();
        self.stream.write_all(body).unwrap();
    }

    /// Reads one response, or `None` when the helper closed the connection.
    pub fn receive(&mut self) -> Option<Response> {
        let mut len = [0u8; 4];
        if self.stream.read_exact(&mut len).is_err() {
            return None;
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).unwrap();
        Some(frame::decode(&body).unwrap())
    }

    /// Sends a request and reads the answer; `None` when the helper is gone.
    pub fn try_ask(&mut self, request: &Request) -> Option<Response> {
        let body = frame::encode(request).unwrap();
        let len = u32::try_from(body.len()).unwrap();
        self.stream.write_all(&len.to_be_bytes()).ok()?;
        self.stream.write_all(&body).ok()?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(frame::decode(&body).unwrap())
    }

    pub fn ask(&mut self, request: &Request) -> Response {
        self.send_raw(&frame::encode(request).unwrap());
        self.receive().expect("the helper answered")
    }
}

pub fn socket_mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}
