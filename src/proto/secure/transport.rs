//! A handshake's keys in use: each packet sealed into a DATA frame under the next counter, each DATA opened once, and the limits after which the keys are replaced.

use std::time::{Duration, Instant};

use snow::StatelessTransportState;

use super::frame::{DATA_HEADER, MAX_SEALED_PACKET, TAG_LEN, data_header};
use super::replay::Window;
use super::{REJECT_AFTER, REJECT_AFTER_MESSAGES, REKEY_AFTER, REKEY_AFTER_MESSAGES};

/// Why a DATA frame was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unopened {
    /// It does not authenticate under these keys: forged, changed, or for other keys.
    Forged,
    /// Its counter was opened before, or is too far behind (a replay, or a duplicate).
    Replayed,
}

impl std::fmt::Display for Unopened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Forged => "a sealed datagram that does not authenticate",
            Self::Replayed => "a sealed datagram opened before (replayed or duplicated)",
        })
    }
}

impl std::error::Error for Unopened {}

/// One direction's keys of a finished handshake, with its counters.
pub struct Transport {
    keys: StatelessTransportState,
    /// The index the other side gave this transport: written on every DATA sealed.
    remote: u32,
    /// Counters used to seal so far: the next one sealed is this.
    sealed: u64,
    opened: Window,
    born: Instant,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("remote", &self.remote)
            .field("sealed", &self.sealed)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Keys from a handshake finished at `now`; the other side's index for them `remote`.
    pub fn new(keys: StatelessTransportState, remote: u32, now: Instant) -> Self {
        Self {
            keys,
            remote,
            sealed: 0,
            opened: Window::default(),
            born: now,
        }
    }

    /// The other side's index for this transport.
    pub fn remote(&self) -> u32 {
        self.remote
    }

    /// Seals `packet` into a whole DATA frame, appended to `out`; false, with nothing
    /// written, when the packet is over [`MAX_SEALED_PACKET`] bytes or the counters are used
    /// up (the transport must be replaced).
    pub fn seal_into(&mut self, packet: &[u8], out: &mut Vec<u8>) -> bool {
        if packet.len() > MAX_SEALED_PACKET || self.sealed >= REJECT_AFTER_MESSAGES {
            return false;
        }
        let counter = self.sealed;
        self.sealed += 1;
        let start = out.len();
        data_header(out, self.remote, counter);
        out.resize(start + DATA_HEADER + packet.len() + TAG_LEN, 0);
        let n = self
            .keys
            .write_message(counter, packet, &mut out[start + DATA_HEADER..])
            .expect("the buffer is as long as the packet and its tag");
        debug_assert_eq!(n, packet.len() + TAG_LEN);
        true
    }

    /// Opens a DATA frame's sealed part, appending the packet to `out`: only once per
    /// counter, and only when it authenticates. Nothing is written otherwise.
    pub fn open_into(
        &mut self,
        counter: u64,
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Unopened> {
        if counter >= REJECT_AFTER_MESSAGES || sealed.len() < TAG_LEN {
            return Err(Unopened::Forged);
        }
        let start = out.len();
        out.resize(start + sealed.len(), 0);
        let opened = self.keys.read_message(counter, sealed, &mut out[start..]);
        match opened {
            // Counted only once it authenticated, so that forgeries move no window.
            Ok(n) if self.opened.take(counter) => {
                out.truncate(start + n);
                Ok(())
            }
            Ok(_) => {
                out.truncate(start);
                Err(Unopened::Replayed)
            }
            Err(_) => {
                out.truncate(start);
                Err(Unopened::Forged)
            }
        }
    }

    /// How many datagrams were sealed so far (the next counter).
    pub fn sealed(&self) -> u64 {
        self.sealed
    }

    /// How long ago the handshake finished.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.born)
    }

    /// True once the client should make a new handshake: the keys are [`REKEY_AFTER`] old,
    /// or sealed [`REKEY_AFTER_MESSAGES`] datagrams in either direction (the other side's
    /// count is the highest counter opened: the relay, which seals far more than a client,
    /// never starts a handshake itself).
    pub fn wants_rekey(&self, now: Instant) -> bool {
        self.age(now) >= REKEY_AFTER
            || self.sealed >= REKEY_AFTER_MESSAGES
            || self.opened.top() >= REKEY_AFTER_MESSAGES
    }

