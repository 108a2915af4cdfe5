//! The `urc` binary: parses the command line and hands over to the library.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;
use urc::cli::{BenchArgs, Cli, Command, JoinArgs, ServeArgs};
use urc::serve::server::Server;

fn main() -> ExitCode {
    // The local time zone can only be read safely while the process has one thread.
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    // A bug must not greet the user with a stack trace: one line, and where to report it.
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("urc: internal error{place}: {what} (this is a bug: please report it)");
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Join(args) => join(&args, offset),
        Command::Bench(args) => bench(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("urc: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs) -> Result<(), String> {
    init_logging("info");
    give_memory_back();
    let config = args.config()?;
    if args.fingerprint {
        let (keypair, _) = urc::serve::server::relay_key(&args.data_dir())?;
        println!("{}", keypair.public());
        return Ok(());
    }
    if let Some(name) = &args.release_name {
        // Never under a running relay: it would not see the name freed until it restarts,
        // and would go on refusing it to other keys meanwhile.
        let _lock =
            urc::serve::lock::DataLock::acquire(&args.data_dir()).map_err(|e| e.to_string())?;
        println!("{}", urc::serve::owners::release(&args.data_dir(), name)?);
        return Ok(());
    }
    if args.repair_log {
        repair_log(&args.data_dir())?;
    }
    let store = args.store()?;
    if let Some(from) = &args.import {
        import(&store, from, config.cache.max(config.dedup))?;
    }
    let server = Server::bind_store(args.bind_addr()?, args.data_dir(), config, store)
        .map_err(|e| e.to_string())?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        "listening on udp {addr}; message log {} (latest seq {}) and {} other room(s); relay key {}",
        server.log_path().display(),
        server.latest(),
        server.rooms().saturating_sub(1),
        server.public_key()
    );
    let signals =
        async_signal::Signals::new([async_signal::Signal::Int, async_signal::Signal::Term])
            .map_err(|e| format!("cannot watch for Ctrl-C and SIGTERM: {e}"))?;
    smol::block_on(async {
        let stop = async {
            use smol::stream::StreamExt as _;
            let mut signals = signals;
            if let Some(Ok(signal)) = signals.next().await {
                tracing::info!(?signal, "stopping");
            }
        };
        server.run(stop).await
    })
    .map(|_| ())
    .map_err(|e| format!("the relay's socket failed: {e}"))
}

/// `urc serve --import DIR`: the file-store relay's rooms in `from` put into the NATS streams.
fn import(
    store: &urc::serve::server::StoreChoice,
    from: &std::path::Path,
    keep: usize,
) -> Result<(), String> {
    let urc::serve::server::StoreChoice::Nats(options) = store else {
        return Err(
            "--import puts a file-store relay's rooms into NATS: give --store nats://HOST:PORT too"
                .into(),
        );
    };
    // An id of its own: it has no members, and its lease lapses once it is done.
    let (log, _) = urc::serve::nats::NatsLog::open(options.clone(), keep, uuid::Uuid::new_v4())?;
    for (room, put, held) in log.import(from)? {
        tracing::info!(
            room,
            put,
            held,
            "imported the room's log into its NATS stream"
        );
    }
    let (put, held, other) = log.import_names(from)?;
    tracing::info!(
        put,
        held,
        "imported the names' owners into the cluster's bucket"
    );
    for name in other {
        tracing::warn!(
            name,
            "the cluster's bucket has this name for another key: it keeps that owner"
        );
    }
    Ok(())
}

/// How often the relay's process gives freed memory back to the system.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Gives the memory the relay freed back to the system, every [`TRIM_EVERY`], from a thread of
/// its own: glibc's malloc keeps what a crowd of sessions freed (25 MB of a relay that 10,000
/// sessions had left, against 5 MB idle) until asked with `malloc_trim`.
fn give_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    std::thread::Builder::new()
        .name("urc-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(TRIM_EVERY);
                // SAFETY: malloc_trim only returns free memory of the allocator's own heaps to
                // the system; it takes the allocator's locks, so it is safe beside the relay.
                unsafe {
                    libc::malloc_trim(0);
                }
            }
        })
        .ok();
}

/// `urc serve --repair-log`: the damaged records of every room's log replaced, and said so in
/// the relay's log.
fn repair_log(data: &std::path::Path) -> Result<(), String> {
    use urc::serve::store::mark;
    // Never under a running relay: it would append to the file being rewritten.
    let _lock = urc::serve::lock::DataLock::acquire(data).map_err(|e| e.to_string())?;
    // A one-room directory of an earlier relay is repaired where this relay reads it.
    urc::serve::layout::lobby(data)?;
    let rooms = urc::serve::layout::rooms_in(data)?;
    for room in &rooms {
        repair_room(&urc::serve::layout::room_dir(data, room))?;
    }
    // What a crash left in the journal goes back into the logs (whole again) before a log is
    // judged to end before its mark: the journal may hold the records it lacks.
    urc::serve::journal::Journal::open(data)?;
    let marks = mark::read_all(data).map_err(|e| e.to_string())?;
    for room in &rooms {
        let dir = urc::serve::layout::room_dir(data, room);
        let mark = mark::of_room(&marks, room, &dir).map_err(|e| e.to_string())?;
        fill_room(&dir, mark)?;
    }
    Ok(())
}

