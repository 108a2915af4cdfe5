//! Where a client comes from, for the limits per address and the fair shares: its IPv4 address, or its IPv6 /64 (limits) and /48 (shares, allowances).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Where a client comes from, for the limits per address: its IPv4 address, or the /64 network
/// of its IPv6 address (one host is usually given a whole /64, so counting IPv6 addresses one
/// by one would let one host open as many sessions as it likes). An IPv4 address seen as IPv6
/// (`::ffff:a.b.c.d`, on a dual-stack socket) is the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Origin(IpAddr);

pub(super) fn origin(addr: SocketAddr) -> Origin {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Origin(IpAddr::V4(v4)),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                Origin(IpAddr::V6(Ipv6Addr::from(network)))
            }
        },
        v4 => Origin(v4),
    }
}

/// Where `addr` comes from for the fair shares of a turn: its IPv6 /48 (one holder of many
/// /64s gets one share), or its IPv4 address.
pub(super) fn share(addr: SocketAddr) -> Origin {
    network(addr).unwrap_or_else(|| origin(addr))
}

/// The wider network of `addr` whose holder may have many /64s, for the allowances of
/// answers: its IPv6 /48; none for IPv4 (or IPv4 seen as IPv6), where one address is already
/// all one holder usually has.
pub(super) fn network(addr: SocketAddr) -> Option<Origin> {
    match addr.ip() {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let network = u128::from(v6) & !((1u128 << 80) - 1);
            Some(Origin(IpAddr::V6(Ipv6Addr::from(network))))
        }
        _ => None,
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V6(network) => write!(f, "{network}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}
