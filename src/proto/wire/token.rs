//! The session token: the secret every client → relay packet after JOIN carries, so that the
//! relay tells a session's packets from those of an older session at the same address.

use std::fmt;

use uuid::Uuid;

/// A session token: it tells the relay that a packet belongs to the session it was handed out
/// to, not to an older one at the same address.
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