/// `--repair-log` for the room whose directory is `data`: its damaged records replaced.
fn repair_room(data: &std::path::Path) -> Result<(), String> {
    let log = data.join(urc::serve::store::LOG_FILE);
    let log = log.display();
    match urc::serve::repair::repair(data).map_err(|e| e.to_string())? {
        None => tracing::info!("--repair-log: no damaged record in {log}"),
        Some(r) => {
            let seqs: Vec<String> = r
                .replaced
                .iter()
                .map(|(seq, line)| format!("seq {seq} (line {line})"))
                .collect();
            tracing::warn!(
                "--repair-log: {log}: {} damaged record(s) replaced by placeholders: {}; the damaged file is kept as {}",
                seqs.len(),
                seqs.join(", "),
                r.kept.display()
            );
        }
    }
    Ok(())
}

/// `--repair-log` for the room whose directory is `data`, whose last seq stored is `mark`:
/// placeholders up to the mark when its log ends before it.
fn fill_room(data: &std::path::Path, mark: u64) -> Result<(), String> {
    let log = data.join(urc::serve::store::LOG_FILE);
    let log = log.display();
    // After the damaged records are whole again: their seqs say where the log ends.
    if let Some((first, last)) =
        urc::serve::repair::fill_to_mark(data, mark).map_err(|e| e.to_string())?
    {
        let seqs = if first == last {
            format!("seq {first} is a placeholder")
        } else {
            format!("seqs {first} to {last} are placeholders")
        };
        tracing::warn!(
            "--repair-log: {log} ended before the last seq this relay stored: {seqs}, and the room goes on after it"
        );
    }
    Ok(())
}

/// This `urc bench`'s arguments without `--runs` and `--peer`: those of each single run.
fn one_run_args() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip_while(|a| a != "bench").skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" | "--peer" => {
                args.next();
            }
            a if a.starts_with("--runs=") || a.starts_with("--peer=") => {}
            _ => out.push(arg),
        }
    }
    out
}

/// `urc bench --attack`: one run here, or (`all`, `--runs`) each run in a process of its own.
fn bench_attack(args: &BenchArgs, attack: urc::bench::attack::Attack) -> Result<(), String> {
    use urc::bench::attack::{self, Attack};
    let options = args.attack_options(attack)?;
    let mut progress = |what: &str| eprintln!("urc bench: {what}");
    if attack == Attack::All || args.runs > 1 {
        let attacks = if attack == Attack::All {
            Attack::EVERY.to_vec()
        } else {
            vec![attack]
        };
        let rest = without(&one_run_args(), "--attack");
        return attack::runs::run(&rest, &attacks, usize::from(args.runs), &mut progress)
            .map_err(|e| format!("bench failed: {e}"));
    }
    let report = attack::run(&options, &mut progress).map_err(|e| format!("bench failed: {e}"))?;
    for line in report.lines() {
        println!("{line}");
    }
    if report.passed() {
        Ok(())
    } else {
        Err(format!(
            "bench failed: --attack {} missed its targets",
            attack.name()
        ))
    }
}

/// `args` without the option `name` and its value.
fn without(args: &[String], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == name {
            args.next();
        } else if !arg.starts_with(&format!("{name}=")) {
            out.push(arg.clone());
        }
    }
    out
}

/// Logs to stderr, one line an event, at `RUST_LOG`'s level or `default`.
fn init_logging(default: &str) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // The NATS client's own news (each connection made) is said by the relay in its words;
    // its warnings and errors stay, and RUST_LOG=async_nats=… asks for more.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("async_nats")) {
        filter = filter.add_directive("async_nats=warn".parse().expect("a valid directive"));
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn join(args: &JoinArgs, offset: time::UtcOffset) -> Result<(), String> {
    if args.fingerprint {
        let (identity, _) =
            urc::keyfile::load_or_create(&args.identity_file()?, "the identity file")?;
        println!("{}", identity.public());
        return Ok(());
    }
    let options = args.options(offset)?;
    urc::term::join::run(options).map_err(|e| e.to_string())
}

fn bench(args: &BenchArgs) -> Result<(), String> {
    // The relay's own warnings (drops, refusals) would explain a failed run.
    init_logging("warn");
    if let Some(attack) = args.attack {
        return bench_attack(args, attack);
    }
    let options = args.options()?;
    let mut progress = |what: &str| eprintln!("urc bench: {what}");
    if args.runs > 1 || args.peer.is_some() {
        let how = urc::bench::runs::Runs {
            runs: usize::from(args.runs),
            peer: args.peer.clone(),
            clients: options.clients,
            messages: options.messages,
        };
        return urc::bench::runs::run(&one_run_args(), &how, &mut progress)
            .map_err(|e| format!("bench failed: {e}"));
    }
    if options.workload == Some(urc::bench::Workload::Log) {
        let report = urc::bench::large_log::run(&options, &mut progress)
            .map_err(|e| format!("bench failed: {e}"))?;
        for line in report.lines() {
            println!("{line}");
        }
        return Ok(());
    }
    match urc::bench::run(&options, &mut progress) {
        Ok(report) => {
            for line in report.lines() {
                println!("{line}");
            }
            Ok(())
        }
        Err(failure) => {
            if let Some(report) = &failure.report {
                // What was measured, without the summary line: a failed run has no figure.
                let lines = report.lines();
                for line in &lines[..lines.len() - 1] {
                    println!("{line}");
                }
            }
            Err(format!("bench failed: {failure}"))
        }
    }
}
