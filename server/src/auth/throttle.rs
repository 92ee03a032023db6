//! Login throttling, per account and per client address. Every attempt is counted as a failure
//! *before* its password is checked (a reservation), so a burst of parallel guesses gets no more
//! checks than the limit allows; a correct password takes its reservation back. The account lock is
//! short and capped, so an attacker hammering a username delays its owner by at most a minute; the
//! address lock is long, so the attacker's own address stays locked out. IPv6 clients are counted
//! by their /64, the smallest network one subscriber is given.

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
    account: String,
    address: IpAddr,
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

    /// Reserves an attempt on `account` from `addr`: refused while either is locked, otherwise
    /// counted as a failure now (and a lock written if that reaches a limit).
    pub fn reserve(&self, account: &str, addr: IpAddr) -> Result<Reservation, Locked> {
        let account = account.to_ascii_lowercase();
        let address = address_key(addr);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.now();
        let until = [
            counts.accounts.get(&account),
            counts.addresses.get(&address),
        ]
        .into_iter()
        .flatten()
        .map(|failures| failures.locked_until)
        .max()
        .unwrap_or(0);
        if until > now {
            return Err(Locked {
                retry_after: until - now,
            });
        }

        let entry = counts.accounts.entry(account.clone()).or_default();
        entry.count += 1;
        entry.last_at = now;
        if entry.count >= ACCOUNT_FREE_ATTEMPTS {
            // 1, 2, 4, … seconds, capped: the next attempt waits, however many are in flight.
            let exponent = (entry.count - ACCOUNT_FREE_ATTEMPTS).min(6);
            entry.locked_until = now + (1_i64 << exponent).min(ACCOUNT_MAX_LOCK);
        }

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

        prune(&mut counts.accounts, now);
        prune(&mut counts.addresses, now);
        Ok(Reservation { account, address })
    }

    /// A correct password: its attempt was no failure, and it clears the account's failures (not
    /// the address's others: one success among many failures does not clear an attacker).
    pub fn succeeded(&self, reservation: Reservation) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.accounts.remove(&reservation.account);
        if let Some(address) = counts.addresses.get_mut(&reservation.address) {
            address.count = address.count.saturating_sub(1);
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
            let _ = throttle.reserve("alice", ATTACKER).expect("free");
        }
        assert_eq!(
            throttle.reserve("Alice", OWNER).map(|_| ()),
            Err(Locked { retry_after: 1 }),
            "the account, by any spelling, is slowed for everyone"
        );
        // Keep failing as the locks allow: they grow, but never past a minute.
        for _ in 0..10 {
            clock.advance(ACCOUNT_MAX_LOCK);
            let _ = throttle.reserve("alice", ATTACKER).expect("lock over");
        }
        let Err(Locked { retry_after }) = throttle.reserve("alice", OWNER) else {
            panic!("locked");
        };
        assert_eq!(retry_after, ACCOUNT_MAX_LOCK);
        clock.advance(ACCOUNT_MAX_LOCK);
        assert!(throttle.reserve("alice", OWNER).is_ok());
    }

    #[test]
    fn an_address_that_fails_twenty_times_stays_locked_out_whatever_the_account() {
        let (throttle, clock) = throttle();
        for i in 0..20 {
            let _ = throttle
                .reserve(&format!("user{i}"), ATTACKER)
                .expect("free");
        }
        clock.advance(60);
        assert!(throttle.reserve("someone-new", ATTACKER).is_err());
        assert!(throttle.reserve("someone-new", OWNER).is_ok());
        clock.advance(ADDRESS_LOCK);
        assert!(
            throttle.reserve("someone-else", ATTACKER).is_ok(),
            "and recovers after the lock"
        );
    }

    #[test]
    fn a_correct_password_takes_its_attempt_back_and_clears_the_account() {
        let (throttle, _) = throttle();
        for _ in 0..4 {
            let _ = throttle.reserve("bob", OWNER).expect("free");
        }
        let correct = throttle.reserve("bob", OWNER).expect("the fifth is free");
        throttle.succeeded(correct);
        for _ in 0..5 {
            let _ = throttle.reserve("bob", OWNER).expect("cleared");
        }
        // 4 failures + 5 after the success: the address counts 9 of its 20, not 10.
        for i in 0..11 {
            let _ = throttle
                .reserve(&format!("other{i}"), OWNER)
                .expect("under 20");
        }
        assert!(throttle.reserve("another", OWNER).is_err());
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
