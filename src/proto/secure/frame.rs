//! The outer datagrams of protocol version 2: the handshake's (HELLO, CHALLENGE, REPLY), the sealed packets (DATA) and the relay's "no such transport" (UNKNOWN), encoded and decoded without I/O.
//!
//! Every datagram starts with the header of version 1 (`0x55`, the version, the type); the
//! fields follow in the order of their table in docs/protocol.md, big-endian, and the
//! datagram ends where its last field ends. Decoding is strict: any other length is an
//! error.

use super::keys::{KEY_LEN, PublicKey};
use crate::proto::wire::{MAGIC, MAX_DATAGRAM};

/// The protocol version of these frames.
pub const VERSION: u8 = 2;
/// Bytes of the IK handshake's first message (an ephemeral key, the sealed static key, the
/// sealed empty payload).
pub const HELLO_NOISE_LEN: usize = KEY_LEN + (KEY_LEN + TAG_LEN) + TAG_LEN;
/// Bytes of the IK handshake's second message (an ephemeral key, the sealed empty payload).
pub const REPLY_NOISE_LEN: usize = KEY_LEN + TAG_LEN;
/// Bytes of an AEAD tag.
pub const TAG_LEN: usize = 16;
/// Bytes a DATA frame adds to the packet it seals: the header, the receiver, the counter and
/// the tag.
pub const DATA_OVERHEAD: usize = DATA_HEADER + TAG_LEN;
/// The largest packet a DATA frame can seal within [`MAX_DATAGRAM`].
pub const MAX_SEALED_PACKET: usize = MAX_DATAGRAM - DATA_OVERHEAD;
/// Bytes of the CHALLENGE's echo of the HELLO it answers.
pub const ECHO_LEN: usize = 8;
/// Bytes of a cookie at most (a bytes8).
pub const MAX_COOKIE: usize = 255;

const HEADER_LEN: usize = 3;

/// The type byte of a HELLO.
pub const HELLO: u8 = 0x10;
/// The type byte of a CHALLENGE.
pub const CHALLENGE: u8 = 0x11;
/// The type byte of a REPLY.
pub const REPLY: u8 = 0x12;
/// The type byte of a DATA.
pub const DATA: u8 = 0x13;
/// The type byte of an UNKNOWN.
pub const UNKNOWN: u8 = 0x14;

/// One outer datagram, borrowing from the bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Client → relay: the handshake's first message, with the cookie that proves the
    /// client's address (empty before the first CHALLENGE).
    Hello {
        /// The client's index for this handshake: the relay writes it on what it sends.
        sender: u32,
        /// The last CHALLENGE's cookie.
        cookie: &'a [u8],
        /// The Noise IK first message (random bytes while the client does not know the
        /// relay's key yet).
        noise: &'a [u8; HELLO_NOISE_LEN],
    },
    /// Relay → client: prove your address with this cookie; and the relay's public key.
    Challenge {
        /// The first [`ECHO_LEN`] bytes of the HELLO's `noise`, so that the client knows the
        /// CHALLENGE answers its HELLO.
        echo: [u8; ECHO_LEN],
        /// Good for the client's address for a few seconds.
        cookie: &'a [u8],
        /// The relay's static public key.
        relay: PublicKey,
    },
    /// Relay → client: the handshake's second message.
    Reply {
        /// The relay's index for the new transport: the client writes it on what it sends.
        sender: u32,
        /// The client's index from the HELLO answered.
        receiver: u32,
        /// The Noise IK second message.
        noise: &'a [u8; REPLY_NOISE_LEN],
    },
    /// Either way: one packet sealed by a transport.
    Data {
        /// The index the receiver gave the transport.
        receiver: u32,
        /// The sealing counter (the nonce).
        counter: u64,
        /// The sealed packet and its tag.
        sealed: &'a [u8],
    },
    /// Relay → client: a DATA for a transport the relay does not have (it restarted, or the
    /// transport expired, or the client's address changed): the client makes a new
    /// handshake.
    Unknown {
        /// The refused DATA's receiver.
        receiver: u32,
        /// The refused DATA's counter.
        counter: u64,
    },
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Over [`MAX_DATAGRAM`] bytes.
    TooLong,
    /// The first byte is not `0x55`.
    BadMagic,
    /// Not protocol version 2.
    BadVersion(u8),
    /// Not a frame type.
    BadType(u8),
    /// Longer or shorter than the frame type allows.
    BadLength,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong => write!(f, "over {MAX_DATAGRAM} bytes"),
            Self::BadMagic => f.write_str("not a urc datagram (bad magic byte)"),
            Self::BadVersion(v) => write!(f, "protocol version {v}, not {VERSION}"),
            Self::BadType(t) => write!(f, "unknown frame type {t:#04x}"),
            Self::BadLength => f.write_str("a frame of the wrong length"),
        }
    }
}

