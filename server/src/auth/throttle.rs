//! Login throttling, per account and per client address. Every attempt is counted as a failure
//! *before* its password is checked (a reservation), so a burst of parallel guesses gets no more
//! checks than the limit allows; a correct password takes its reservation back. The account lock is
//! short and capped, so an attacker hammering a username delays its owner by at most a minute; the
//! address lock is long, so the attacker's own address stays locked out. IPv6 clients are counted
//! by their /64, the smallest network one subscriber is given. A browser that has signed in to the
//! account before (its device cookie, `crate::devices`) is throttled on its own, by neither the
//! account's lock nor its address's: no attacker, whatever address it shares, keeps it out.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::Mutex,
};

use crate::clock::SharedClock;

/// Attempts on one account before it is slowed down.
const ACCOUNT_FREE_ATTEMPTS: u32 = 5;
/// The longest an account is ever locked, in seconds.
const ACCOUNT_MAX_LOCK: i64 = 60;
/// Failures from one address within the window before it is locked out.
const ADDRESS_MAX_FAILURES: u32 = 20;
const ADDRESS_WINDOW: i64 = 15 * 60;
const ADDRESS_LOCK: i64 = 15 * 60;
/// Entries untouched this long are forgotten.
const FORGET_AFTER: i64 = 60 * 60;
/// The maps are pruned when they grow past this.
const PRUNE_AT: usize = 10_000;

/// Refused: try again in this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub retry_after: i64,
}

/// An attempt that may be checked, already counted as a failure; [`LoginThrottle::succeeded`]
/// takes it back. Dropped (a wrong password, an error, a client that hung up), it stays counted.
#[derive(Debug)]
#[must_use = "a correct password must hand its reservation back"]
pub struct Reservation {
    counted: Counted,
}

/// What an attempt was counted against.
#[derive(Debug)]
enum Counted {
    /// An unknown browser: the account and the address.
    Anyone { account: String, address: IpAddr },
    /// A browser known to the account: its own count.
    Device { account: String, device: String },
}

#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    count: u32,
    first_at: i64,
    last_at: i64,
    locked_until: i64,
}

#[derive(Debug, Default)]
struct Counts {
    accounts: HashMap<String, Failures>,
    addresses: HashMap<IpAddr, Failures>,
    /// (account, device token) of browsers known to the account.
    devices: HashMap<(String, String), Failures>,
}

impl Failures {
    fn lock_in_force(&self, now: i64) -> Option<Locked> {
        (self.locked_until > now).then(|| Locked {
            retry_after: self.locked_until - now,
        })
    }

    /// Counts an attempt on an account (or a device of it): 5 free, then 1, 2, 4, … seconds to
    /// wait before the next, capped, however many are in flight.
    fn count_account_attempt(&mut self, now: i64) {
        self.count += 1;
        self.last_at = now;
        if self.count >= ACCOUNT_FREE_ATTEMPTS {
            let exponent = (self.count - ACCOUNT_FREE_ATTEMPTS).min(6);
            self.locked_until = now + (1_i64 << exponent).min(ACCOUNT_MAX_LOCK);
        }
    }
}

#[derive(Debug)]
pub struct LoginThrottle {
    /// One lock for both maps: checking and counting an attempt is one step, never two.
    counts: Mutex<Counts>,
    /// Read while the lock is held: a lock is dated when it is written.
    clock: SharedClock,
}

/// Whose failures an address counts towards: itself for IPv4, its /64 for IPv6 (an IPv4 address
/// mapped into IPv6 is the IPv4 address).
pub fn address_key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

impl LoginThrottle {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            counts: Mutex::new(Counts::default()),
            clock,
        }
    }

    /// Reserves an attempt on `account` from `addr`, by a browser that presented a device cookie
    /// known to the account (`known_device`, its token) or not: refused while what it counts
    /// against is locked, otherwise counted as a failure now (and a lock written if that reaches a
    /// limit).
    pub fn reserve(
        &self,
        account: &str,
        addr: IpAddr,
        known_device: Option<&str>,
    ) -> Result<Reservation, Locked> {
        let account = account.to_ascii_lowercase();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.now();
        let counted = match known_device {
            Some(device) => {
                let key = (account, device.to_owned());
                let entry = counts.devices.entry(key.clone()).or_default();
                if let Some(locked) = entry.lock_in_force(now) {
                    return Err(locked);
                }
                entry.count_account_attempt(now);
                let (account, device) = key;
                Counted::Device { account, device }
            }
            None => {
                let address = address_key(addr);
                let locked = [
                    counts.accounts.get(&account),
                    counts.addresses.get(&address),
                ]
                .into_iter()
                .flatten()
                .filter_map(|failures| failures.lock_in_force(now))
                .max_by_key(|locked| locked.retry_after);
                if let Some(locked) = locked {
                    return Err(locked);
                }
                counts
                    .accounts
                    .entry(account.clone())
                    .or_default()
                    .count_account_attempt(now);
                let entry = counts.addresses.entry(address).or_default();
                if now - entry.first_at > ADDRESS_WINDOW {
                    *entry = Failures {
                        first_at: now,
                        ..Failures::default()
                    };
                }
                entry.count += 1;
                entry.last_at = now;
                if entry.count >= ADDRESS_MAX_FAILURES {
                    entry.locked_until = now + ADDRESS_LOCK;
                }
                Counted::Anyone { account, address }
            }
        };
        prune(&mut counts.accounts, now);
        prune(&mut counts.addresses, now);
        prune(&mut counts.devices, now);
        Ok(Reservation { counted })
    }

    /// A correct password: its attempt was no failure, and it clears the account's (or the
    /// device's) failures; not the address's others: one success among many failures does not
    /// clear an attacker.
    pub fn succeeded(&self, reservation: Reservation) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        match reservation.counted {
            Counted::Anyone { account, address } => {
                counts.accounts.remove(&account);
                if let Some(address) = counts.addresses.get_mut(&address) {
                    address.count = address.count.saturating_sub(1);
                }
            }
            Counted::Device { account, device } => {
                counts.devices.remove(&(account, device));
            }
        }
    }
}

