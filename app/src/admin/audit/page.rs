//! The Audit page (admins): who did what, from where, and how it ended, newest first. The filter
//! form is a plain GET form, so the filters live in the address (bookmarkable, works before the
//! wasm bundle loads) and the export link carries the same filters.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::{
    admin::audit::{
        AuditCursor, AuditEntry, AuditFilter, AuditPage, AuditQuery, JournalReport, OUTCOMES,
        journal_status, query_audit,
    },
    components::operation_flow::{OperationFeedback, OperationFlow, clean_error},
    format,
    operators::operations::Operation,
    utc,
};

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let wanted = Memo::new(move |_| {
        query.with(|q| {
            let field = |name: &str| q.get(name).unwrap_or_default();
            AuditQuery {
                filter: AuditFilter {
                    actor: field("actor"),
                    action: field("action"),
                    outcome: field("outcome"),
                    from: field("from"),
                    to: field("to"),
                },
                page: field("page").parse().unwrap_or(0),
                page_size: 0,
                before: AuditCursor::parse(&field("before")),
                after: AuditCursor::parse(&field("after")),
            }
        })
    });
    // A revert is itself audited: the list reloads after one.
    let flow = OperationFlow::new();
    let records = Resource::new(
        move || (wanted.get(), flow.applied()),
        |(q, _)| query_audit(q),
    );

    let chain = Resource::new(|| (), |_| journal_status());

    view! {
        <h1>"Audit log"</h1>
        <Transition fallback=|| view! { <p class="muted">"Checking the helper's journal…"</p> }>
            {move || Suspend::new(async move {
                view! { <JournalChain status=chain.await/> }
            })}
        </Transition>
        <OperationFeedback flow/>
        {move || {
            let filter = wanted.get().filter;
            view! { <FilterForm filter/> }
        }}
        <Transition fallback=|| view! { <p class="muted">"Loading the audit log…"</p> }>
            {move || Suspend::new(async move {
                match records.await {
                    Ok(page) => {
                        view! { <Records page filter=wanted.get_untracked().filter flow/> }
                            .into_any()
                    }
                    Err(failure) => {
                        view! {
                            <p class="banner critical" role="alert" data-testid="audit-error">
                                {clean_error(&failure)}
                            </p>
                        }
                            .into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn FilterForm(filter: AuditFilter) -> impl IntoView {
    let csv = filter.csv_href();
    view! {
        <section class="card">
            <h2>"Filter"</h2>
            <form method="get" action="/audit" class="inline-form" data-testid="audit-filter">
                <label for="audit-actor">"User"</label>
                <input id="audit-actor" name="actor" autocomplete="off" value=filter.actor/>
                <label for="audit-action">"Action"</label>
                <input
                    id="audit-action"
                    name="action"
                    autocomplete="off"
                    placeholder="e.g. login, user.add"
                    value=filter.action
                />
                <label for="audit-outcome">"Outcome"</label>
                <select id="audit-outcome" name="outcome">
                    <option value="" selected=filter.outcome.is_empty()>"any"</option>
                    {OUTCOMES
                        .into_iter()
                        .map(|o| {
                            view! {
                                <option value=o selected=filter.outcome == o>
                                    {o}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
                <label for="audit-from">"From (UTC)"</label>
                <input id="audit-from" name="from" type="datetime-local" value=filter.from/>
                <label for="audit-to">"To (UTC)"</label>
                <input id="audit-to" name="to" type="datetime-local" value=filter.to/>
                <button type="submit" class="primary">"Show"</button>
                <a href="/audit">"Clear"</a>
                <a href=csv download data-testid="audit-export">"Export CSV"</a>
            </form>
        </section>
    }
}

#[component]
fn Records(page: AuditPage, filter: AuditFilter, flow: OperationFlow) -> impl IntoView {
    // Pages link by cursor (the first or last record shown), so a deep page is as fast as the
    // first; the page number is only a label. The first page needs no cursor.
    let link = |number: u32, cursor: Option<(&str, AuditCursor)>| {
        let mut query = filter.query_string();
        if let (Some((name, cursor)), true) = (cursor, number > 0) {
            let sep = if query.is_empty() { "" } else { "&" };
            query = format!("{query}{sep}page={number}&{name}={cursor}");
        }
        match query.is_empty() {
            true => "/audit".to_owned(),
            false => format!("/audit?{query}"),
        }
    };
    let first = page.entries.first().map(AuditCursor::of);
    let last = page.entries.last().map(AuditCursor::of);
    let newer = (page.has_newer || page.page > 0)
        .then(|| link(page.page.saturating_sub(1), first.map(|c| ("after", c))));
    let older = page
        .has_more
        .then(|| link(page.page + 1, last.map(|c| ("before", c))));
    let empty = page.entries.is_empty();
    view! {
        <table class="data" data-testid="audit">
            <caption class="visually-hidden">"Audit records, newest first"</caption>
            <thead>
                <tr>
                    <th scope="col">"Time (UTC)"</th>
                    <th scope="col">"Times"</th>
                    <th scope="col">"User"</th>
                    <th scope="col">"Role"</th>
                    <th scope="col">"Client"</th>
                    <th scope="col">"Action"</th>
                    <th scope="col">"Target"</th>
                    <th scope="col">"Outcome"</th>
                    <th scope="col">"Detail"</th>
                    <th scope="col">"Preview"</th>
                    <th scope="col">"Journal"</th>
                    <th scope="col">"Undo"</th>
                </tr>
            </thead>
            <tbody>
                {page.entries.into_iter().map(|entry| view! { <Row entry flow/> }).collect_view()}
            </tbody>
        </table>
        {empty.then(|| view! { <p class="muted">"No records match."</p> })}
        <nav class="pager" aria-label="Pages">
            {newer.map(|href| view! { <a href=href rel="prev">"← Newer"</a> })}
            " "
            <span>{format!("Page {}", page.page + 1)}</span>
            " "
            {older.map(|href| view! { <a href=href rel="next">"Older →"</a> })}
        </nav>
    }
}

/// One line on the helper's journal: the second, tamper-evident record of every kernel change.
#[component]
fn JournalChain(status: Result<JournalReport, ServerFnError>) -> impl IntoView {
    match status {
        Ok(status) => {
            let truncated = status.truncated();
            let rewritten = status.rewritten().cloned();
            let check = status.check;
            let (class, text) = match (&check.broken, check.writable) {
                (None, _) if rewritten.is_some() => {
                    let mismatch = rewritten.as_ref().expect("matched as some");
                    let held = mismatch.found.as_ref().map_or_else(
                        || "holds no such record".to_owned(),
                        |found| {
                            format!(
                                "holds another record there (hash {}…)",
                                &found.as_str()[..12]
                            )
                        },
                    );
                    (
                        "journal-chain banner critical",
                        format!(
                            "Helper journal REWRITTEN: this audit log names record #{} with hash {}…, but the journal {held}{}. The journal was cut short and grown back, or replaced. Compare with your off-host copy.",
                            mismatch.expected.seq,
                            &mismatch.expected.hash.as_str()[..12],
                            match check.mismatches.len() {
                                1 => String::new(),
                                n => format!(
                                    "; {} records in all differ",
                                    format::thousands(n as u64)
                                ),
                            }
                        ),
                    )
                }
                (None, _) if truncated => (
                    "journal-chain banner critical",
                    format!(
                        "Helper journal INCOMPLETE: it holds {} records, but this audit log names record #{}: records were cut off its end or the journal was replaced. Compare with your off-host copy.",
                        format::thousands(check.records),
                        status.panel_last_seq.unwrap_or_default()
                    ),
                ),
                (None, true) => (
                    "journal-chain ok",
                    format!(
                        "Helper journal: {} records, hash chain verified.",
                        format::thousands(check.records)
                    ),
                ),
                (None, false) => (
                    "journal-chain banner critical",
                    format!(
                        "Helper journal: {} records verified, but a write failed: the helper refuses every change until it is restarted.",
                        format::thousands(check.records)
                    ),
                ),
                (Some(broken), _) => (
                    "journal-chain banner critical",
                    format!(
                        "Helper journal BROKEN after {} good records: {broken}. Run `ctguard-helper journal verify` on the host.",
                        format::thousands(check.records)
                    ),
                ),
            };
            view! {
                <p
                    class=class
                    data-testid="journal-chain"
                    data-ok=(check.broken.is_none() && !truncated && rewritten.is_none())
                        .to_string()
                >
                    {text}
                </p>
            }
            .into_any()
        }
        Err(error) => view! {
            <p class="journal-chain muted" data-testid="journal-chain" data-ok="unknown">
                {format!("Helper journal: not checked ({})", clean_error(&error))}
            </p>
        }
        .into_any(),
    }
}

#[component]
fn Row(entry: AuditEntry, flow: OperationFlow) -> impl IntoView {
    let dash = |value: Option<String>| value.unwrap_or_else(|| "—".to_owned());
    let stamp = |at: i64| {
        view! {
            <time datetime=format!("{}Z", utc::datetime(at).replace(' ', "T"))>
                {utc::datetime(at)}
            </time>
        }
    };
    // A folded record covers its first to its last event.
    let until = entry
        .last_at
        .filter(|last| entry.count > 1 && *last != entry.at)
        .map(|last| view! { " – " {stamp(last)} });
    let times = entry.times();
    let audit_id = entry.id;
    let action = entry.action.clone();
    let revert = entry.revertible.then(|| {
        view! {
            <button
                type="button"
                data-testid="revert"
                on:click=move |_| flow.ask(Operation::RevertSysctl { audit_id })
            >
                "Revert…"
            </button>
        }
    });
    view! {
        <tr
            data-testid=format!("audit-{}", entry.id)
            data-outcome=entry.outcome.clone()
            data-action=action
            data-count=entry.count.to_string()
        >
            <td>{stamp(entry.at)} {until}</td>
            <td class="count" data-testid="count">
                {times}
            </td>
            <td>{dash(entry.actor)}</td>
            <td>{dash(entry.role)}</td>
            <td>{entry.client_addr}</td>
            <td>{entry.action}</td>
            <td>{dash(entry.target)}</td>
            <td class=format!("outcome {}", entry.outcome)>{entry.outcome.clone()}</td>
            <td>{dash(entry.detail)}</td>
            <td class="preview">{dash(entry.preview)}</td>
            <td>{entry.journal_id.map_or_else(|| "—".to_owned(), |id| format!("#{id}"))}</td>
            <td>{revert}</td>
        </tr>
    }
}
