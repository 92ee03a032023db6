//! Login throttling. Every attempt is counted as a failure *before* its password is checked (a
//! reservation), so a burst of parallel guesses gets no more checks than the limits allow; a
//! correct password takes its reservation back. Four counts, each a leaky bucket that forgives one
//! failure per period of quiet, so old failures decay instead of adding up for ever:
//!
//! - an account from one address (IPv6: its /64, the smallest network one subscriber is given): 5
//!   attempts, then a hard lock of 15 minutes. This is the attacker's own way in;
//! - an account from anywhere: 10 attempts, then 1, 2, 4, … seconds between attempts, capped at a
//!   minute: a distributed attack slows down, and delays the owner by a minute at most;
//! - an address, whatever the account: 20 failures, then locked for 15 minutes;
//! - a browser that has signed in to the account before (its device cookie, `crate::devices`): 5
//!   attempts, then that cookie counts for nothing for 15 minutes. Until then neither the account's
//!   locks nor the address's apply to it: no attacker, whatever address it shares, keeps the owner
//!   out.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::Mutex,
};

use crate::clock::SharedClock;

/// How many attempts a count allows, how it locks past them, and how fast it forgives.
#[derive(Debug, Clone, Copy)]
struct Limit {
    /// Attempts before the lock.
    free: u32,
    lock: Lock,
    /// One failure is forgiven per this many seconds.
    forgive_every: i64,
}

#[derive(Debug, Clone, Copy)]
enum Lock {
    /// This many seconds from the attempt that reaches the limit.
    Fixed(i64),
    /// 1, 2, 4, … seconds after each attempt past the limit, at most this many.
    Doubling { max: i64 },
}

const PAIR: Limit = Limit {
    free: 5,
    lock: Lock::Fixed(15 * 60),
    forgive_every: 3 * 60,
};
const ACCOUNT: Limit = Limit {
    free: 10,
    lock: Lock::Doubling { max: 60 },
    forgive_every: 90,
};
const ADDRESS: Limit = Limit {
    free: 20,
    lock: Lock::Fixed(15 * 60),
    forgive_every: 45,
};
const DEVICE: Limit = Limit {
    free: 5,
    lock: Lock::Fixed(15 * 60),
    forgive_every: 3 * 60,
};

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
    /// An unknown browser: the account from its address, the account, and the address.
    Anyone { account: String, address: IpAddr },
    /// A browser known to the account: its own count.
    Device { account: String, device: String },
}

#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    count: u32,
    /// Failures are forgiven from here on.
    forgiven_until: i64,
    last_at: i64,
    locked_until: i64,
}

impl Failures {
    fn lock_in_force(&self, now: i64) -> Option<Locked> {
        (self.locked_until > now).then(|| Locked {
            retry_after: self.locked_until - now,
        })
    }

    /// Forgives one failure per period since the last one forgiven.
    fn forgive(&mut self, now: i64, limit: Limit) {
        if self.count == 0 {
            self.forgiven_until = now;
            return;
        }
        let periods = (now - self.forgiven_until) / limit.forgive_every;
        if periods > 0 {
            self.count = self
                .count
                .saturating_sub(u32::try_from(periods).unwrap_or(u32::MAX));
            self.forgiven_until += periods * limit.forgive_every;
        }
    }

