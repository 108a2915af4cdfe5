//! The secrets a datagram carries: the session token on every client → relay datagram after
//! JOIN, and the proof on every relay → client datagram.

use std::fmt;

use uuid::Uuid;

use super::{MAGIC, VERSION, is_relay_kind};

/// A session token: proof that a datagram comes from the client the relay welcomed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(pub [u8; 16]);

impl Token {
    /// A fresh token of 122 random bits from the operating system's generator.
    pub fn random() -> Self {
        Token(*Uuid::new_v4().as_bytes())
    }

    /// Compares in time independent of where the tokens differ.
    pub fn matches(&self, other: &Token) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are secrets: never print them.
        f.write_str("Token(..)")
    }
}

/// Bytes of the proof that follows the header of every relay → client datagram.
pub const PROOF_LEN: usize = 8;

/// The proof a relay → client datagram carries: the first bytes of the session's token, or
/// of the client's instance id in answers to a JOIN, so that a client takes from the relay
/// only what someone who knows them sent. A NotJoined to an address without a session carries
/// the token of the datagram it refuses.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Proof(pub [u8; PROOF_LEN]);

impl Proof {
    /// The proof of a session.
    pub fn of_token(token: &Token) -> Self {
        let mut p = [0u8; PROOF_LEN];
        p.copy_from_slice(&token.0[..PROOF_LEN]);
        Proof(p)
    }

    /// The proof of a client instance (in answers to its JOIN).
    pub fn of_instance(instance: &Uuid) -> Self {
        let mut p = [0u8; PROOF_LEN];
        p.copy_from_slice(&instance.as_bytes()[..PROOF_LEN]);
        Proof(p)
    }

    /// The proof a datagram carries, if it is a relay → client datagram long enough to.
    pub fn read(datagram: &[u8]) -> Option<Proof> {
        match datagram {
            [MAGIC, VERSION, kind, rest @ ..]
                if is_relay_kind(*kind) && rest.len() >= PROOF_LEN =>
            {
                let mut p = [0u8; PROOF_LEN];
                p.copy_from_slice(&rest[..PROOF_LEN]);
                Some(Proof(p))
            }
            _ => None,
        }
    }

    /// Writes this proof into an encoded relay → client datagram.
    ///
    /// # Panics
    /// If `datagram` is not an encoded relay → client datagram.
    pub fn write(&self, datagram: &mut [u8]) {
        assert!(Proof::read(datagram).is_some(), "not a relay datagram");
        datagram[3..3 + PROOF_LEN].copy_from_slice(&self.0);
    }
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Part of a secret: never printed.
        f.write_str("Proof(..)")
    }
}
