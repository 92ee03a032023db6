//! Login throttling, per account and per client address. The account lock is short and capped, so
//! an attacker hammering a username delays its owner by at most a minute; the address lock is long,
//! so the attacker's own address stays locked out.

use std::{collections::HashMap, net::IpAddr, sync::Mutex};

/// Failures on one account before it is slowed down.
const ACCOUNT_FREE_FAILURES: u32 = 5;
/// The longest an account is ever locked, in seconds.
const ACCOUNT_MAX_LOCK: i64 = 60;
/// Failures from one address within the window before it is locked out.
const ADDRESS_MAX_FAILURES: u32 = 20;
const ADDRESS_WINDOW: i64 = 15 * 60;
const ADDRESS_LOCK: i64 = 15 * 60;
/// Entries untouched this long are forgotten.
const FORGET_AFTER: i64 = 60 * 60;
/// The map is pruned when it grows past this.
const PRUNE_AT: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Try again in this many seconds.
    Locked {
        retry_after: i64,
    },
}

#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    count: u32,
    first_at: i64,
    last_at: i64,
    locked_until: i64,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    accounts: Mutex<HashMap<String, Failures>>,
    addresses: Mutex<HashMap<IpAddr, Failures>>,
}

impl LoginThrottle {
    /// Whether an attempt on `account` from `addr` may be checked at all, at time `now`.
    pub fn check(&self, account: &str, addr: IpAddr, now: i64) -> Verdict {
        let until = [
            lock_of(&self.accounts, &account.to_ascii_lowercase()),
            lock_of(&self.addresses, &addr),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        if until > now {
            Verdict::Locked {
                retry_after: until - now,
            }
        } else {
            Verdict::Allowed
        }
    }

    pub fn record_failure(&self, account: &str, addr: IpAddr, now: i64) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        let entry = accounts.entry(account.to_ascii_lowercase()).or_default();
        entry.count += 1;
        entry.last_at = now;
        if entry.count > ACCOUNT_FREE_FAILURES {
            // 1, 2, 4, … seconds, capped.
            let exponent = (entry.count - ACCOUNT_FREE_FAILURES - 1).min(6);
            entry.locked_until = now + (1_i64 << exponent).min(ACCOUNT_MAX_LOCK);
        }
        prune(&mut accounts, now);
        drop(accounts);

        let mut addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        let entry = addresses.entry(addr).or_default();
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
        prune(&mut addresses, now);
    }

    /// A correct password clears the account's failures (not the address's: one success among many
    /// failures does not clear an attacker).
    pub fn record_success(&self, account: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&account.to_ascii_lowercase());
    }
}

fn lock_of<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Failures>>, key: &K) -> i64 {
    map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(key)
        .map_or(0, |f| f.locked_until)
}

fn prune<K>(map: &mut HashMap<K, Failures>, now: i64) {
    if map.len() > PRUNE_AT {
        map.retain(|_, f| now - f.last_at < FORGET_AFTER || f.locked_until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATTACKER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 66));
    const OWNER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 10));

    #[test]
    fn an_account_slows_down_after_five_failures_and_recovers_within_a_minute() {
        let throttle = LoginThrottle::default();
        let t0 = 1_000_000;
        for i in 0..5 {
            assert_eq!(throttle.check("alice", ATTACKER, t0 + i), Verdict::Allowed);
            throttle.record_failure("alice", ATTACKER, t0 + i);
        }
        assert_eq!(throttle.check("alice", OWNER, t0 + 5), Verdict::Allowed);
        throttle.record_failure("alice", ATTACKER, t0 + 5);
        assert_eq!(
            throttle.check("Alice", OWNER, t0 + 5),
            Verdict::Locked { retry_after: 1 },
            "the account, by any spelling, is slowed for everyone"
        );
        // Keep failing: the lock grows but never past a minute for the real owner.
        for i in 0..10 {
            throttle.record_failure("alice", ATTACKER, t0 + 10 + i);
        }
        let Verdict::Locked { retry_after } = throttle.check("alice", OWNER, t0 + 19) else {
            panic!("locked");
        };
        assert!(retry_after <= ACCOUNT_MAX_LOCK);
        assert_eq!(
            throttle.check("alice", OWNER, t0 + 19 + 61),
            Verdict::Allowed
        );
    }

    #[test]
    fn an_address_that_fails_twenty_times_stays_locked_out_whatever_the_account() {
        let throttle = LoginThrottle::default();
        let t0 = 2_000_000;
        for i in 0..20 {
            throttle.record_failure(&format!("user{i}"), ATTACKER, t0 + i);
        }
        assert!(matches!(
            throttle.check("someone-new", ATTACKER, t0 + 60),
            Verdict::Locked { .. }
        ));
        assert_eq!(
            throttle.check("someone-new", OWNER, t0 + 60),
            Verdict::Allowed
        );
        assert_eq!(
            throttle.check("someone-new", ATTACKER, t0 + 20 + ADDRESS_LOCK),
            Verdict::Allowed,
            "and recovers after the lock"
        );
    }

    #[test]
    fn success_clears_the_account() {
        let throttle = LoginThrottle::default();
        for i in 0..7 {
            throttle.record_failure("bob", OWNER, 100 + i);
        }
        throttle.record_success("bob");
        assert_eq!(throttle.check("bob", OWNER, 107), Verdict::Allowed);
    }
}
