//! The Noise IK handshake through `snow`: the client's first message (in HELLO), the relay's answer (in REPLY), and the keys both come out with.

use snow::{Builder, HandshakeState, StatelessTransportState};

use super::frame::{HELLO_NOISE_LEN, REPLY_NOISE_LEN};
use super::keys::{KEY_LEN, Keypair, PublicKey};
use super::{PATTERN, PROLOGUE};

/// Why a handshake message was not taken: it was not written for our keys, or was changed
/// on its way. (Nothing more is told: the answer to a bad message is silence.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a handshake message that does not authenticate")
    }
}

impl std::error::Error for Refused {}

/// A builder of urc's handshake for the holder of `local`, with a fixed ephemeral key when
/// given (test vectors only).
fn builder<'a>(local: &'a Keypair, ephemeral: Option<&'a [u8; KEY_LEN]>) -> Builder<'a> {
    let b = Builder::new(PATTERN.parse().expect("the pattern is one snow knows"))
        .prologue(PROLOGUE)
        .expect("the prologue is set once")
        .local_private_key(local.private())
        .expect("the local key is set once");
    match ephemeral {
        Some(e) => b.fixed_ephemeral_key_for_testing_only(e),
        None => b,
    }
}

/// The client's side of a handshake: its first message, waiting for the relay's answer.
pub struct Initiation {
    state: HandshakeState,
    message: [u8; HELLO_NOISE_LEN],
}

impl std::fmt::Debug for Initiation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiation").finish_non_exhaustive()
    }
}

impl Initiation {
    /// A new handshake of `local` with the relay whose static key is `relay`, with a fresh
    /// ephemeral key.
    pub fn new(local: &Keypair, relay: &PublicKey) -> Self {
        Self::with_ephemeral(local, relay, None)
    }

    /// A handshake with a fixed ephemeral private key: for test vectors only (a fixed
    /// ephemeral key in real use gives away every session's secrecy).
    #[doc(hidden)]
    pub fn with_ephemeral(
        local: &Keypair,
        relay: &PublicKey,
        ephemeral: Option<&[u8; KEY_LEN]>,
    ) -> Self {
        let mut state = builder(local, ephemeral)
            .remote_public_key(&relay.0)
            .expect("the remote key is set once")
            .build_initiator()
            .expect("IK with both keys builds");
        let mut message = [0; HELLO_NOISE_LEN];
        let n = state
            .write_message(&[], &mut message)
            .expect("the first message fits");
        debug_assert_eq!(n, HELLO_NOISE_LEN);
        Self { state, message }
    }

    /// The first message, to send in HELLO (the same one every time HELLO is sent again).
    pub fn message(&self) -> &[u8; HELLO_NOISE_LEN] {
        &self.message
    }

    /// Takes the relay's answer: the transport keys, when it authenticates (it proves that
    /// whoever answered holds the relay's private key). A message that does not
    /// authenticate spends the handshake: the client starts another.
    pub fn finish(
        mut self,
        reply: &[u8; REPLY_NOISE_LEN],
    ) -> Result<StatelessTransportState, Refused> {
        let mut payload = [0; REPLY_NOISE_LEN];
        let n = self
            .state
            .read_message(reply, &mut payload)
            .map_err(|_| Refused)?;
        if n != 0 || !self.state.is_handshake_finished() {
            return Err(Refused);
        }
        self.state
            .into_stateless_transport_mode()
            .map_err(|_| Refused)
    }
}