impl std::error::Error for FrameError {}

impl<'a> Frame<'a> {
    /// Writes the frame, appending to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let kind = match self {
            Self::Hello { .. } => HELLO,
            Self::Challenge { .. } => CHALLENGE,
            Self::Reply { .. } => REPLY,
            Self::Data { .. } => DATA,
            Self::Unknown { .. } => UNKNOWN,
        };
        out.extend_from_slice(&[MAGIC, VERSION, kind]);
        match self {
            Self::Hello {
                sender,
                cookie,
                noise,
            } => {
                out.extend_from_slice(&sender.to_be_bytes());
                bytes8(out, cookie);
                out.extend_from_slice(&noise[..]);
            }
            Self::Challenge {
                echo,
                cookie,
                relay,
            } => {
                out.extend_from_slice(echo);
                bytes8(out, cookie);
                out.extend_from_slice(&relay.0);
            }
            Self::Reply {
                sender,
                receiver,
                noise,
            } => {
                out.extend_from_slice(&sender.to_be_bytes());
                out.extend_from_slice(&receiver.to_be_bytes());
                out.extend_from_slice(&noise[..]);
            }
            Self::Data {
                receiver,
                counter,
                sealed,
            } => {
                out.extend_from_slice(&receiver.to_be_bytes());
                out.extend_from_slice(&counter.to_be_bytes());
                out.extend_from_slice(sealed);
            }
            Self::Unknown { receiver, counter } => {
                out.extend_from_slice(&receiver.to_be_bytes());
                out.extend_from_slice(&counter.to_be_bytes());
            }
        }
    }

    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Reads one frame: exactly the whole datagram.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FrameError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(FrameError::TooLong);
        }
        let (header, body) = bytes
            .split_at_checked(HEADER_LEN)
            .ok_or(FrameError::BadLength)?;
        if header[0] != MAGIC {
            return Err(FrameError::BadMagic);
        }
        if header[1] != VERSION {
            return Err(FrameError::BadVersion(header[1]));
        }
        let mut r = Fields(body);
        let frame = match header[2] {
            HELLO => Self::Hello {
                sender: r.u32()?,
                cookie: r.bytes8()?,
                noise: r.array()?,
            },
            CHALLENGE => Self::Challenge {
                echo: *r.array()?,
                cookie: r.bytes8()?,
                relay: PublicKey(*r.array()?),
            },
            REPLY => Self::Reply {
                sender: r.u32()?,
                receiver: r.u32()?,
                noise: r.array()?,
            },
            DATA => {
                let receiver = r.u32()?;
                let counter = r.u64()?;
                let sealed = std::mem::take(&mut r.0);
                if sealed.len() < TAG_LEN {
                    return Err(FrameError::BadLength);
                }
                Self::Data {
                    receiver,
                    counter,
                    sealed,
                }
            }
            UNKNOWN => Self::Unknown {
                receiver: r.u32()?,
                counter: r.u64()?,
            },
            other => return Err(FrameError::BadType(other)),
        };
        if !r.0.is_empty() {
            return Err(FrameError::BadLength);
        }
        Ok(frame)
    }
}

/// Bytes of a DATA frame before its sealed packet.
pub const DATA_HEADER: usize = HEADER_LEN + 4 + 8;

/// Writes a DATA frame's header, appending to `out` (the sealed packet follows).
pub fn data_header(out: &mut Vec<u8>, receiver: u32, counter: u64) {
    out.extend_from_slice(&[MAGIC, VERSION, DATA]);
    out.extend_from_slice(&receiver.to_be_bytes());
    out.extend_from_slice(&counter.to_be_bytes());
}

fn bytes8(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u8::try_from(bytes.len()).expect("a cookie is at most 255 bytes");
    out.push(len);
    out.extend_from_slice(bytes);
}

