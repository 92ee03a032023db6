//! The audit store at a million records (issue 13, item 5; BENCHMARKS.md): the Audit page's
//! queries (first page, filtered pages, a deep page), the CSV export and the journal check's reads,
//! each against what ran before in the same run (the one query with `? IS NULL OR` conditions,
//! paging by OFFSET, no index for the journal's sequence), as ratios. Ignored: run it with
//! `scripts/bench.sh audit` (release build).
//!
//! Fails, printing no table, when a contender returns nothing or the two disagree: a fast query
//! that found nothing measured nothing.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ctguard_app::admin::audit::{AuditCursor, ValidFilter};
use ctguard_server::{
    audit::{AuditRecord, AuditStore, PageAt},
    audit_export::{MAX_EXPORT_ROWS, to_csv},
    db,
};
use sqlx::SqlitePool;

const PAGE: i64 = 51; // a page of 50 and the one that tells whether there is another

/// The search as it was before this change: every condition in the query whether set or not,
/// which no index can serve, and OFFSET paging.
async fn search_before(
    pool: &SqlitePool,
    filter: &ValidFilter,
    limit: i64,
    offset: i64,
) -> Vec<AuditRecord> {
    sqlx::query_as(
        "SELECT id, at, actor, role, client_addr, user_agent, action, target, outcome, detail,
                preview, journal_id, journal_hash, arguments, count, last_at
         FROM audit
         WHERE (? IS NULL OR actor = ?)
           AND (? IS NULL OR action = ?)
           AND (? IS NULL OR outcome = ?)
           AND (? IS NULL OR at >= ?)
           AND (? IS NULL OR at <= ?)
         ORDER BY at DESC, id DESC
         LIMIT ? OFFSET ?",
    )
    .bind(&filter.actor)
    .bind(&filter.actor)
    .bind(&filter.action)
    .bind(&filter.action)
    .bind(&filter.outcome)
    .bind(&filter.outcome)
    .bind(filter.from)
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.to)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Fills the store with `rows` records over 400 days: 50 users, ten actions, a third refused,
/// one record in 10,000 by a rare user, block and unblock naming a journal record.
async fn fill(pool: &SqlitePool, rows: i64) {
    let start = 1_730_000_000_i64;
    let span = 400 * 86_400_i64;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO audit (at, actor, role, client_addr, user_agent, action, target, outcome,
                            detail, journal_id, journal_hash)
         SELECT ?2 + i * ?3 / ?1,
                CASE WHEN i % 10000 = 0 THEN 'mallory' ELSE 'user' || (i % 50) END,
                'operator',
                '192.0.2.' || (i % 250),
                'Mozilla/5.0 (X11; Linux x86_64) bench',
                CASE i % 10 WHEN 0 THEN 'login' WHEN 1 THEN 'login' WHEN 2 THEN 'login'
                    WHEN 3 THEN 'logout' WHEN 4 THEN 'forbidden' WHEN 5 THEN 'block'
                    WHEN 6 THEN 'unblock' WHEN 7 THEN 'set_sysctl' WHEN 8 THEN 'user.set_role'
                    ELSE 'audit.export' END,
                'from 203.0.113.' || (i % 200),
                CASE WHEN i % 3 = 0 THEN 'refused' WHEN i % 7 = 0 THEN 'failed' ELSE 'success' END,
                'detail of record ' || i,
                CASE WHEN i % 10 IN (5, 6) THEN CAST(i AS TEXT) END,
                CASE WHEN i % 10 IN (5, 6) THEN lower(hex(randomblob(32))) END
         FROM n",
    )
    .bind(rows)
    .bind(start)
    .bind(span)
    .execute(pool)
    .await
    .unwrap();
}

/// The median of `runs` and its range.
fn summary(runs: &mut [Duration]) -> (Duration, Duration, Duration) {
    runs.sort_unstable();
    (runs[runs.len() / 2], runs[0], runs[runs.len() - 1])
}

