//! Keys and job control: Ctrl-C clears the line, Ctrl-D leaves, Ctrl-Z and `fg` give the
//! editor back, Ctrl-N and Ctrl-P switch rooms keeping the line.

use std::time::{Duration, Instant};

use super::common::{Client, Relay};
use super::pty::*;

/// Ctrl-C clears the line being typed, as in readline: nothing is sent and the client stays;
/// Ctrl-D on an empty line leaves.
#[test]
fn ctrl_c_clears_the_line_and_ctrl_d_leaves() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    bob.send("never sent");
    bob.wait_for("the half-typed line", |s| {
        cursor_row(s) == "bob #lobby> never sent"
    });
    bob.send("\x03");
    bob.wait_for("an empty prompt after Ctrl-C", |s| {
        cursor_row(s) == "bob #lobby> "
    });
    bob.send("sent\r");
    assert_eq!(texts_from(&mut alice, "bob", 1), ["sent"]);
    bob.wait_for("bob's message", |s| screen_text(s).contains("bob: sent"));
    assert!(
        bob.child.try_wait().unwrap().is_none(),
        "Ctrl-C ended the client"
    );
    bob.send("\x04");
    bob.wait_exit();
    alice.expect(|e| e["event"] == "left" && e["name"] == "bob");
    assert_eq!(
        logged(data.path(), 1),
        [("bob".to_owned(), "sent".to_owned())]
    );
    alice.finish();
}

/// The process state letter of `pid` (`T` when stopped), from /proc.
fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // "pid (comm) S ...": the state follows the command's closing parenthesis.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .unwrap_or('?')
}

/// Sets the terminal to the line mode a shell gives it (echo, lines, signals from keys).
fn shell_mode(master: &dyn portable_pty::MasterPty) {
    let fd = master.as_raw_fd().expect("the terminal's descriptor");
    // SAFETY: a termios filled by tcgetattr for an open descriptor, written back to it.
    unsafe {
        let mut mode: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd, &mut mode), 0);
        mode.c_lflag |= libc::ECHO | libc::ICANON | libc::ISIG | libc::IEXTEN;
        mode.c_iflag |= libc::ICRNL;
        assert_eq!(libc::tcsetattr(fd, libc::TCSANOW, &mode), 0);
    }
}

/// Stopped (as by Ctrl-Z in a shell, or `kill -TSTP`) and continued (`fg`) while a line is
/// half typed, after the shell set the terminal to its line mode and wrote its lines: the
/// prompt and line are drawn again, keys edit the line, and what is sent is what is shown.
#[test]
fn stopped_and_continued_the_editor_works_again() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let mut alice = Client::join(relay.addr, "alice", &[]);
    let mut bob = Term::join(&relay, "bob", Colour::Off);
    let pid = bob.child.process_id().expect("the client's pid");
    bob.send("abc");
    bob.wait_for("the half-typed line", |s| {
        cursor_row(s) == "bob #lobby> abc"
    });
    let signal = |sig: libc::c_int| {
        // SAFETY: a signal to our own child.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
    };
    // SIGSTOP, not SIGTSTP: the client leads a session of its own here, a process group
    // without a shell, where the kernel ignores SIGTSTP's stop.
    signal(libc::SIGSTOP);
    let deadline = Instant::now() + DEADLINE;
    while process_state(pid) != 'T' {
        assert!(Instant::now() < deadline, "the client did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    // What a shell does meanwhile: its own terminal mode, its lines.
    shell_mode(&*bob._master);
    bob.shown
        .lock()
        .unwrap()
        .parser
        .process(b"\r\n[1]+  Stopped   urc join\r\n$ fg\r\nurc join\r\n");
    signal(libc::SIGCONT);
    bob.wait_for("the line drawn again", |s| {
        cursor_row(s) == "bob #lobby> abc"
            && rows_above_cursor(s).last().is_some_and(|r| r == "urc join")
    });
    // Two Left arrows, then X: the line is edited, not echoed as typed.
    bob.send("\x1b[D\x1b[DX");
    bob.wait_for("the line edited", |s| cursor_row(s) == "bob #lobby> aX");
    bob.send("\r");
    assert_eq!(texts_from(&mut alice, "bob", 1), ["aXbc"]);
    bob.wait_for("bob's message", |s| screen_text(s).contains("bob: aXbc"));
    bob.quit();
    alice.finish();
}

/// Ctrl-N makes the next room of `/rooms` the one typed lines go to (Ctrl-P the previous),
/// and the line being typed stays as it was, cursor and all: finished and sent, it goes to
/// the new room.
#[test]
fn ctrl_n_and_ctrl_p_switch_rooms_keeping_the_line_being_typed() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path(), &[]);
    let (mut alice, mut bob) = super::in_lunch(&relay);
    bob.send("\x10");
    bob.wait_for("Ctrl-P: the lobby's prompt", |s| {
        cursor_row(s) == "bob #lobby> "
    });
    bob.send("pizza at noo");
    bob.wait_for("the line typed", |s| {
        cursor_row(s) == "bob #lobby> pizza at noo"
    });
    bob.send("\x0e");
    bob.wait_for("Ctrl-N: lunch's prompt, the line kept", |s| {
        cursor_row(s) == "bob #lunch> pizza at noo"
            && screen_text(s).contains("-- typing to #lunch")
    });
    bob.send("n?\r");
    let m = alice.expect(|e| e["event"] == "message" && e["from"] == "bob");
    assert_eq!(
        (m["room"].as_str(), m["text"].as_str()),
        (Some("lunch"), Some("pizza at noon?"))
    );
    // Past the last room, the first.
    bob.send("\x0e");
    bob.wait_for("round to the lobby", |s| cursor_row(s) == "bob #lobby> ");
    bob.quit();
    alice.finish();
}
