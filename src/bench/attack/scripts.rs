//! What each attack does, step by step, while the ordinary members chat: its sessions joined,
//! its load for its length, then its sessions gone; and what it counts on the way.
//!
//! Every loop is bounded in time and count, and everything stays on loopback.

use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use super::ordinary::Ordinary;
use super::schedule::{Action, Schedule};
use super::swarm::{Swarm, block_ip};
use super::{Attack, AttackOptions};
use crate::bench::child::RelayChild;

/// The history attackers' address.
const HISTORY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);
/// The WHO attackers' address.
const WHO_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// The first of the senders' addresses (64 sessions each).
const SENDERS_BLOCK: u8 = 3;
/// The block the silent members' addresses are in.
const MEMBERS_BLOCK: u8 = 1;
/// The block the parking sessions' addresses are in.
const PARKED_BLOCK: u8 = 2;
/// Sessions an address may have (the relay's default `--max-per-ip`).
const PER_IP: usize = 64;
/// Requests a second each session makes: the relay's default request rate.
const REQUESTS_EVERY: Duration = Duration::from_millis(200);
/// Messages a second each sender sends: the relay's default message rate.
const SENDS_EVERY: Duration = Duration::from_millis(50);
/// The members' keepalive, as clients send it.
const PING_EVERY: Duration = Duration::from_secs(5);
/// How long the room is measured without the attack first, where the room itself costs
/// something (its members), for comparison.
const CONTROL: Duration = Duration::from_secs(5);
/// Longest joining may take.
const JOIN_BOUND: Duration = Duration::from_secs(180);
/// How long the members go on pinging after the relay is continued, so that any it dropped
/// learns it.
const AFTER_STOP: Duration = Duration::from_secs(12);
/// How long after the relay is continued the messages sent while it was stopped may take:
/// the client's longest retransmission backoff, and a second.
const BACKLOG: Duration = Duration::from_secs(crate::client::MAX_RTO.as_secs() + 1);
/// How long the ordinary members chat after the relay's clock is stepped back.
const AFTER_STEP: Duration = Duration::from_secs(10);
/// How far the relay's clock is stepped.
const STEP: &str = "+3650d";

/// What a script is given.
#[derive(Debug)]
pub(super) struct Setting<'a> {
    pub(super) options: &'a AttackOptions,
    pub(super) relay: &'a RelayChild,
    pub(super) ordinary: &'a Ordinary,
    /// libfaketime's file (clock).
    pub(super) clock_file: &'a Path,
    /// The relay's data directory, for what it stored.
    pub(super) data: &'a Path,
}

/// What an attack did and counted.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// When the attack began and ended: the ordinary members' messages sent within are
    /// measured.
    pub(super) window: Option<(Instant, Instant)>,
    /// Hostile sessions that joined.
    pub(super) sessions: usize,
    /// Requests or messages the attack sent.
    pub(super) sent: u64,
    /// Datagrams and bytes of answers the attackers read.
    pub(super) answered: (u64, u64),
    /// Datagrams the attack sent in all, and those its sockets would not take at once.
    pub(super) datagrams: (u64, u64),
    /// The relay's refusals the attackers read, by error code.
    pub(super) refused: [u64; 9],
    /// Members and attackers the relay dropped, where the attack counts them.
    pub(super) evicted: Option<u64>,
    /// Members the ordinary member's WHO showed after the attack, of how many.
    pub(super) room: Option<(usize, usize)>,
    /// Lines of the report of this attack's own.
    pub(super) lines: Vec<String>,
    /// Figures of the summary line of this attack's own.
    pub(super) fields: Vec<(String, String)>,
    /// Targets of this attack's own that were missed.
    pub(super) failures: Vec<String>,
    /// When the clock was stepped ahead and back (clock).
    pub(super) steps: Option<(Instant, Instant)>,
    /// The attack's phases and when each began (each lasts until the next, the last until
    /// the attack's end), for the latency of each.
    pub(super) phases: Vec<(&'static str, Instant)>,
}

