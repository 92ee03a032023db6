//! Refusals an attacker can repeat cheaply, folded so they cannot flood the audit log: one record
//! per key and minute, with the exact count and the first and last time.
//!
//! The first event of a key and minute is written at once (an attack is seen as it starts); each
//! later one adds one to that record's count in the same statement that would have written it
//! (`INSERT … ON CONFLICT DO UPDATE`), so parallel events cannot lose a count. Only refusals are
//! folded: changes, sign-ins and each checked password keep a record of their own.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use super::{AuditEvent, AuditStore};
use crate::auth::throttle::address_key;

/// The period a folded record covers, in seconds.
pub const PERIOD_SECS: i64 = 60;

/// At most this many keys get a record of their own per period. Past it (an attacker varying the
/// names tried, or sending from many /64s), the period's further keys fold into one record per
/// action and outcome, so a period holds a bounded number of records whatever the attacker owns.
/// Two events checked at once may both pass the bound: it is exceeded by at most the database's
/// connections, and the counts stay exact.
pub const MAX_KEYS_PER_PERIOD: i64 = 100;

/// What a folded record's client column says when it stands for many sources.
pub const MANY_SOURCES: &str = "many";

/// The network a client is folded by, as the record shows it: an IPv4 address, or an IPv6
/// address's /64 (the smallest network one subscriber is given, as the sign-in throttle counts).
pub fn source_of(addr: IpAddr) -> String {
    match address_key(addr) {
        IpAddr::V6(network) => format!("{network}/64"),
        v4 => v4.to_string(),
    }
}

/// The key of what makes two events the same: a hash of each part, length-prefixed so no two
/// different events share their text.
fn key_of(parts: &[Option<&str>]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        match part {
            None => hash.update(u64::MAX.to_be_bytes()),
            Some(text) => {
                hash.update((text.len() as u64).to_be_bytes());
                hash.update(text.as_bytes());
            }
        }
    }
    hash.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl AuditStore {
    /// Records a refusal that may repeat (a throttled sign-in, a forbidden request), folded with
    /// the others of its key in this minute. What is folded is only ever a refusal: the caller
    /// passes no preview, journal record or arguments, and they are not kept.
    pub async fn record_aggregated(
        &self,
        at: i64,
        event: AuditEvent<'_>,
    ) -> Result<(), sqlx::Error> {
        let period = at.div_euclid(PERIOD_SECS) * PERIOD_SECS;
        let source = source_of(event.client.addr);
        let outcome = event.outcome.as_str();
        let own_key = key_of(&[
            Some(event.action),
            Some(outcome),
            event.detail,
            event.target,
            event.actor,
            event.role,
            Some(&source),
        ]);
        // Read-only; the write below is one statement whichever key it takes.
        let own: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM audit WHERE period = ?1 AND aggregate_key = ?2)
                 OR (SELECT COUNT(*) FROM audit WHERE period = ?1 AND aggregate_key IS NOT NULL) < ?3",
        )
        .bind(period)
        .bind(&own_key)
        .bind(MAX_KEYS_PER_PERIOD)
        .fetch_one(&self.pool)
        .await?;
        let folded_detail;
        let (key, actor, role, client, target, detail) = if own {
            (
                own_key,
                event.actor,
                event.role,
                source.as_str(),
                event.target,
                event.detail,
            )
        } else {
            folded_detail = format!(
                "{} (more than {MAX_KEYS_PER_PERIOD} users or sources this minute: folded together)",
                event.detail.unwrap_or(event.action)
            );
            (
                key_of(&[Some("many"), Some(event.action), Some(outcome)]),
                None,
                None,
                MANY_SOURCES,
                None,
                Some(folded_detail.as_str()),
            )
        };
        let count: i64 = sqlx::query_scalar(
            "INSERT INTO audit (at, last_at, period, aggregate_key, count, actor, role, client_addr,
                                user_agent, action, target, outcome, detail)
             VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (period, aggregate_key) WHERE aggregate_key IS NOT NULL DO UPDATE SET
                 count = count + 1,
                 at = MIN(at, excluded.at),
                 last_at = MAX(last_at, excluded.last_at)
             RETURNING count",
        )
        .bind(at)
        .bind(at)
        .bind(period)
        .bind(&key)
        .bind(actor)
        .bind(role)
        .bind(client)
        .bind(&event.client.user_agent)
        .bind(event.action)
        .bind(target)
        .bind(outcome)
        .bind(detail)
        .fetch_one(&self.pool)
        .await?;
        // The server's log is no more floodable than the store: the first of a key at info.
        if count == 1 {
            tracing::info!(
                actor = event.actor,
                action = event.action,
                target = event.target,
                outcome,
                client = %event.client.addr,
                "audit (repeats this minute are counted in this record)"
            );
        } else {
            tracing::debug!(action = event.action, outcome, count, "audit repeat");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_fold_by_their_slash_64_and_ipv4_by_address() {
        let v6 = |text: &str| source_of(text.parse().expect("an address"));
        assert_eq!(v6("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(v6("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(v6("192.0.2.7"), "192.0.2.7");
        assert_eq!(v6("::ffff:192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn keys_tell_parts_apart_however_they_are_cut() {
        assert_ne!(
            key_of(&[Some("ab"), Some("c")]),
            key_of(&[Some("a"), Some("bc")])
        );
        assert_ne!(key_of(&[None, Some("a")]), key_of(&[Some(""), Some("a")]));
        assert_eq!(key_of(&[Some("a")]), key_of(&[Some("a")]));
    }
}