    /// Counts an attempt now, and locks when it reaches the limit.
    fn count(&mut self, now: i64, limit: Limit) {
        self.forgive(now, limit);
        self.count += 1;
        self.last_at = now;
        if self.count >= limit.free {
            let past = self.count - limit.free;
            self.locked_until = now
                + match limit.lock {
                    Lock::Fixed(seconds) => seconds,
                    Lock::Doubling { max } => (1_i64 << past.min(20)).min(max),
                };
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    pairs: HashMap<(String, IpAddr), Failures>,
    accounts: HashMap<String, Failures>,
    addresses: HashMap<IpAddr, Failures>,
    /// (account, device token) of browsers known to the account.
    devices: HashMap<(String, String), Failures>,
}

#[derive(Debug)]
pub struct LoginThrottle {
    /// One lock for every count: checking and counting an attempt is one step, never two.
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
    /// limit). A known device past its own limit is an unknown browser again.
    pub fn reserve(
        &self,
        account: &str,
        addr: IpAddr,
        known_device: Option<&str>,
    ) -> Result<Reservation, Locked> {
        let account = account.to_ascii_lowercase();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.now();
        prune(&mut counts, now);
        if let Some(device) = known_device {
            let key = (account.clone(), device.to_owned());
            let entry = counts.devices.entry(key).or_default();
            if entry.lock_in_force(now).is_none() {
                entry.count(now, DEVICE);
                return Ok(Reservation {
                    counted: Counted::Device {
                        account,
                        device: device.to_owned(),
                    },
                });
            }
        }
        let address = address_key(addr);
        let pair = (account.clone(), address);
        let locked = [
            counts.pairs.get(&pair),
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
        counts.pairs.entry(pair).or_default().count(now, PAIR);
        counts
            .accounts
            .entry(account.clone())
            .or_default()
            .count(now, ACCOUNT);
        counts
            .addresses
            .entry(address)
            .or_default()
            .count(now, ADDRESS);
        Ok(Reservation {
            counted: Counted::Anyone { account, address },
        })
    }

    /// A correct password: its attempt was no failure, and it clears the account's (or the
    /// device's) failures; not the address's others: one success among many failures does not
    /// clear an attacker.
    pub fn succeeded(&self, reservation: Reservation) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        match reservation.counted {
            Counted::Anyone { account, address } => {
                counts.pairs.remove(&(account.clone(), address));
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

fn prune(counts: &mut Counts, now: i64) {
    fn stale<K>(map: &mut HashMap<K, Failures>, now: i64) {
        if map.len() > PRUNE_AT {
            map.retain(|_, f| now - f.last_at < FORGET_AFTER || f.locked_until > now);
        }
    }
    stale(&mut counts.pairs, now);
    stale(&mut counts.accounts, now);
    stale(&mut counts.addresses, now);
    stale(&mut counts.devices, now);
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

    fn address(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from_bits(0xc633_6400 + i))
    }

    #[test]
    fn one_address_gets_five_attempts_at_an_account_then_a_hard_lock_the_owner_does_not_feel() {
        let (throttle, clock) = throttle();
        for _ in 0..5 {
            let _ = throttle.reserve("alice", ATTACKER, None).expect("free");
        }
        assert_eq!(
            throttle.reserve("Alice", ATTACKER, None).map(|_| ()),
            Err(Locked {
                retry_after: 15 * 60
            }),
            "the account, by any spelling, from that address"
        );
        assert!(
            throttle.reserve("alice", OWNER, None).is_ok(),
            "from elsewhere"
        );
        clock.advance(15 * 60 - 1);
        assert!(throttle.reserve("alice", ATTACKER, None).is_err());
        clock.advance(1);
        assert!(throttle.reserve("alice", ATTACKER, None).is_ok());
    }

    #[test]
    fn an_account_attacked_from_many_addresses_slows_down_by_a_minute_at_most() {
        let (throttle, clock) = throttle();
        for i in 0..10 {
            let _ = throttle.reserve("alice", address(i), None).expect("free");
        }
        assert_eq!(
            throttle.reserve("alice", OWNER, None).map(|_| ()),
            Err(Locked { retry_after: 1 })
        );
        for i in 10..30 {
            clock.advance(60);
            let _ = throttle
                .reserve("alice", address(i), None)
                .expect("lock over");
        }
        let Err(Locked { retry_after }) = throttle.reserve("alice", OWNER, None) else {
            panic!("locked");
        };
        assert_eq!(retry_after, 60);
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
        clock.advance(15 * 60);
        assert!(
            throttle.reserve("someone-else", ATTACKER, None).is_ok(),
            "and recovers after the lock"
        );
    }

    #[test]
    fn failures_decay_with_quiet() {
        let (throttle, clock) = throttle();
        for _ in 0..4 {
            let _ = throttle.reserve("carol", OWNER, None).expect("free");
        }
        // Twelve quiet minutes forgive four failures: four more attempts before the fifth locks.
        clock.advance(12 * 60);
        for _ in 0..5 {
            let _ = throttle.reserve("carol", OWNER, None).expect("forgiven");
        }
        assert!(throttle.reserve("carol", OWNER, None).is_err());
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
        assert!(throttle.reserve("alice", ATTACKER, None).is_err(), "locked");
        for _ in 0..5 {
            let _ = throttle
                .reserve("alice", ATTACKER, Some("owners-device"))
                .expect("the device's own attempts");
        }
        assert!(
            throttle
                .reserve("alice", ATTACKER, Some("owners-device"))
                .is_err(),
            "past its own limit it is an unknown browser, and waits with them"
        );
        assert!(
            throttle
                .reserve("alice", ATTACKER, Some("other-device"))
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
