//! Static key pairs (X25519) and public keys as text: a key's base64 form is its fingerprint.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// Bytes of an X25519 key, public or private.
pub const KEY_LEN: usize = 32;

/// A public key: the relay's, pinned by clients; a client's, its identity in the room.
///
/// Shown and read as standard base64 with padding (44 characters, as WireGuard shows its
/// keys): the text is the whole key, so comparing two fingerprints compares the keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// Why a text is not a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadKey(String);

impl fmt::Display for BadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadKey {}

/// The 32 bytes of a key written as base64 (surrounding white space ignored).
fn decode(text: &str, what: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, BadKey> {
    let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
        BadKey(format!(
            "{what} is not base64: expected 44 characters such as those `urc serve --fingerprint` prints"
        ))
    })?);
    let mut key = Zeroizing::new([0; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(BadKey(format!(
            "{what} has {} bytes, not {KEY_LEN}: expected 44 base64 characters",
            bytes.len()
        )));
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

impl FromStr for PublicKey {
    type Err = BadKey;

    fn from_str(text: &str) -> Result<Self, BadKey> {
        decode(text, "the key").map(|k| Self(*k))
    }
}

/// A static key pair. The private half is wiped from memory when dropped and never shown:
/// `Debug` prints the public half only.
#[derive(Clone)]
pub struct Keypair {
    private: Zeroizing<[u8; KEY_LEN]>,
    public: PublicKey,
}

impl Keypair {
    /// A new key pair from the operating system's randomness.
    pub fn generate() -> Self {
        let mut private = Zeroizing::new([0; KEY_LEN]);
        getrandom::fill(&mut *private).expect("the operating system gives random bytes");
        Self::from_private(private)
    }

    /// The key pair of a private key (its public half computed).
    pub fn from_private(private: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let secret = x25519_dalek::StaticSecret::from(*private);
        let public = PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        Self { private, public }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The private half, for the handshake.
    pub(crate) fn private(&self) -> &[u8; KEY_LEN] {
        &self.private
    }

    /// The text of a key file: the private key in base64, and a line break.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}\n", STANDARD.encode(*self.private)))
    }

    /// The key pair a key file's text holds.
    pub fn from_file_text(text: &str) -> Result<Self, BadKey> {
        decode(text, "the key file").map(Self::from_private)
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_key_reads_back_from_its_text() {
        let key = Keypair::generate().public();
        let text = key.to_string();
        assert_eq!(text.len(), 44);
        assert_eq!(text.parse::<PublicKey>(), Ok(key));
        assert_eq!(format!(" {text}\n").parse::<PublicKey>(), Ok(key));
    }

    #[test]
    fn a_key_file_gives_back_the_same_pair() {
        let pair = Keypair::generate();
        let again = Keypair::from_file_text(&pair.to_file_text()).unwrap();
        assert_eq!(again.public(), pair.public());
        assert_eq!(*again.private(), *pair.private());
    }

    #[test]
    fn the_public_half_is_x25519s() {
        // RFC 7748, section 6.1: Alice's private key and its public key.
        let private: [u8; 32] =
            hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public: [u8; 32] =
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(
            Keypair::from_private(Zeroizing::new(private)).public(),
            PublicKey(public)
        );
    }

    #[test]
    fn bad_texts_are_refused_with_a_reason() {
        let short = "AAAA".parse::<PublicKey>().unwrap_err().to_string();
        assert_eq!(
            short,
            "the key has 3 bytes, not 32: expected 44 base64 characters"
        );
        let garbage = "not a key!".parse::<PublicKey>().unwrap_err().to_string();
        assert!(garbage.starts_with("the key is not base64"), "{garbage}");
        assert!(Keypair::from_file_text("").is_err());
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let pair = Keypair::generate();
        let private = STANDARD.encode(*pair.private());
        let shown = format!("{pair:?}");
        assert!(!shown.contains(&private), "{shown}");
        assert!(shown.contains(&pair.public().to_string()), "{shown}");
    }

    fn hex(s: &str) -> [u8; 32] {
        let mut out = [0; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
