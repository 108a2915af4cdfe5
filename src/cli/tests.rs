//! The command line's tests: defaults, addresses, the workloads' and attacks' options.

use super::*;
use clap::CommandFactory;

#[test]
fn the_command_line_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn defaults() {
    let cli = Cli::try_parse_from(["urc", "serve"]).unwrap();
    let Command::Serve(args) = cli.command else {
        panic!()
    };
    assert_eq!(args.bind_addr().unwrap(), "127.0.0.1:7707".parse().unwrap());
    assert_eq!(args.config().unwrap().timeout, relay::DEFAULT_TIMEOUT);
    let cli = Cli::try_parse_from(["urc", "serve", "--rate", "0"]).unwrap();
    let Command::Serve(args) = cli.command else {
        panic!()
    };
    assert_eq!(
        args.config().unwrap_err(),
        "--rate must be a positive number, not 0"
    );
    let cli = Cli::try_parse_from(["urc", "join", "--name", "alice"]).unwrap();
    let Command::Join(args) = cli.command else {
        panic!()
    };
    assert_eq!(args.history, None);
    assert!(Cli::try_parse_from(["urc", "join", "--name", "a", "--history", "1001"]).is_err());
}

#[test]
fn addresses_take_the_default_port_and_host_names() {
    let at = |text: &str| resolve("--server", text).map(|a| a.to_string());
    assert_eq!(at("127.0.0.1").unwrap(), "127.0.0.1:7707");
    assert_eq!(at("127.0.0.1:9000").unwrap(), "127.0.0.1:9000");
    assert_eq!(at("::1").unwrap(), "[::1]:7707");
    assert_eq!(at("[::1]").unwrap(), "[::1]:7707");
    assert_eq!(at("[::1]:9000").unwrap(), "[::1]:9000");
    assert_eq!(at("localhost").unwrap(), "127.0.0.1:7707");
    assert_eq!(at("localhost:9000").unwrap(), "127.0.0.1:9000");
    let err = at("no-such-host.invalid").unwrap_err();
    assert!(
        err.starts_with("cannot resolve --server no-such-host.invalid: "),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    let cli = Cli::try_parse_from(["urc", "serve", "--bind", "localhost:0"]).unwrap();
    let Command::Serve(args) = cli.command else {
        panic!()
    };
    assert_eq!(args.bind_addr().unwrap(), "127.0.0.1:0".parse().unwrap());
}

#[test]
fn the_store_is_a_file_or_nats_servers() {
    let serve = |extra: &[&str]| {
        let cli = Cli::try_parse_from([&["urc", "serve"], extra].concat()).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!()
        };
        args.store()
    };
    use crate::serve::server::StoreChoice;
    assert!(matches!(serve(&[]), Ok(StoreChoice::File)));
    assert!(matches!(serve(&["--store", "file"]), Ok(StoreChoice::File)));
    let Ok(StoreChoice::Nats(o)) = serve(&[
        "--store",
        "nats://127.0.0.1:4222,127.0.0.2,nats://[::1]:4333",
        "--replicas",
        "3",
    ]) else {
        panic!()
    };
    assert_eq!(
        o.urls,
        [
            "nats://127.0.0.1:4222",
            "nats://127.0.0.2:4222",
            "nats://[::1]:4333"
        ]
    );
    assert_eq!(o.replicas, 3);
    for wrong in [
        "nats",
        "127.0.0.1:4222",
        "nats://",
        "nats://a:b",
        "nats://u@a:1",
        "nats://::1:4222",
        "nats://::1",
    ] {
        let err = serve(&["--store", wrong]).unwrap_err();
        assert!(err.starts_with("--store must be file or nats://"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
    assert!(Cli::try_parse_from(["urc", "serve", "--replicas", "2"]).is_err());
    assert_eq!(
        serve(&["--replicas", "3"]).err().as_deref(),
        Some(
            "--replicas is for --store nats://HOST:PORT: a file-store relay keeps one copy, on its own disk"
        )
    );
}

#[test]
fn bench_workloads_are_overridden_by_options() {
    let bench = |args: &[&str]| {
        let cli = Cli::try_parse_from([&["urc", "bench"], args].concat()).unwrap();
        let Command::Bench(args) = cli.command else {
            panic!()
        };
        args.options()
    };
    let w1 = bench(&[]).unwrap();
    assert_eq!((w1.clients, w1.senders, w1.messages), (20, 1, 50_000));
    assert_eq!(w1.size, "hello world message 000123".len());
    let w2 = bench(&["--workload", "w2"]).unwrap();
    assert_eq!((w2.clients, w2.senders, w2.rate), (50, 50, 1000.0));
    let log = bench(&["--workload", "log"]).unwrap();
    assert_eq!(log.messages, 1_000_000);
    assert!(bench(&["--workload", "log", "--clients", "3"]).is_err());
    let custom = bench(&["--workload", "w3", "--clients", "30"]).unwrap();
    assert_eq!((custom.clients, custom.messages), (30, 1_000));
    assert_eq!(
        bench(&["--clients", "3", "--senders", "4"]).unwrap_err(),
        "--senders must be 1 to --clients (3), not 4"
    );
}

#[test]
fn bench_attacks_take_their_defaults_and_refuse_the_workloads_options() {
    let attack = |args: &[&str]| {
        let cli = Cli::try_parse_from([&["urc", "bench"], args].concat())?;
        let Command::Bench(args) = cli.command else {
            panic!()
        };
        Ok::<_, clap::Error>(args.attack_options(args.attack.expect("an attack")))
    };
    let who = attack(&["--attack", "who"]).unwrap().unwrap();
    assert_eq!((who.sessions, who.members, who.seconds), (64, 10_000, 20));
    let history = attack(&[
        "--attack",
        "history",
        "--sessions",
        "3",
        "--messages",
        "500",
    ])
    .unwrap()
    .unwrap();
    assert_eq!((history.sessions, history.log), (3, 500));
    let stop = attack(&["--attack", "stop", "--seconds", "5"])
        .unwrap()
        .unwrap();
    assert_eq!((stop.members, stop.seconds), (2_000, 5));
    assert!(attack(&["--attack", "who", "--workload", "w1"]).is_err());
    assert!(attack(&["--attack", "who", "--clients", "3"]).is_err());
    assert!(Cli::try_parse_from(["urc", "bench", "--sessions", "3"]).is_err());
    assert_eq!(
        attack(&["--attack", "senders", "--sessions", "0"])
            .unwrap()
            .unwrap_err(),
        "--attack senders needs --sessions of at least 1"
    );
}