/// The relay's side of a handshake, done in one step: what the client's first message gave.
pub struct Accepted {
    /// The client's static public key, which the first message proved it holds.
    pub peer: PublicKey,
    /// The transport keys.
    pub keys: StatelessTransportState,
    /// The answer, to send in REPLY.
    pub reply: [u8; REPLY_NOISE_LEN],
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Answers a client's first message with the relay's key pair `local`.
pub fn accept(local: &Keypair, hello: &[u8; HELLO_NOISE_LEN]) -> Result<Accepted, Refused> {
    accept_with(local, hello, None)
}

/// [`accept`] with a fixed ephemeral private key: for test vectors only.
#[doc(hidden)]
pub fn accept_with(
    local: &Keypair,
    hello: &[u8; HELLO_NOISE_LEN],
    ephemeral: Option<&[u8; KEY_LEN]>,
) -> Result<Accepted, Refused> {
    let mut state = builder(local, ephemeral)
        .build_responder()
        .expect("IK's responder builds");
    let mut payload = [0; HELLO_NOISE_LEN];
    let n = state
        .read_message(hello, &mut payload)
        .map_err(|_| Refused)?;
    if n != 0 {
        return Err(Refused);
    }
    let peer = state
        .get_remote_static()
        .and_then(|k| <[u8; KEY_LEN]>::try_from(k).ok())
        .map(PublicKey)
        .ok_or(Refused)?;
    let mut reply = [0; REPLY_NOISE_LEN];
    let n = state.write_message(&[], &mut reply).map_err(|_| Refused)?;
    debug_assert_eq!(n, REPLY_NOISE_LEN);
    let keys = state.into_stateless_transport_mode().map_err(|_| Refused)?;
    Ok(Accepted { peer, keys, reply })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(keys: &StatelessTransportState, nonce: u64, text: &[u8]) -> Vec<u8> {
        let mut out = vec![0; text.len() + 16];
        keys.write_message(nonce, text, &mut out).unwrap();
        out
    }

    fn opened(keys: &StatelessTransportState, nonce: u64, sealed: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0; sealed.len()];
        let n = keys.read_message(nonce, sealed, &mut out).ok()?;
        out.truncate(n);
        Some(out)
    }

    #[test]
    fn both_sides_come_out_with_the_same_keys_and_the_relay_learns_the_client() {
        let relay = Keypair::generate();
        let client = Keypair::generate();
        let init = Initiation::new(&client, &relay.public());
        let accepted = accept(&relay, init.message()).unwrap();
        assert_eq!(accepted.peer, client.public());
        let client_keys = init.finish(&accepted.reply).unwrap();
        let c = sealed(&client_keys, 0, "你好".as_bytes());
        assert_eq!(opened(&accepted.keys, 0, &c).unwrap(), "你好".as_bytes());
        let r = sealed(&accepted.keys, 0, b"welcome");
        assert_eq!(opened(&client_keys, 0, &r).unwrap(), b"welcome");
        assert!(opened(&client_keys, 1, &r).is_none(), "another nonce");
    }

    #[test]
    fn a_handshake_for_another_relay_key_is_refused() {
        let relay = Keypair::generate();
        let other = Keypair::generate();
        let client = Keypair::generate();
        let init = Initiation::new(&client, &other.public());
        assert!(accept(&relay, init.message()).is_err());
    }

    #[test]
    fn a_changed_byte_anywhere_is_refused() {
        let relay = Keypair::generate();
        let client = Keypair::generate();
        let init = Initiation::new(&client, &relay.public());
        for i in 0..HELLO_NOISE_LEN {
            let mut hello = *init.message();
            hello[i] ^= 1;
            assert!(accept(&relay, &hello).is_err(), "byte {i} of HELLO");
        }
        let accepted = accept(&relay, init.message()).unwrap();
        for i in 0..REPLY_NOISE_LEN {
            let init = Initiation::new(&client, &relay.public());
            let accepted = accept(&relay, init.message()).unwrap();
            let mut reply = accepted.reply;
            reply[i] ^= 0x80;
            assert!(init.finish(&reply).is_err(), "byte {i} of REPLY");
        }
        // An answer to another handshake does not finish this one.
        let init = Initiation::new(&client, &relay.public());
        assert!(init.finish(&accepted.reply).is_err());
    }

    #[test]
    fn an_impostor_relay_cannot_answer() {
        // Whoever answers without the relay's private key fails the client's check.
        let relay = Keypair::generate();
        let impostor = Keypair::generate();
        let client = Keypair::generate();
        let init = Initiation::new(&client, &relay.public());
        let forged = accept(&impostor, init.message());
        assert!(forged.is_err(), "the impostor cannot even read it");
    }

    #[test]
    fn fixed_ephemeral_keys_give_fixed_messages() {
        let relay = Keypair::from_private(zeroize::Zeroizing::new([1; 32]));
        let client = Keypair::from_private(zeroize::Zeroizing::new([2; 32]));
        let a = Initiation::with_ephemeral(&client, &relay.public(), Some(&[3; 32]));
        let b = Initiation::with_ephemeral(&client, &relay.public(), Some(&[3; 32]));
        assert_eq!(a.message(), b.message());
        let x = accept_with(&relay, a.message(), Some(&[4; 32])).unwrap();
        let y = accept_with(&relay, b.message(), Some(&[4; 32])).unwrap();
        assert_eq!(x.reply, y.reply);
        assert!(a.finish(&x.reply).is_ok());
    }
}
