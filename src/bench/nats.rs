//! `urc bench --store nats`: the bench's own NATS JetStream, one node (`--replicas 1`) or three in a cluster (`--replicas 3`), on free loopback ports in a temporary directory, configured as docs/cluster.md's nodes (file storage, every write synced before it is acknowledged where the server accepts it), waited for until ready, measured from `/proc`, and stopped and removed afterwards.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::cleanup::{self, Ticket};
use super::measure::Proc;

/// The longest the nodes may take to be ready (tests/common/nats.rs measured 0.2-0.5 s for
/// three new nodes on this machine).
const READY_BOUND: Duration = Duration::from_secs(20);
/// The longest a node may take to stop on SIGTERM before it is killed.
const STOP_BOUND: Duration = Duration::from_secs(5);
/// Times the ports are picked again when one was taken before its node bound it.
const PORT_TRIES: usize = 3;

/// What to install when no nats-server is found.
const INSTALL: &str = "nats-server not found: run scripts/install-nats-server (it prints the server's path, for --nats-server) or set URC_NATS_SERVER";

/// One nats-server of the bench's.
#[derive(Debug)]
struct Node {
    /// Its `server_name`: `n1`, `n2`, `n3`.
    name: String,
    /// Its directory: `nats.conf`, `store/`, `log`.
    dir: PathBuf,
    /// Its client port (the relays').
    client: u16,
    /// Its monitoring port (`/healthz`, `/jsz`).
    http: u16,
    child: Child,
    /// Its process, killed if the bench is stopped by a signal.
    _tracked: Ticket,
}

/// The bench's NATS servers, killed and removed when dropped.
#[derive(Debug)]
pub(super) struct Nats {
    nodes: Vec<Node>,
    /// Copies of each stream the relays make.
    pub(super) replicas: usize,
    /// Whether the nodes sync every write before acknowledging it (`sync_interval: always`).
    syncs: bool,
    /// What `nats-server --version` said.
    version: String,
    /// Every node's directory, removed when dropped (after the nodes are killed).
    dir: TempDir,
    _tracked: Ticket,
}

impl Nats {
    /// Starts one node (`replicas` 1) or a cluster of three (`replicas` 3) of `server` (found
    /// as [`find_server`] says when `None`) in a fresh directory inside `parent` (the
    /// system's temporary directory when `None`), every write synced before its
    /// acknowledgement if `sync_always` (and the server accepts it), and waits until
    /// JetStream is ready on every node.
    ///
    /// # Errors
    /// A one-line explanation when no server is found, a node exits, or the nodes are not
    /// ready within [`READY_BOUND`].
    pub(super) fn start(
        server: Option<&Path>,
        replicas: usize,
        sync_always: bool,
        parent: Option<&Path>,
    ) -> Result<Nats, String> {
        if replicas != 1 && replicas != 3 {
            return Err(format!("--replicas must be 1 or 3, not {replicas}"));
        }
        let server = find_server(server)?;
        let version = version(&server).ok_or(INSTALL)?;
        let dir = match parent {
            Some(p) => tempfile::Builder::new()
                .prefix("urc-bench-nats-")
                .tempdir_in(p),
            None => tempfile::Builder::new().prefix("urc-bench-nats-").tempdir(),
        }
        .map_err(|e| format!("cannot make a directory for nats-server: {e}"))?;
        cleanup::arm();
        let tracked = cleanup::track_dir(dir.path());
        let syncs = sync_always && syncs_always(&server, dir.path());
        let mut nats = Nats {
            nodes: Vec::new(),
            replicas,
            syncs,
            version,
            dir,
            _tracked: tracked,
        };
        for attempt in 1..=PORT_TRIES {
            let try_dir = nats.dir.path().join(format!("try{attempt}"));
            nats.nodes = spawn(&server, &try_dir, replicas, syncs)?;
            match nats.wait_ready() {
                Ok(()) => return Ok(nats),
                Err(Ready::PortTaken) => nats.kill(),
                Err(Ready::Failed(why)) => return Err(why),
            }
        }
        Err(format!(
            "nats-server: a port picked was taken {PORT_TRIES} times over"
        ))
    }

