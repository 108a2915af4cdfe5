//! The NATS test harness itself: a real JetStream cluster of three nodes on loopback ports
//! stays healthy when a follower is killed and takes it back, and elects another leader when
//! the leader is killed; the whole cluster stopped and started again; one node, killed and
//! restarted.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::Instant;

use common::nats::{Cluster, syncs_always};

#[test]
fn a_follower_killed_leaves_two_healthy_and_comes_back() {
    let started = Instant::now();
    let mut cluster = Cluster::start(3);
    eprintln!("3 nodes ready in {:?}", started.elapsed());
    // Each URL is a NATS client port: it greets with INFO.
    let urls = cluster.urls();
    assert_eq!(urls.split(',').count(), 3, "{urls}");
    for (url, addr) in urls.split(',').zip(cluster.addrs().split(',')) {
        assert_eq!(url, format!("nats://{addr}"));
        let mut line = String::new();
        BufReader::new(TcpStream::connect(addr).unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("INFO {"), "{addr}: {line:?}");
    }
    let leader = cluster.leader().expect("a meta leader");
    let follower = (leader + 1) % 3;
    cluster.kill(follower);
    for i in (0..3).filter(|&i| i != follower) {
        assert!(
            cluster.healthy(i),
            "{} after {} was killed",
            cluster.name(i),
            cluster.name(follower)
        );
    }
    cluster.wait_ready();
    assert_eq!(cluster.leader(), Some(leader));
    cluster.restart(follower);
    assert!(cluster.healthy(follower));
    assert!(cluster.leader().is_some());
}

#[test]
fn the_leader_killed_leaves_two_that_elect_another() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().expect("a meta leader");
    cluster.kill(leader);
    let killed = Instant::now();
    cluster.wait_ready();
    let elected = cluster.leader().expect("a new meta leader");
    eprintln!(
        "{} elected {:?} after {} was killed",
        cluster.name(elected),
        killed.elapsed(),
        cluster.name(leader)
    );
    assert_ne!(elected, leader);
    for i in (0..3).filter(|&i| i != leader) {
        assert!(cluster.healthy(i));
    }
}

#[test]
fn the_whole_cluster_stopped_and_started_again() {
    let mut cluster = Cluster::start(3);
    cluster.stop_all();
    assert!((0..3).all(|i| !cluster.is_up(i) && !cluster.healthy(i)));
    let stopped = Instant::now();
    cluster.start_all();
    eprintln!("3 nodes ready again in {:?}", stopped.elapsed());
    assert!(cluster.leader().is_some());
}

#[test]
fn one_node_syncs_every_write_where_the_server_can() {
    let mut cluster = Cluster::start(1);
    let config = &cluster.jsz(0).expect("jsz")["config"];
    assert_eq!(
        config["sync_always"].as_bool() == Some(true),
        syncs_always(),
        "{config}"
    );
    cluster.kill(0);
    assert!(!cluster.healthy(0));
    cluster.restart(0);
    assert!(cluster.healthy(0));
    assert!(cluster.log(0).contains("Server is ready"));
}