/// The fields of a frame, read in order.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(FrameError::BadLength)?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], FrameError> {
        Ok(self.take(N)?.try_into().expect("taken N bytes"))
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_be_bytes(*self.array()?))
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_be_bytes(*self.array()?))
    }

    fn bytes8(&mut self) -> Result<&'a [u8], FrameError> {
        let n = self.take(1)?[0];
        self.take(usize::from(n))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn frames() -> Vec<Vec<u8>> {
        let noise = [7; HELLO_NOISE_LEN];
        let reply = [9; REPLY_NOISE_LEN];
        [
            Frame::Hello {
                sender: 0x0102_0304,
                cookie: &[],
                noise: &noise,
            },
            Frame::Hello {
                sender: 1,
                cookie: &[5; 20],
                noise: &noise,
            },
            Frame::Challenge {
                echo: [1, 2, 3, 4, 5, 6, 7, 8],
                cookie: &[6; 20],
                relay: PublicKey([3; 32]),
            },
            Frame::Reply {
                sender: 9,
                receiver: 0x0102_0304,
                noise: &reply,
            },
            Frame::Data {
                receiver: 9,
                counter: 1 << 40,
                sealed: &[0xaa; 40],
            },
            Frame::Unknown {
                receiver: 9,
                counter: 77,
            },
        ]
        .iter()
        .map(Frame::encode)
        .collect()
    }

    #[test]
    fn every_frame_reads_back() {
        for bytes in frames() {
            let frame = Frame::decode(&bytes).unwrap();
            assert_eq!(frame.encode(), bytes);
        }
    }

    #[test]
    fn sizes_are_as_documented() {
        let sizes: Vec<usize> = frames().iter().map(Vec::len).collect();
        // HELLO 3 + 4 + 1 + c + 96; CHALLENGE 3 + 8 + 1 + c + 32; REPLY 3 + 4 + 4 + 48;
        // DATA 3 + 4 + 8 + sealed; UNKNOWN 3 + 4 + 8.
        assert_eq!(sizes, [104, 124, 64, 59, 55, 15]);
        // A CHALLENGE with this relay's 20-byte cookie, to a HELLO without one, is within
        // three times the HELLO's size: the budget of an address not yet proved.
        assert!(sizes[2] <= 3 * sizes[0]);
        assert_eq!(DATA_OVERHEAD, 31);
    }

    #[test]
    fn a_datagram_of_another_length_is_refused() {
        for bytes in frames() {
            let mut longer = bytes.clone();
            longer.push(0);
            let is_data = bytes[2] == DATA;
            assert_eq!(
                Frame::decode(&longer).is_ok(),
                is_data,
                "only DATA's sealed part grows: {bytes:02x?}"
            );
            for cut in 0..bytes.len() {
                let shorter = &bytes[..cut];
                let ok = Frame::decode(shorter).is_ok();
                assert!(
                    !ok || (is_data && cut >= 15 + TAG_LEN),
                    "cut at {cut}: {bytes:02x?}"
                );
            }
        }
    }

    #[test]
    fn headers_are_checked() {
        let mut bytes = frames().remove(0);
        bytes[1] = 1;
        assert_eq!(Frame::decode(&bytes), Err(FrameError::BadVersion(1)));
        bytes[1] = VERSION;
        bytes[0] = 0;
        assert_eq!(Frame::decode(&bytes), Err(FrameError::BadMagic));
        bytes[0] = MAGIC;
        bytes[2] = 0x01;
        assert_eq!(Frame::decode(&bytes), Err(FrameError::BadType(1)));
        assert_eq!(
            Frame::decode(&vec![MAGIC; MAX_DATAGRAM + 1]),
            Err(FrameError::TooLong)
        );
    }

    proptest! {
        /// Any bytes at all: an error or a frame that writes back to the same bytes.
        #[test]
        fn decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..1300), kind in 0x10u8..0x15) {
            let mut bytes = bytes;
            if bytes.len() >= 3 {
                bytes[0] = MAGIC;
                bytes[1] = VERSION;
                bytes[2] = kind;
            }
            if let Ok(frame) = Frame::decode(&bytes) {
                prop_assert_eq!(frame.encode(), bytes);
            }
        }
    }
}