    /// True once the keys are used no more: [`REJECT_AFTER`] old, or out of counters.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.age(now) >= REJECT_AFTER || self.sealed >= REJECT_AFTER_MESSAGES
    }

    /// Makes the transport believe it sealed `n` datagrams already: for tests of the limits.
    #[doc(hidden)]
    pub fn skip_counters(&mut self, n: u64) {
        self.sealed = self.sealed.saturating_add(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::secure::frame::Frame;
    use crate::proto::secure::keys::Keypair;
    use crate::proto::secure::noise::{Initiation, accept};

    /// The client's and the relay's transports of one handshake.
    fn pair(now: Instant) -> (Transport, Transport) {
        let relay = Keypair::generate();
        let client = Keypair::generate();
        let init = Initiation::new(&client, &relay.public());
        let accepted = accept(&relay, init.message()).unwrap();
        let keys = init.finish(&accepted.reply).unwrap();
        (
            Transport::new(keys, 7, now),
            Transport::new(accepted.keys, 3, now),
        )
    }

    fn open(t: &mut Transport, datagram: &[u8]) -> Result<Vec<u8>, Unopened> {
        let Ok(Frame::Data {
            counter, sealed, ..
        }) = Frame::decode(datagram)
        else {
            panic!("not a DATA frame: {datagram:02x?}");
        };
        let mut out = Vec::new();
        t.open_into(counter, sealed, &mut out).map(|()| out)
    }

    #[test]
    fn a_packet_goes_sealed_and_comes_out_once() {
        let now = Instant::now();
        let (mut client, mut relay) = pair(now);
        let mut d = Vec::new();
        assert!(client.seal_into("你好, bob".as_bytes(), &mut d));
        assert_eq!(d.len(), "你好, bob".len() + 31);
        assert_eq!(&d[3..7], &7u32.to_be_bytes(), "the relay's index");
        assert!(
            !d.windows(6).any(|w| w == "你好".as_bytes()),
            "the text is not in the datagram"
        );
        assert_eq!(open(&mut relay, &d).unwrap(), "你好, bob".as_bytes());
        assert_eq!(open(&mut relay, &d), Err(Unopened::Replayed));
    }

    #[test]
    fn reordered_datagrams_all_open() {
        let now = Instant::now();
        let (mut client, mut relay) = pair(now);
        let datagrams: Vec<Vec<u8>> = (0..50u8)
            .map(|i| {
                let mut d = Vec::new();
                assert!(client.seal_into(&[i], &mut d));
                d
            })
            .collect();
        for d in datagrams.iter().rev() {
            assert!(open(&mut relay, d).is_ok());
        }
        for d in &datagrams {
            assert_eq!(open(&mut relay, d), Err(Unopened::Replayed));
        }
    }

    #[test]
    fn a_changed_datagram_is_refused_and_moves_nothing() {
        let now = Instant::now();
        let (mut client, mut relay) = pair(now);
        let mut d = Vec::new();
        assert!(client.seal_into(b"hello", &mut d));
        for i in 3..d.len() {
            if (3..7).contains(&i) {
                continue; // the receiver's index selects the transport, it is not sealed
            }
            let mut bad = d.clone();
            bad[i] ^= 0x01;
            assert_eq!(open(&mut relay, &bad), Err(Unopened::Forged), "byte {i}");
        }
        assert_eq!(
            open(&mut relay, &d).unwrap(),
            b"hello",
            "the real one still opens"
        );
    }

    #[test]
    fn the_other_direction_does_not_open_ones_own() {
        let now = Instant::now();
        let (mut client, _relay) = pair(now);
        let mut d = Vec::new();
        assert!(client.seal_into(b"hello", &mut d));
        assert_eq!(open(&mut client, &d), Err(Unopened::Forged), "a reflection");
    }

    #[test]
    fn limits_by_time_and_by_count() {
        let now = Instant::now();
        let (mut client, _) = pair(now);
        assert!(!client.wants_rekey(now));
        assert!(client.wants_rekey(now + REKEY_AFTER));
        assert!(!client.is_expired(now + REKEY_AFTER));
        assert!(client.is_expired(now + REJECT_AFTER));
        client.skip_counters(REKEY_AFTER_MESSAGES);
        assert!(client.wants_rekey(now) && !client.is_expired(now));
        client.skip_counters(REJECT_AFTER_MESSAGES - REKEY_AFTER_MESSAGES - 1);
        let mut d = Vec::new();
        assert!(client.seal_into(b"last", &mut d), "the last counter");
        assert!(client.is_expired(now));
        let mut more = Vec::new();
        assert!(!client.seal_into(b"one more", &mut more));
        assert!(more.is_empty());
    }

    #[test]
    fn the_client_wants_new_keys_once_the_relay_sealed_as_many() {
        let now = Instant::now();
        let (mut client, mut relay) = pair(now);
        relay.skip_counters(REKEY_AFTER_MESSAGES - 1);
        let mut d = Vec::new();
        assert!(relay.seal_into(b"below", &mut d));
        open(&mut client, &d).unwrap();
        assert!(!client.wants_rekey(now));
        d.clear();
        assert!(relay.seal_into(b"at the limit", &mut d));
        open(&mut client, &d).unwrap();
        assert!(
            client.wants_rekey(now),
            "the relay's count is the client's to act on"
        );
        assert!(!client.is_expired(now));
        relay.skip_counters(REJECT_AFTER_MESSAGES - REKEY_AFTER_MESSAGES - 1);
        assert!(relay.is_expired(now));
        d.clear();
        assert!(!relay.seal_into(b"past AES-GCM's limit", &mut d));
    }
}