impl Outcome {
    /// A phase of the attack begins now.
    fn phase(&mut self, name: &'static str) {
        self.phases.push((name, Instant::now()));
    }
}

/// Runs the attack of `setting`.
///
/// # Errors
/// When sessions cannot join or a socket fails.
pub(super) fn run(
    setting: &Setting<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, String> {
    let o = setting.options;
    let mut swarm = Swarm::new(setting.relay.addr, setting.relay.key).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| format!("an attacking session's socket failed: {e}");
    let mut out = Outcome::default();
    let length = Duration::from_secs(o.seconds);
    match o.attack {
        Attack::History | Attack::Who => {
            if o.members > 0 {
                out.phase("members join");
            }
            let members = members(&mut swarm, o.members, progress)?;
            let (ip, prefix, action) = if o.attack == Attack::History {
                (HISTORY_IP, "h", Action::History { count: 1000 })
            } else {
                (WHO_IP, "w", Action::Who)
            };
            let attackers = swarm.add(o.sessions, prefix, |_| ip, true).map_err(io)?;
            progress(&format!("joining {} attackers from {ip}", o.sessions));
            swarm.join(attackers.clone(), Instant::now() + JOIN_BOUND)?;
            swarm.listen(attackers.clone()).map_err(io)?;
            let mut schedules = vec![Schedule::every(members.clone(), PING_EVERY, Action::Ping)];
            if !members.is_empty() {
                // The same room without the flood, for comparison: what the members cost.
                out.phase("before");
                swarm
                    .run(&mut schedules, Instant::now() + CONTROL)
                    .map_err(io)?;
            }
            progress(&format!(
                "{} sessions ask 5 times a second for {} s",
                o.sessions, o.seconds
            ));
            let start = Instant::now();
            out.phase("flood");
            schedules.push(Schedule::every(attackers.clone(), REQUESTS_EVERY, action));
            swarm.run(&mut schedules, start + length).map_err(io)?;
            out.window = Some((start, Instant::now()));
            schedules.truncate(1);
            count_room(setting, &mut swarm, &mut schedules, &members, &mut out)?;
            leave(&mut swarm, 0..attackers.end)?;
            out.sessions = attackers.len();
        }
        Attack::Senders => {
            let senders = swarm
                .add(
                    o.sessions,
                    "s",
                    |k| Ipv4Addr::new(127, 0, SENDERS_BLOCK, 1 + (k / PER_IP) as u8),
                    false,
                )
                .map_err(io)?;
            progress(&format!(
                "joining {} senders from {} addresses",
                o.sessions,
                o.sessions.div_ceil(PER_IP)
            ));
            swarm.join(senders.clone(), Instant::now() + JOIN_BOUND)?;
            progress(&format!(
                "{} sessions send 20 messages a second for {} s",
                o.sessions, o.seconds
            ));
            let start = Instant::now();
            out.phase("flood");
            let mut schedules = vec![Schedule::every(
                senders.clone(),
                SENDS_EVERY,
                Action::Send { size: o.size },
            )];
            swarm.run(&mut schedules, start + length).map_err(io)?;
            out.window = Some((start, Instant::now()));
            leave(&mut swarm, senders.clone())?;
            out.sessions = senders.len();
            let stored = stored(setting.data);
            out.lines.push(format!(
                "stored: {stored} messages in the log in all; the senders saw {} of theirs acknowledged",
                swarm.counts.acked
            ));
            out.fields
                .push(("attack_acked".into(), swarm.counts.acked.to_string()));
            out.fields.push(("stored".into(), stored.to_string()));
        }
        Attack::Parked => {
            let start = Instant::now();
            out.phase("join");
            let parkers = swarm
                .add(
                    o.sessions,
                    "p",
                    |k| block_ip(PARKED_BLOCK, k / PER_IP),
                    false,
                )
                .map_err(io)?;
            progress(&format!(
                "joining {} sessions from {} addresses",
                o.sessions,
                o.sessions.div_ceil(PER_IP)
            ));
            swarm.join(parkers.clone(), start + JOIN_BOUND)?;
            progress("each sends csn 2 to 256 (never 1), twice over");
            out.phase("park");
            let pings = Schedule::every(parkers.clone(), PING_EVERY, Action::Ping);
            let spread = Duration::from_secs(5);
            let mut schedules = vec![
                pings,
                Schedule::once(parkers.clone(), spread, Action::Park { from: 2, to: 256 }),
            ];
            swarm
                .run(&mut schedules, Instant::now() + spread)
                .map_err(io)?;
            schedules[1] =
                Schedule::once(parkers.clone(), spread, Action::Park { from: 2, to: 256 });
            swarm
                .run(&mut schedules, Instant::now() + spread)
                .map_err(io)?;
            progress(&format!("the messages wait for {} s", o.seconds));
            schedules.truncate(1);
            let held = Instant::now();
            out.phase("wait");
            let mut samples = Vec::new();
            while held.elapsed() < length {
                swarm
                    .run(&mut schedules, Instant::now() + Duration::from_secs(1))
                    .map_err(io)?;
                samples.extend(setting.relay.rss());
            }
            let waiting = samples.iter().max().copied().unwrap_or(0);
            out.lines.push(format!(
                "while the messages waited: relay RSS up to {:.1} MB",
                waiting as f64 / 1e6
            ));
            out.fields.push((
                "relay_rss_waiting".into(),
                format!("{:.1}MB", waiting as f64 / 1e6),
            ));
            progress("they all leave");
            out.phase("leave");
            leave(&mut swarm, parkers.clone())?;
            out.window = Some((start, Instant::now()));
            out.sessions = parkers.len();
        }
        Attack::Stop => {
            out.phase("members join");
            let members = members(&mut swarm, o.members, progress)?;
            let mut schedules = vec![Schedule::every(members.clone(), PING_EVERY, Action::Ping)];
            out.phase("before");
            swarm
                .run(&mut schedules, Instant::now() + CONTROL)
                .map_err(io)?;
            progress(&format!("SIGSTOP to the relay for {} s", o.seconds));
            setting.relay.signal("STOP")?;
            let stopped = Instant::now();
            out.phase("stopped");
            let ran = swarm.run(&mut schedules, stopped + length).map_err(io);
            setting.relay.signal("CONT")?;
            ran?;
            let continued = Instant::now();
            out.phase("backlog");
            progress("SIGCONT: the members go on pinging");
            swarm.run(&mut schedules, continued + BACKLOG).map_err(io)?;
            out.phase("continued");
            swarm
                .run(&mut schedules, continued + AFTER_STOP)
                .map_err(io)?;
            // What is measured is the relay back at work. The messages sent while it was
            // stopped waited for it, as they must, and those sent just after it wait behind
            // them (each member's are shown in order) for their sender's retransmission,
            // whose backoff is at most `MAX_RTO`.
            out.window = Some((continued + BACKLOG, Instant::now()));
            let stopped_for = continued - stopped;
            out.lines.push(format!(
                "the relay was stopped for {:.1} s",
                stopped_for.as_secs_f64()
            ));
            out.fields.push((
                "stopped".into(),
                format!("{:.1}s", stopped_for.as_secs_f64()),
            ));
            count_room(setting, &mut swarm, &mut schedules, &members, &mut out)?;
            leave(&mut swarm, members)?;
        }
        Attack::Clock => clock(setting, &mut out, length, progress)?,
        Attack::All => return Err("--attack all runs each attack in a process of its own".into()),
    }
    out.sent = swarm.counts.actions;
    out.answered = swarm.counts.answers;
    out.datagrams = (swarm.counts.datagrams, swarm.counts.send_failures);
    out.refused = swarm.counts.refused;
    if matches!(o.attack, Attack::Who | Attack::Stop) {
        out.evicted = Some(
            swarm
                .counts
                .evicted
                .max(out.room.map_or(0, |(n, of)| (of - n.min(of)) as u64)),
        );
    }
    Ok(out)
}

/// Joins `count` silent members, 64 an address, who ping every 5 s from then on.
fn members(
    swarm: &mut Swarm,
    count: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Range<usize>, String> {
    let range = swarm
        .add(count, "m", |k| block_ip(MEMBERS_BLOCK, k / PER_IP), false)
        .map_err(|e| format!("cannot make the members' sockets: {e}"))?;
    if count > 0 {
        progress(&format!(
            "joining {count} members from {} addresses",
            count.div_ceil(PER_IP)
        ));
        let began = Instant::now();
        swarm.join(range.clone(), began + JOIN_BOUND)?;
        progress(&format!(
            "{count} members joined in {:.1} s",
            began.elapsed().as_secs_f64()
        ));
    }
    Ok(range)
}

/// Asks the first ordinary member who is in the room (the members pinging meanwhile) and
/// counts the members the relay still has.
fn count_room(
    setting: &Setting<'_>,
    swarm: &mut Swarm,
    pings: &mut [Schedule],
    members: &Range<usize>,
    out: &mut Outcome,
) -> Result<(), String> {
    if members.is_empty() {
        return Ok(());
    }
    // A round of pings first, so that a member the relay dropped has been told.
    swarm
        .run(pings, Instant::now() + PING_EVERY)
        .map_err(|e| e.to_string())?;
    let names = setting.ordinary.who();
    let present = names
        .iter()
        .filter(|n| {
            n.strip_prefix('m')
                .is_some_and(|k| k.parse::<usize>().is_ok())
        })
        .count();
    out.room = Some((present, members.len()));
    out.lines.push(format!(
        "the room after the attack: {present} of {} members (WHO: {} names in all); {} members were told NotJoined",
        members.len(),
        names.len(),
        swarm.evicted_in(members.clone())
    ));
    Ok(())
}

/// Every session of `range` leaves, spread over a second or two.
fn leave(swarm: &mut Swarm, range: Range<usize>) -> Result<(), String> {
    let over = Duration::from_millis((range.len() as u64 / 5).clamp(100, 2000));
    let mut leaving = [Schedule::once(range, over, Action::Leave)];
    let until = Instant::now() + over + Duration::from_millis(200);
    while !leaving[0].is_done() && Instant::now() < until {
        swarm.run(&mut leaving, until).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Records in the relay's log.
fn stored(data: &Path) -> u64 {
    use crate::serve::layout;
    let room = layout::room_dir(data, layout::DEFAULT_ROOM);
    std::fs::read(room.join(crate::serve::store::LOG_FILE))
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0)
}

/// Writes libfaketime's offset for the relay, whole (renamed into place).
///
/// # Errors
/// When the file cannot be written.
pub(super) fn set_clock(file: &Path, offset: &str) -> Result<(), String> {
    let next = file.with_extension("next");
    std::fs::write(&next, format!("{offset}\n"))
        .and_then(|()| std::fs::rename(&next, file))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))
}

/// The clock attack: the relay's wall clock 10 years ahead for `length`, then back.
fn clock(
    setting: &Setting<'_>,
    out: &mut Outcome,
    length: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<(), String> {
    progress(&format!(
        "the relay's clock steps {STEP} for {} s",
        length.as_secs()
    ));
    let ahead = Instant::now();
    out.phase("ahead");
    set_clock(setting.clock_file, STEP)?;
    std::thread::sleep(length);
    progress("the relay's clock steps back");
    set_clock(setting.clock_file, "+0")?;
    let back = Instant::now();
    out.phase("back");
    std::thread::sleep(AFTER_STEP);
    out.window = Some((ahead, Instant::now()));
    out.steps = Some((ahead, back));
    Ok(())
}
