//! What both programs share and that does no I/O: the datagram format and the room's vocabulary.
//!
//! Nothing here uses any other part of urc; the relay's and the client's rules, and their
//! shells, build on it.
//!
//! | module | role |
//! |---|---|
//! | [`dm`] | private conversations: the target `@name`, the key of two names' conversation |
//! | [`message`] | the room's vocabulary: a stored message, the text rules, timestamps |
//! | [`name`] | names: the rules, the key under which look-alikes clash, the relay's own name |
//! | [`room`] | room names: the rules, the key under which names in another case are one room |
//! | [`secure`] | the handshake, the keys, and every later datagram sealed (Noise IK) |
//! | [`wire`] | every datagram of the protocol, encoded and decoded without I/O |

pub mod dm;
pub mod message;
pub mod name;
pub mod room;
pub mod secure;
pub mod wire;
