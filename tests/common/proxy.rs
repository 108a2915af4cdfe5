//! A lossy UDP proxy on loopback: drops, duplicates and reorders datagrams, from a seed.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does to datagrams, each a probability from 0 to 1.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub loss: f64,
    pub duplicate: f64,
    pub reorder: f64,
}

/// splitmix64: small and seeded, for reproducible faults and garbage.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in [0, 1).
    pub fn next(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One direction of traffic with its faults.
struct Lane {
    rng: Rng,
    faults: Faults,
    held: Option<Vec<u8>>,
    pub dropped: u64,
}

impl Lane {
    fn new(seed: u64, faults: Faults) -> Lane {
        Lane {
            rng: Rng(seed),
            faults,
            held: None,
            dropped: 0,
        }
    }

    /// Forwards one datagram through `send`, with faults.
    fn pass(&mut self, bytes: &[u8], send: &mut dyn FnMut(&[u8])) {
        if self.rng.next() < self.faults.loss {
            self.dropped += 1;
            return;
        }
        if self.held.is_none() && self.rng.next() < self.faults.reorder {
            // Held back until the next datagram has gone past it.
            self.held = Some(bytes.to_vec());
            return;
        }
        send(bytes);
        if self.rng.next() < self.faults.duplicate {
            send(bytes);
        }
        self.flush(send);
    }

    fn flush(&mut self, send: &mut dyn FnMut(&[u8])) {
        if let Some(held) = self.held.take() {
            send(&held);
        }
    }
}

/// The proxy: clients talk to `addr`, the proxy talks to the relay from one socket per client.
pub struct Proxy {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const POLL: Duration = Duration::from_millis(5);

impl Proxy {
    pub fn start(relay: SocketAddr, faults: Faults, seed: u64) -> Proxy {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        front.set_read_timeout(Some(POLL)).unwrap();
        let addr = front.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_main = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut uplinks: HashMap<SocketAddr, (Arc<UdpSocket>, Lane)> = HashMap::new();
            let mut downlinks: Vec<JoinHandle<()>> = Vec::new();
            let mut buf = [0u8; 2048];
            while !stop_main.load(Ordering::Relaxed) {
                let Ok((n, client)) = front.recv_from(&mut buf) else {
                    for (up, lane) in uplinks.values_mut() {
                        lane.flush(&mut |b| {
                            let _ = up.send(b);
                        });
                    }
                    continue;
                };
                let index = uplinks.len() as u64;
                let (up, lane) = uplinks.entry(client).or_insert_with(|| {
                    let up = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
                    up.connect(relay).unwrap();
                    up.set_read_timeout(Some(POLL)).unwrap();
                    let (down, front, stop) = (up.clone(), front.clone(), stop_main.clone());
                    let mut lane =
                        Lane::new(seed ^ (index * 2 + 1).wrapping_mul(0x5851_F42D), faults);
                    downlinks.push(std::thread::spawn(move || {
                        let mut buf = [0u8; 2048];
                        while !stop.load(Ordering::Relaxed) {
                            let mut send = |b: &[u8]| {
                                let _ = front.send_to(b, client);
                            };
                            match down.recv(&mut buf) {
                                Ok(n) => lane.pass(&buf[..n], &mut send),
                                Err(_) => lane.flush(&mut send),
                            }
                        }
                    }));
                    (
                        up,
                        Lane::new(seed ^ (index * 2 + 2).wrapping_mul(0x5851_F42D), faults),
                    )
                });
                lane.pass(&buf[..n], &mut |b| {
                    let _ = up.send(b);
                });
            }
            for d in downlinks {
                let _ = d.join();
            }
        });
        Proxy {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
