//! Address validation without per-address state: a cookie is a MAC over the client's address
//! and the time, under a secret that rotates, so only who receives at an address can echo it.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long a cookie is accepted after the relay minted it.
pub const COOKIE_LIFETIME: Duration = Duration::from_secs(10);
/// How often the secret changes; the one before stays valid for one more period.
const ROTATE_SECS: u64 = 60;
/// Bytes of a cookie: 4 of time, 16 of MAC.
pub const COOKIE_LEN: usize = 20;

/// The relay's cookie jar: two secrets and a clock origin.
pub struct Cookies {
    epoch: Instant,
    /// Secret of period `period`.
    current: [u8; 32],
    /// Secret of period `period - 1`.
    previous: [u8; 32],
    period: u64,
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets are never printed.
        f.debug_struct("Cookies")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl Cookies {
    /// A jar with fresh secrets from the operating system's generator.
    pub fn new(now: Instant) -> Self {
        Cookies {
            epoch: now,
            current: random_secret(),
            previous: random_secret(),
            period: 0,
        }
    }

    /// A cookie for `addr`, valid for [`COOKIE_LIFETIME`].
    pub fn mint(&mut self, now: Instant, addr: SocketAddr) -> Vec<u8> {
        let secs = self.secs(now);
        self.rotate(secs);
        let mut cookie = Vec::with_capacity(COOKIE_LEN);
        cookie.extend_from_slice(&secs.to_be_bytes());
        cookie.extend_from_slice(&mac(&self.current, addr, secs));
        cookie
    }

    /// True when `cookie` was minted for `addr` by this jar less than [`COOKIE_LIFETIME`] ago.
    pub fn check(&mut self, now: Instant, addr: SocketAddr, cookie: &[u8]) -> bool {
        let Some((time, tag)) = cookie.split_first_chunk::<4>() else {
            return false;
        };
        let now_secs = self.secs(now);
        self.rotate(now_secs);
        let minted = u32::from_be_bytes(*time);
        if minted > now_secs || u64::from(now_secs - minted) > COOKIE_LIFETIME.as_secs() {
            return false;
        }
        let secret = match u64::from(minted) / ROTATE_SECS {
            p if p == self.period => &self.current,
            p if p + 1 == self.period => &self.previous,
            _ => return false,
        };
        // Constant-time comparison: no timing tells how much of a forged tag was right.
        blake3::Hash::from(pad(tag)) == blake3::Hash::from(pad(&mac(secret, addr, minted)))
    }

    fn secs(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.epoch).as_secs()).unwrap_or(u32::MAX)
    }

    fn rotate(&mut self, secs: u32) {
        let period = u64::from(secs) / ROTATE_SECS;
        if period > self.period {
            self.previous = if period == self.period + 1 {
                self.current
            } else {
                random_secret()
            };
            self.current = random_secret();
            self.period = period;
        }
    }
}

fn random_secret() -> [u8; 32] {
    let mut secret = [0u8; 32];
    // Without the system's generator no cookie can be trusted: nothing sensible goes on.
    getrandom::fill(&mut secret).expect("the operating system's random generator failed");
    secret
}

fn mac(secret: &[u8; 32], addr: SocketAddr, secs: u32) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new_keyed(secret);
    match addr.ip() {
        IpAddr::V4(ip) => hasher.update(&ip.to_ipv6_mapped().octets()),
        IpAddr::V6(ip) => hasher.update(&ip.octets()),
    };
    hasher.update(&addr.port().to_be_bytes());
    hasher.update(&secs.to_be_bytes());
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    tag
}

/// A tag of any length as 32 bytes, for blake3's constant-time equality (a wrong length
/// simply never matches a 16-byte tag padded the same way, since the length is included).
fn pad(tag: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let n = tag.len().min(31);
    out[..n].copy_from_slice(&tag[..n]);
    out[31] = u8::try_from(tag.len()).unwrap_or(u8::MAX);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_good_for_its_address_for_a_while() {
        let t0 = Instant::now();
        let mut jar = Cookies::new(t0);
        let alice: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let cookie = jar.mint(t0, alice);
        assert_eq!(cookie.len(), COOKIE_LEN);
        assert!(jar.check(t0 + Duration::from_secs(9), alice, &cookie));
        assert!(!jar.check(t0 + Duration::from_secs(11), alice, &cookie));
        let other_port: SocketAddr = "192.0.2.1:4001".parse().unwrap();
        assert!(!jar.check(t0, other_port, &cookie));
        let mut forged = cookie.clone();
        forged[10] ^= 1;
        assert!(!jar.check(t0, alice, &forged));
        assert!(!jar.check(t0, alice, &cookie[..19]));
        assert!(!jar.check(t0, alice, &[]));
        // Another relay (another secret) does not take it.
        assert!(!Cookies::new(t0).check(t0, alice, &cookie));
    }

    #[test]
    fn cookies_survive_one_rotation() {
        let t0 = Instant::now();
        let mut jar = Cookies::new(t0);
        let bob: SocketAddr = "[2001:db8::1]:7000".parse().unwrap();
        let late = t0 + Duration::from_secs(ROTATE_SECS - 1);
        let cookie = jar.mint(late, bob);
        assert!(jar.check(late + Duration::from_secs(5), bob, &cookie));
        assert_eq!(jar.period, 1);
        let fresh = jar.mint(late + Duration::from_secs(5), bob);
        assert!(jar.check(late + Duration::from_secs(6), bob, &fresh));
    }
}