    /// Every node's client URL, as `--store` takes them.
    pub(super) fn urls(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client))
            .collect();
        urls.join(",")
    }

    /// The arguments that put a relay's rooms on these servers.
    pub(super) fn serve_args(&self) -> Vec<String> {
        vec![
            "--store".into(),
            self.urls(),
            "--replicas".into(),
            self.replicas.to_string(),
        ]
    }

    /// CPU time (user + system) the nodes have used so far, all together.
    pub(super) fn cpu(&self) -> Option<Duration> {
        self.nodes
            .iter()
            .map(|n| Proc::Pid(n.child.id()).cpu())
            .sum()
    }

    /// What runs, for the report.
    pub(super) fn describe(&self) -> String {
        let nodes = match self.nodes.len() {
            1 => "1 node".to_owned(),
            n => format!("{n} nodes in a cluster"),
        };
        let sync = if self.syncs {
            "every write synced before its acknowledgement (sync_interval: always)"
        } else {
            "writes not synced before their acknowledgement (--nats-sync interval, or a server that rejects sync_interval)"
        };
        format!(
            "{}, {nodes} on 127.0.0.1 in {}, streams of {} replica(s), {sync}",
            self.version,
            self.dir.path().display(),
            self.replicas
        )
    }

    /// A short name for the summary line: `nats-r1`, `nats-r3`.
    pub(super) fn label(&self) -> String {
        format!("nats-r{}", self.replicas)
    }

    /// Stops every node with SIGTERM, waits a little for each, kills what is left and
    /// removes their directory.
    pub(super) fn stop(mut self) {
        for node in &self.nodes {
            signal(node.child.id(), nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_BOUND;
        for node in &mut self.nodes {
            while matches!(node.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Drop kills what did not stop, then removes the directory.
    }

    /// Kills every node and forgets it.
    fn kill(&mut self) {
        for mut node in self.nodes.drain(..) {
            node.child.kill().ok();
            node.child.wait().ok();
        }
    }

    /// Waits until every node answers `/healthz` with 200 and, in a cluster, all name one
    /// meta leader.
    fn wait_ready(&mut self) -> Result<(), Ready> {
        let deadline = Instant::now() + READY_BOUND;
        loop {
            for node in &mut self.nodes {
                if let Ok(Some(status)) = node.child.try_wait() {
                    let log = std::fs::read_to_string(node.dir.join("log")).unwrap_or_default();
                    if log.contains("address already in use") {
                        return Err(Ready::PortTaken);
                    }
                    return Err(Ready::Failed(format!(
                        "nats-server {} exited ({status}) before it was ready: {}",
                        node.name,
                        last_line(&log)
                    )));
                }
            }
            let healthy = self
                .nodes
                .iter()
                .all(|n| get(n.http, "/healthz").is_some_and(|(status, _)| status == 200));
            let leaders: Vec<Option<String>> =
                self.nodes.iter().map(|n| meta_leader(n.http)).collect();
            let agreed = self.nodes.len() == 1
                || (leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0]));
            if healthy && agreed {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let node = &self.nodes[0];
                let log = std::fs::read_to_string(node.dir.join("log")).unwrap_or_default();
                return Err(Ready::Failed(format!(
                    "nats-server was not ready within {} s (healthy {healthy}, meta leaders {leaders:?}): {}",
                    READY_BOUND.as_secs(),
                    last_line(&log)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Why the nodes did not come up.
enum Ready {
    /// A port picked was taken before its node could bind it: pick others.
    PortTaken,
    /// Anything else, explained.
    Failed(String),
}

/// Picks free ports, writes each node's config file in `dir` and starts the nodes.
fn spawn(server: &Path, dir: &Path, n: usize, syncs: bool) -> Result<Vec<Node>, String> {
    // All the ports picked at once (each still bound while the next is picked), so that they
    // differ; released just before the nodes bind them.
    let held: Vec<TcpListener> = (0..3 * n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot pick a loopback port for nats-server: {e}"))?;
    let ports: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot pick a loopback port for nats-server: {e}"))?;
    drop(held);
    let route = |i: usize| ports[3 * i + 1];
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("n{}", i + 1);
        let node_dir = dir.join(&name);
        std::fs::create_dir_all(&node_dir)
            .map_err(|e| format!("cannot make {}: {e}", node_dir.display()))?;
        let (client, http) = (ports[3 * i], ports[3 * i + 2]);
        let mut conf = format!(
            "# {name} of the bench's {n}-node NATS\nserver_name: {name}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{http}\n"
        );
        conf += &jetstream(&node_dir.join("store"), syncs);
        if n > 1 {
            let routes: Vec<String> = (0..n)
                .map(|j| format!("nats-route://127.0.0.1:{}", route(j)))
                .collect();
            conf += &format!(
                "cluster {{\n  name: urc-bench\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                route(i),
                routes.join(", ")
            );
        }
        let conf_path = node_dir.join("nats.conf");
        std::fs::write(&conf_path, conf)
            .map_err(|e| format!("cannot write {}: {e}", conf_path.display()))?;
        let log = File::create(node_dir.join("log"))
            .map_err(|e| format!("cannot make nats-server's log: {e}"))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot make nats-server's log: {e}"))?;
        let child = Command::new(server)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
        let tracked = cleanup::track_pid(child.id());
        nodes.push(Node {
            name,
            dir: node_dir,
            client,
            http,
            child,
            _tracked: tracked,
        });
    }
    Ok(nodes)
}

/// JetStream's part of a node's config (the tests' nodes use it too).
pub fn jetstream(store: &Path, syncs: bool) -> String {
    let sync = if syncs {
        "  sync_interval: always\n"
    } else {
        ""
    };
    format!(
        "jetstream {{\n  store_dir: \"{}\"\n{sync}}}\n",
        store.display()
    )
}

/// Whether `server` accepts `sync_interval: always` (2.15 does; Debian's 2.9 rejects it).
pub fn syncs_always(server: &Path, dir: &Path) -> bool {
    let conf = dir.join("probe.conf");
    if std::fs::write(&conf, jetstream(&dir.join("probe-store"), true)).is_err() {
        return false;
    }
    Command::new(server)
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The nats-server to run: `given` (`--nats-server`), else `$URC_NATS_SERVER`, else
/// `$URC_NATS_DIR/nats-server`, else the one scripts/install-nats-server puts beside this
/// program's build (`target/nats/` for `target/release/urc`), else `nats-server` on the PATH.
///
/// # Errors
/// A one-line explanation saying what to install when none runs.
pub(super) fn find_server(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Some(p.to_owned())
            .filter(|p| version(p).is_some())
            .ok_or_else(|| {
                format!(
                    "--nats-server {} does not run: run scripts/install-nats-server, which prints the server's path",
                    p.display()
                )
            });
    }
    if let Some(set) = std::env::var_os("URC_NATS_SERVER").filter(|s| !s.is_empty()) {
        let set = PathBuf::from(set);
        return Some(set.clone()).filter(|p| version(p).is_some()).ok_or_else(|| {
            format!(
                "URC_NATS_SERVER={} does not run: run scripts/install-nats-server, which prints the server's path",
                set.display()
            )
        });
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("URC_NATS_DIR").filter(|s| !s.is_empty()) {
        candidates.push(PathBuf::from(dir).join("nats-server"));
    }
    if let Some(target) = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_owned()))
    {
        candidates.push(target.join("nats/nats-server"));
    }
    candidates.push(PathBuf::from("nats-server"));
    candidates
        .into_iter()
        .find(|p| version(p).is_some())
        .ok_or_else(|| INSTALL.to_owned())
}

/// What `server --version` says, when it runs.
fn version(server: &Path) -> Option<String> {
    let out = Command::new(server).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The meta leader node `http`'s `/jsz` names, if any.
fn meta_leader(http: u16) -> Option<String> {
    let (status, body) = get(http, "/jsz")?;
    let jsz: serde_json::Value = serde_json::from_str(&body).ok().filter(|_| status == 200)?;
    let leader = jsz["meta_cluster"]["leader"].as_str()?;
    Some(leader.to_owned()).filter(|l| !l.is_empty())
}

/// A plain HTTP/1.0 GET of a monitoring endpoint on 127.0.0.1: its status and body (the
/// tests' nodes are asked with it too).
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// A log's last line that says something, for a one-line error.
fn last_line(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("it logged nothing")
        .to_owned()
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    nix::sys::signal::kill(pid, sig).ok();
}
