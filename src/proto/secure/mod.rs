//! Every datagram after the handshake encrypted and authenticated: Noise IK, the outer frames, the counters and the replay window.
//!
//! A client and the relay first prove the client's address (the stateless cookie of
//! [`frame::Frame::Challenge`]), then run one Noise IK handshake ([`noise`]): the client
//! knows the relay's static key, the relay learns the client's. Each side then holds a
//! [`transport::Transport`]: every later datagram is one [`frame::Frame::Data`], sealed with
//! AES-256-GCM under an explicit counter, and refused when its counter was seen before
//! ([`replay::Window`]). The client starts a new handshake before a transport's limits
//! (time or count) are reached, and both keep the old transport a while to read what was
//! already on its way, so rekeying interrupts nothing.
//!
//! | module | role |
//! |---|---|
//! | [`keys`] | static key pairs, public keys as text (the fingerprint) |
//! | [`frame`] | the outer datagrams: HELLO, CHALLENGE, REPLY, DATA, UNKNOWN |
//! | [`noise`] | the IK handshake through `snow`: one message each way |
//! | [`transport`] | a handshake's keys in use: sealing, opening, limits |
//! | [`replay`] | the sliding window of counters already taken (RFC 6479) |

use std::time::Duration;

pub mod frame;
pub mod keys;
pub mod noise;
pub mod replay;
pub mod transport;

/// The Noise protocol name: IK, X25519, AES-256-GCM, BLAKE2s (WireGuard's but for the AEAD:
/// the relay seals a copy of every datagram for each recipient, and AES-GCM does that in a
/// third of ChaCha20-Poly1305's time on any CPU with AES instructions; docs/security.md).
pub const PATTERN: &str = "Noise_IK_25519_AESGCM_BLAKE2s";
/// Mixed into every handshake, so that a handshake of another protocol or version never
/// completes with ours.
pub const PROLOGUE: &[u8] = b"urc protocol 2";

/// A transport this old makes the client start a new handshake (WireGuard's
/// REKEY_AFTER_TIME).
pub const REKEY_AFTER: Duration = Duration::from_secs(120);
/// A transport this old is used no more, to send or to receive (WireGuard's
/// REJECT_AFTER_TIME): a client that could not rekey in the minute since
/// [`REKEY_AFTER`] makes a new handshake before it says anything else.
pub const REJECT_AFTER: Duration = Duration::from_secs(180);
/// After this many datagrams sealed in either direction (its own, or the relay's as the
/// counters it opens tell), the client starts a new handshake: half of
/// [`REJECT_AFTER_MESSAGES`], so that the new keys are up long before the old ones stop.
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 22;
/// No transport seals or opens a datagram with a counter this high or higher: AES-GCM's
/// confidentiality limit as QUIC sets it (RFC 9001, section 6.6: 2^23 packets a key, for
/// packets far longer than urc's 1200 bytes), far below the nonce 2^64 − 1 Noise reserves.
pub const REJECT_AFTER_MESSAGES: u64 = 1 << 23;
