//! The relay's UDP socket: bound with buffers large enough for the bursts of many senders, and the errors after which it works on.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Bytes of socket buffer the relay asks for in each direction: a few thousand datagrams, so
/// that the bursts of many senders' windows wait in the socket rather than being dropped
/// while the relay flushes its log. The kernel caps it at `net.core.rmem_max` and
/// `wmem_max`; the relay works with whatever it gets.
const SOCKET_BUFFER: usize = 4 << 20;

/// A UDP socket bound to `addr` with buffers of [`SOCKET_BUFFER`] bytes, or as near as the
/// kernel allows.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer only drops more under bursts, which clients recover from.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    let receive = socket.recv_buffer_size().unwrap_or(0);
    tracing::debug!(
        receive,
        send = socket.send_buffer_size().unwrap_or(0),
        "socket buffers"
    );
    // Linux reports twice what it grants (the other half is for its own bookkeeping).
    let granted = if cfg!(target_os = "linux") {
        receive / 2
    } else {
        receive
    };
    if granted < SOCKET_BUFFER {
        tracing::warn!(
            "the socket's receive buffer is {} KiB, not {} KiB (net.core.rmem_max caps it): a busy relay may drop bursts, which clients resend; raise it with sysctl -w net.core.rmem_max={SOCKET_BUFFER}",
            granted / 1024,
            SOCKET_BUFFER / 1024
        );
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Errors a UDP socket reports for one datagram (often an ICMP answer to an earlier send),
/// after which it works on.
pub fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}