fn prune<K>(map: &mut HashMap<K, Failures>, now: i64) {
    if map.len() > PRUNE_AT {
        map.retain(|_, f| now - f.last_at < FORGET_AFTER || f.locked_until > now);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    const ATTACKER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 66));
    const OWNER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 10));

    fn throttle() -> (LoginThrottle, Arc<ManualClock>) {
        let clock = ManualClock::starting_now();
        (LoginThrottle::new(clock.clone()), clock)
    }

    #[test]
    fn an_account_takes_five_attempts_then_slows_down_and_recovers_within_a_minute() {
        let (throttle, clock) = throttle();
        for _ in 0..5 {
            let _ = throttle.reserve("alice", ATTACKER, None).expect("free");
        }
        assert_eq!(
            throttle.reserve("Alice", OWNER, None).map(|_| ()),
            Err(Locked { retry_after: 1 }),
            "the account, by any spelling, is slowed for everyone"
        );
        // Keep failing as the locks allow: they grow, but never past a minute.
        for _ in 0..10 {
            clock.advance(ACCOUNT_MAX_LOCK);
            let _ = throttle
                .reserve("alice", ATTACKER, None)
                .expect("lock over");
        }
        let Err(Locked { retry_after }) = throttle.reserve("alice", OWNER, None) else {
            panic!("locked");
        };
        assert_eq!(retry_after, ACCOUNT_MAX_LOCK);
        clock.advance(ACCOUNT_MAX_LOCK);
        assert!(throttle.reserve("alice", OWNER, None).is_ok());
    }

    #[test]
    fn an_address_that_fails_twenty_times_stays_locked_out_whatever_the_account() {
        let (throttle, clock) = throttle();
        for i in 0..20 {
            let _ = throttle
                .reserve(&format!("user{i}"), ATTACKER, None)
                .expect("free");
        }
        clock.advance(60);
        assert!(throttle.reserve("someone-new", ATTACKER, None).is_err());
        assert!(throttle.reserve("someone-new", OWNER, None).is_ok());
        clock.advance(ADDRESS_LOCK);
        assert!(
            throttle.reserve("someone-else", ATTACKER, None).is_ok(),
            "and recovers after the lock"
        );
    }

    #[test]
    fn a_correct_password_takes_its_attempt_back_and_clears_the_account() {
        let (throttle, _) = throttle();
        for _ in 0..4 {
            let _ = throttle.reserve("bob", OWNER, None).expect("free");
        }
        let correct = throttle
            .reserve("bob", OWNER, None)
            .expect("the fifth is free");
        throttle.succeeded(correct);
        for _ in 0..5 {
            let _ = throttle.reserve("bob", OWNER, None).expect("cleared");
        }
        // 4 failures + 5 after the success: the address counts 9 of its 20, not 10.
        for i in 0..11 {
            let _ = throttle
                .reserve(&format!("other{i}"), OWNER, None)
                .expect("under 20");
        }
        assert!(throttle.reserve("another", OWNER, None).is_err());
    }

    #[test]
    fn a_known_browser_is_throttled_on_its_own_while_the_account_and_address_are_locked() {
        let (throttle, _) = throttle();
        for i in 0..20 {
            let _ = throttle.reserve("alice", ATTACKER, None);
            let _ = throttle.reserve(&format!("user{i}"), ATTACKER, None);
        }
        assert!(
            throttle.reserve("alice", OWNER, None).is_err(),
            "account locked"
        );
        assert!(
            throttle.reserve("x", ATTACKER, None).is_err(),
            "address locked"
        );
        for _ in 0..5 {
            let _ = throttle
                .reserve("alice", ATTACKER, Some("owners-device"))
                .expect("the device's own attempts");
        }
        assert!(
            throttle
                .reserve("alice", ATTACKER, Some("owners-device"))
                .is_err(),
            "and its own limit"
        );
        assert!(
            throttle
                .reserve("alice", OWNER, Some("other-device"))
                .is_ok(),
            "counted per device"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_slash_64() {
        let key = |text: &str| address_key(text.parse().expect("address"));
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), key("2001:db8:1:2:ffff::1"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }
}