fn ms(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn ids(records: &[AuditRecord]) -> Vec<i64> {
    records.iter().map(|record| record.id).collect()
}

async fn plan(pool: &SqlitePool, sql: &str) -> String {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
        .fetch_all(pool)
        .await
        .unwrap();
    rows.into_iter()
        .map(|row| row.3)
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench.sh audit"]
async fn audit_store_at_a_million_records() {
    let rows: i64 = std::env::var("CTGUARD_BENCH_AUDIT_ROWS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = std::env::var("CTGUARD_BENCH_ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let pool = db::open(&dir.path().join("ctguard.db")).await.unwrap();
    let filled = Instant::now();
    fill(&pool, rows).await;
    let fill_time = filled.elapsed();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, rows, "the store holds what was written");
    let store = AuditStore::new(pool.clone());

    let all = ValidFilter::default();
    let rare = ValidFilter {
        actor: Some("mallory".into()),
        ..ValidFilter::default()
    };
    let refused_logins = ValidFilter {
        action: Some("login".into()),
        outcome: Some("refused".into()),
        ..ValidFilter::default()
    };
    let deep = rows / 2;
    // The cursor a reader who paged down to record `deep` holds (found once, not timed).
    let before_deep = search_before(&pool, &all, 1, deep - 1).await;
    let cursor = AuditCursor {
        at: before_deep[0].at,
        id: before_deep[0].id,
    };

    type Contender<'a> = (
        &'a str,
        Box<dyn Fn() -> futures::future::BoxFuture<'a, Vec<i64>> + 'a>,
        Box<dyn Fn() -> futures::future::BoxFuture<'a, Vec<i64>> + 'a>,
    );
    let (store, pool) = (&store, &pool);
    let (all, rare, refused_logins) = (&all, &rare, &refused_logins);
    let measures: Vec<Contender<'_>> = vec![
        (
            "first page, no filter",
            Box::new(move || {
                Box::pin(
                    async move { ids(&store.search(all, PAGE, PageAt::Offset(0)).await.unwrap()) },
                )
            }),
            Box::new(move || {
                Box::pin(async move { ids(&search_before(pool, all, PAGE, 0).await) })
            }),
        ),
        (
            "filtered page: a user with 1 record in 10,000",
            Box::new(move || {
                Box::pin(
                    async move { ids(&store.search(rare, PAGE, PageAt::Offset(0)).await.unwrap()) },
                )
            }),
            Box::new(move || {
                Box::pin(async move { ids(&search_before(pool, rare, PAGE, 0).await) })
            }),
        ),
        (
            "filtered page: action login, outcome refused",
            Box::new(move || {
                Box::pin(async move {
                    ids(&store
                        .search(refused_logins, PAGE, PageAt::Offset(0))
                        .await
                        .unwrap())
                })
            }),
            Box::new(move || {
                Box::pin(async move { ids(&search_before(pool, refused_logins, PAGE, 0).await) })
            }),
        ),
        (
            "deep page, half-way down: cursor vs OFFSET",
            Box::new(move || {
                Box::pin(async move {
                    ids(&store
                        .search(all, PAGE, PageAt::Before(cursor))
                        .await
                        .unwrap())
                })
            }),
            Box::new(move || {
                Box::pin(async move { ids(&search_before(pool, all, PAGE, deep).await) })
            }),
        ),
        (
            "CSV export, no filter (newest 100,000 records)",
            Box::new(move || {
                Box::pin(async move {
                    let records = store
                        .search(all, MAX_EXPORT_ROWS, PageAt::Offset(0))
                        .await
                        .unwrap();
                    assert!(to_csv(&records).unwrap().len() > records.len());
                    ids(&records)
                })
            }),
            Box::new(move || {
                Box::pin(async move {
                    let records = search_before(pool, all, MAX_EXPORT_ROWS, 0).await;
                    assert!(to_csv(&records).unwrap().len() > records.len());
                    ids(&records)
                })
            }),
        ),
        (
            "CSV export, a user with 1 record in 10,000",
            Box::new(move || {
                Box::pin(async move {
                    let records = store
                        .search(rare, MAX_EXPORT_ROWS, PageAt::Offset(0))
                        .await
                        .unwrap();
                    assert!(to_csv(&records).unwrap().len() > records.len());
                    ids(&records)
                })
            }),
            Box::new(move || {
                Box::pin(async move {
                    let records = search_before(pool, rare, MAX_EXPORT_ROWS, 0).await;
                    assert!(to_csv(&records).unwrap().len() > records.len());
                    ids(&records)
                })
            }),
        ),
        (
            "journal check's reads (newest 64 pairs, highest sequence)",
            Box::new(move || {
                Box::pin(async move {
                    let refs = store.journal_refs(64).await.unwrap();
                    let highest = store.highest_journal_seq().await.unwrap().unwrap();
                    assert_eq!(refs[0].seq, highest);
                    refs.iter().map(|r| r.seq as i64).collect()
                })
            }),
            Box::new(move || {
                Box::pin(async move {
                    // The same queries, as they ran before the index existed.
                    let refs: Vec<(String,)> = sqlx::query_as(
                        "SELECT journal_id FROM audit NOT INDEXED
                         WHERE journal_id IS NOT NULL AND journal_hash IS NOT NULL
                         ORDER BY CAST(journal_id AS INTEGER) DESC LIMIT 64",
                    )
                    .fetch_all(pool)
                    .await
                    .unwrap();
                    let highest: i64 = sqlx::query_scalar(
                        "SELECT MAX(CAST(journal_id AS INTEGER)) FROM audit NOT INDEXED
                         WHERE journal_id IS NOT NULL",
                    )
                    .fetch_one(pool)
                    .await
                    .unwrap();
                    let refs: Vec<i64> = refs.into_iter().map(|r| r.0.parse().unwrap()).collect();
                    assert_eq!(refs[0], highest);
                    refs
                })
            }),
        ),
    ];

    let mut table = Vec::new();
    for (name, now, before) in &measures {
        let mut now_runs = Vec::new();
        let mut before_runs = Vec::new();
        let mut returned = 0;
        for _ in 0..rounds {
            // Interleaved: a noisy moment hurts both alike.
            let started = Instant::now();
            let new = now().await;
            now_runs.push(started.elapsed());
            let started = Instant::now();
            let old = before().await;
            before_runs.push(started.elapsed());
            assert!(!new.is_empty(), "{name}: the query found nothing");
            assert_eq!(new, old, "{name}: both contenders return the same records");
            returned = new.len();
        }
        let (now_median, now_low, now_high) = summary(&mut now_runs);
        let (before_median, before_low, before_high) = summary(&mut before_runs);
        table.push(format!(
            "| {name} | {returned} | {} ({}–{}) | {} ({}–{}) | {:.1}× |",
            ms(now_median),
            ms(now_low),
            ms(now_high),
            ms(before_median),
            ms(before_low),
            ms(before_high),
            before_median.as_secs_f64() / now_median.as_secs_f64().max(1e-9)
        ));
    }

    println!(
        "\nAudit store: {rows} records, filled in {fill_time:.1?}, medians of {rounds} interleaved rounds\n"
    );
    println!(
        "| measure | records returned | now: median (range) | before: median (range) | before ÷ now |"
    );
    println!("|---|---|---|---|---|");
    for line in &table {
        println!("{line}");
    }
    // What SQLite does with each (the page's queries as the store writes them).
    println!("\nQuery plans (now):");
    for (name, sql) in [
        (
            "first page",
            "SELECT id FROM audit WHERE 1 ORDER BY at DESC, id DESC LIMIT 51",
        ),
        (
            "user filter",
            "SELECT id FROM audit WHERE 1 AND actor = 'mallory' ORDER BY at DESC, id DESC LIMIT 51",
        ),
        (
            "action + outcome",
            "SELECT id FROM audit WHERE 1 AND action = 'login' AND outcome = 'refused' ORDER BY at DESC, id DESC LIMIT 51",
        ),
        (
            "deep page",
            "SELECT id FROM audit WHERE 1 AND at <= 1 AND (at < 1 OR id < 1) ORDER BY at DESC, id DESC LIMIT 51",
        ),
        (
            "journal check",
            "SELECT journal_id FROM audit WHERE journal_id IS NOT NULL AND journal_hash IS NOT NULL ORDER BY CAST(journal_id AS INTEGER) DESC LIMIT 64",
        ),
        (
            "before: user filter",
            "SELECT id FROM audit WHERE (?1 IS NULL OR actor = ?1) ORDER BY at DESC, id DESC LIMIT 51",
        ),
    ] {
        println!("- {name}: {}", plan(pool, sql).await);
    }
}
