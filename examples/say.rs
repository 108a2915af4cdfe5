//! A one-shot bot: joins a relay, says one line, waits for the acknowledgement, leaves.
//!
//! It drives the client's rules (`urc::client`) with nothing but a blocking std socket, to show
//! how small a shell around the sans-IO core can be:
//!
//! ```sh
//! cargo run --example say -- 127.0.0.1:7707 bot "你好，世界"
//! ```

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use urc::client::{Client, Config, Event};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [server, name, text] = args.as_slice() else {
        return Err("usage: say SERVER NAME TEXT".into());
    };
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.connect(server)?;
    let config = Config {
        rooms: Vec::new(),
        name: name.clone(),
        history: 0,
        since: None,
        seen: Default::default(),
        relays: Vec::new(),
    };
    let mut client = Client::new(config, Instant::now());
    client.send(Instant::now(), text)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    while client.unacked() > 0 && !client.is_closed() && Instant::now() < deadline {
        while let Some(datagram) = client.poll_transmit() {
            socket.send(&datagram)?;
        }
        report(&mut client)?;
        // Wait for the relay, or until the client's next timer is due.
        let wake = client.poll_timeout().unwrap_or(deadline).min(deadline);
        let wait = wake.saturating_duration_since(Instant::now());
        socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        match socket.recv(&mut buf) {
            Ok(n) => client.handle(Instant::now(), &buf[..n]),
            Err(_) => client.handle_timeout(Instant::now()),
        }
    }
    report(&mut client)?;
    client.leave(Instant::now());
    while let Some(datagram) = client.poll_transmit() {
        socket.send(&datagram)?;
    }
    if client.unacked() > 0 {
        return Err("the relay did not acknowledge the message".into());
    }
    Ok(())
}

/// Prints where our message was stored; fails on an error from the relay.
fn report(client: &mut Client) -> Result<(), String> {
    while let Some(event) = client.poll_event() {
        match event {
            Event::Message {
                message, own: true, ..
            } => println!("stored as message {}", message.seq),
            Event::Error(e) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}
