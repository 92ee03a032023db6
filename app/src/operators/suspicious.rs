//! The Suspicious sources page: one snapshot's top sources with their state mix and the reasons
//! they look suspicious, drill-down to their entries, and (for operators) block or delete entries.
//! Connections held open are judged against the live fill and, when the table is near full, a
//! second walk a few seconds later (does the source keep adding them?). Below the sources, the
//! destinations many sources converge on (a distributed reflection, a spoofed SYN flood), each
//! with the block scoped to the victim. Then the creators: who makes new entries fastest, from
//! the helper's kernel counters (no walk), per source, destination and service, over a chosen
//! window, with the fix each pattern in them calls for while the table is under pressure (the
//! same block form as the holders').

use std::{net::IpAddr, time::Duration};

use leptos::prelude::*;

use ctguard_protocol::{CreatorKey, CreatorList, CreatorWindow, Creators};

use crate::{
    auth::{CurrentUser, Permission},
    components::operation_flow::{OperationFeedback, OperationFlow, clean_error},
    dashboard::live::{LiveSample, latest_sample},
    format,
    operators::block_form::BlockForm,
    operators::block_scope::BlockSuggestion,
    operators::creators::{
        self as creating, CreatorsView, DEFAULT_WINDOW_SECS, WINDOW_CHOICES, proposals,
    },
    operators::operations::{
        EntriesView, Operation, SuspectsView, entries_of, list_creators, suspects,
    },
    operators::suspicion::{
        self, EarlierWalk, HeldOpenVerdict, Reason, Suspect, TableFill, Victim,
    },
    operators::trace_panel::TracePanel,
    operators::walk_wait::walk_wait_words,
    session::current_user_query,
};

/// How long after a walk that found connections held open at a near-full table the page walks
/// again (the helper reuses a walk for at least a second).
const REWALK_AFTER: Duration = Duration::from_secs(3);
/// At most this many such walks in a row.
const MAX_REWALKS: u32 = 5;

fn fill_of(sample: &Result<LiveSample, ServerFnError>) -> Option<TableFill> {
    match sample {
        Ok(LiveSample::Up {
            status, counters, ..
        }) => Some(TableFill {
            count: status.count,
            max: status.max,
            // The sampler's total, which never falls (the kernel's sum does at a wrap).
            drop: counters.drop,
        }),
        _ => None,
    }
}

fn watching(suspects: &[Suspect]) -> bool {
    suspects.iter().any(|suspect| {
        suspect.reasons.iter().any(|reason| {
            matches!(
                reason,
                Reason::HeldOpen {
                    verdict: HeldOpenVerdict::Watching,
                    ..
                }
            )
        })
    })
}

fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0 %".into()
    } else {
        format!("{:.0} %", part as f64 * 100.0 / whole as f64)
    }
}

#[component]
pub fn SuspiciousPage() -> impl IntoView {
    let flow = OperationFlow::new();
    let refresh = RwSignal::new(0_u32);
    let view_data = Resource::new(
        move || (refresh.get(), flow.applied()),
        |_| async { (suspects().await, latest_sample().await) },
    );
    let user = Resource::new(|| (), |_| current_user_query());
    // What the wait is for and roughly how long, from the newest live sample (its own request:
    // it comes back at once, while the walk behind `suspects` may take seconds).
    let live = Resource::new(move || refresh.get(), |_| latest_sample());
    let waiting = move || walk_wait_words(live.get().and_then(Result::ok).as_ref());
    let walking = RwSignal::new(false);
    // The first walk's wait is the fallback's to show; a refresh's, the line above the table.
    let shown_once = RwSignal::new(false);
    let selected = RwSignal::new(None::<IpAddr>);
    let blocking = RwSignal::new(None::<BlockSuggestion>);
    // The previous, different walk the held-open judgement compares with, and how many walks in
    // a row were asked for by it.
    let earlier = StoredValue::new(None::<EarlierWalk>);
    let rewalks = StoredValue::new(0_u32);

    view! {
        <h1>"Suspicious sources"</h1>
        <p class="muted">
            "Who fills the table, from one walk of it. "
            <button type="button" on:click=move |_| refresh.update(|n| *n += 1)>"Refresh"</button>
        </p>
        <OperationFeedback flow/>
        <Show when=move || walking.get() && shown_once.get()>
            <p class="muted" data-testid="walk-wait" role="status">{waiting}</p>
        </Show>
        <Transition
            fallback=move || {
                view! { <p class="muted" data-testid="walk-wait" role="status">{waiting}</p> }
            }
            set_pending=walking
        >
            {move || Suspend::new(async move {
                let may_block = matches!(
                    user.await,
                    Ok(Some(ref u)) if u.may(Permission::Block)
                );
                match view_data.await {
                    (Ok(mut data), sample) => {
                        if !shown_once.get_untracked() {
                            shown_once.set(true);
                        }
                        let fill = fill_of(&sample);
                        let previous = earlier
                            .get_value()
                            .filter(|walk| walk.taken_unix_ms != data.taken_unix_ms);
                        data.suspects = suspicion::judge_held_open(
                            data.suspects,
                            fill,
                            previous.as_ref(),
                        );
                        if previous.is_some() || earlier.get_value().is_none() {
                            earlier
                                .set_value(
                                    Some(EarlierWalk {
                                        taken_unix_ms: data.taken_unix_ms,
                                        suspects: data.suspects.clone(),
                                        fill,
                                    }),
                                );
                        }
                        let rewalk = watching(&data.suspects) && rewalks.get_value() < MAX_REWALKS;
                        if rewalk {
                            rewalks.update_value(|n| *n += 1);
                        } else {
                            rewalks.set_value(0);
                        }
                        view! { <SuspectTable data may_block selected blocking flow rewalk refresh/> }
                            .into_any()
                    }
                    (Err(error), _) => {
                        view! { <p class="banner critical" role="alert">{clean_error(&error)}</p> }
                            .into_any()
                    }
                }
            })}
        </Transition>
        <CreatorsSection refresh live user blocking/>
        <Suspense fallback=|| ()>
        {move || Suspend::new(async move {
            let may_trace = matches!(user.await, Ok(Some(ref u)) if u.may(Permission::Block));
            view! { <TracePanel flow may_trace/> }
        })}
        </Suspense>
        {move || {
            blocking
                .get()
                .map(|suggestion| {
                    view! {
                        <section class="card" aria-label="Block">
                            <h2>{suggestion.title.clone()}</h2>
                            {suggestion
                                .note
                                .clone()
                                .map(|note| {
                                    view! {
                                        <p class="banner warning" role="note" data-testid="block-note">
                                            {note}
                                        </p>
                                    }
                                })}
                            // Only an alarm prefills a reason: information alone (a large share,
                            // connections held open while the table has room) is no case for one.
                            <BlockForm flow scope=suggestion.scope reason=suggestion.reason/>
                        </section>
                    }
                })
        }}
        {move || selected.get().map(|address| view! { <EntriesPanel address/> })}
    }
}

#[component]
fn SuspectTable(
    data: SuspectsView,
    may_block: bool,
    selected: RwSignal<Option<IpAddr>>,
    blocking: RwSignal<Option<BlockSuggestion>>,
    flow: OperationFlow,
    /// Walk again shortly: connections held open at a near-full table need a second look.
    rewalk: bool,
    refresh: RwSignal<u32>,
) -> impl IntoView {
    // Effects run in the browser only: the server renders one walk.
    Effect::new(move |_| {
        if rewalk {
            set_timeout(move || refresh.update(|n| *n += 1), REWALK_AFTER);
        }
    });
    let total = data.total.entries;
    view! {
        <p class="muted small" data-testid="snapshot-info">
            {format!(
                "{} entries at {} (walk {} ms)",
                format::thousands(total),
                format::clock_utc(data.taken_unix_ms),
                data.walk_ms,
            )}
        </p>
        <table class="data" data-testid="suspects">
            <thead>
                <tr>
                    <th scope="col">"Source"</th>
                    <th scope="col">"Entries"</th>
                    <th scope="col">"Share"</th>
                    <th scope="col">"Unreplied"</th>
                    <th scope="col">"Assured"</th>
                    <th scope="col">"Half-open"</th>
                    <th scope="col">"Why"</th>
                    <th scope="col">"Actions"</th>
                </tr>
            </thead>
            <tbody>
                {data
                    .suspects
                    .into_iter()
                    .map(|suspect| {
                        let mix = suspect.mix;
                        let address = suspect.address;
                        let for_block = suspect.block_suggestion();
                        let why = if suspect.is_suspicious() {
                            suspect.summary()
                        } else {
                            suspect
                                .information()
                                .unwrap_or_else(|| "nothing unusual".to_owned())
                        };
                        view! {
                            <tr
                                data-testid=format!("suspect-{address}")
                                class:suspicious=suspect.is_suspicious()
                            >
                                <th scope="row">{address.to_string()}</th>
                                <td>{format::thousands(mix.entries)}</td>
                                <td>{format!("{:.1} %", suspect.share_percent)}</td>
                                <td>{share(mix.unreplied, mix.entries)}</td>
                                <td>{share(mix.assured, mix.entries)}</td>
                                <td>{share(mix.syn_sent + mix.syn_recv, mix.entries)}</td>
                                <td class="why">{why}</td>
                                <td class="actions">
                                    <button type="button" on:click=move |_| selected.set(Some(address))>
                                        "Entries"
                                    </button>
                                    <Show when=move || may_block>
                                        <button
                                            type="button"
                                            on:click={
                                                let for_block = for_block.clone();
                                                move |_| blocking.set(Some(for_block.clone()))
                                            }
                                        >
                                            "Block…"
                                        </button>
                                        <button
                                            type="button"
                                            on:click=move |_| {
                                                flow.ask(Operation::DeleteEntries {
                                                    target: format!("from {address}"),
                                                    reason: "entries deleted from the panel".into(),
                                                })
                                            }
                                        >
                                            "Delete entries…"
                                        </button>
                                    </Show>
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
        <VictimTable victims=data.victims total may_block selected blocking/>
        <div class="two-columns">
            <section class="card">
                <h2>"Top destination ports"</h2>
                <ul class="plain">
                    {data
                        .dports
                        .top
                        .iter()
                        .take(10)
                        .map(|group| {
                            view! {
                                <li>
                                    {format!(
                                        "{}: {} entries ({} unreplied)",
                                        group.key,
                                        format::thousands(group.mix.entries),
                                        share(group.mix.unreplied, group.mix.entries),
                                    )}
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </section>
            <section class="card">
                <h2>"Protocols"</h2>
                <ul class="plain">
                    {data
                        .protocols
                        .top
                        .iter()
                        .map(|group| {
                            view! {
                                <li>
                                    {format!(
                                        "{}: {} entries",
                                        group.key,
                                        format::thousands(group.mix.entries),
                                    )}
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </section>
        </div>
    }
}

/// The destinations many sources converge on. Only an attacked one offers a block, scoped to it;
/// a busy service's row says why it is normal.
#[component]
fn VictimTable(
    victims: Vec<Victim>,
    total: u64,
    may_block: bool,
    selected: RwSignal<Option<IpAddr>>,
    blocking: RwSignal<Option<BlockSuggestion>>,
) -> impl IntoView {
    view! {
        <h2>"Destinations"</h2>
        <p class="muted small">
            "Who receives the entries, and from how many sources: many sources with a few entries \
             each are one attack that no source above shows."
        </p>
        <table class="data" data-testid="victims">
            <thead>
                <tr>
                    <th scope="col">"Destination"</th>
                    <th scope="col">"Entries"</th>
                    <th scope="col">"Share"</th>
                    <th scope="col">"Sources"</th>
                    <th scope="col">"Unreplied"</th>
                    <th scope="col">"Half-open"</th>
                    <th scope="col">"Why"</th>
                    <th scope="col">"Actions"</th>
                </tr>
            </thead>
            <tbody>
                {victims
                    .into_iter()
                    .map(|victim| {
                        let mix = victim.mix;
                        let address = victim.address;
                        let suggestion = victim.block_suggestion();
                        let why = if victim.reasons.is_empty() {
                            "nothing unusual".to_owned()
                        } else {
                            victim.summary()
                        };
                        view! {
                            <tr
                                data-testid=format!("victim-{address}")
                                class:suspicious=victim.is_attacked()
                            >
                                <th scope="row">{address.to_string()}</th>
                                <td>{format::thousands(mix.entries)}</td>
                                <td>{share(mix.entries, total)}</td>
                                <td>{format!("~{}", format::thousands(u64::from(victim.sources)))}</td>
                                <td>{share(mix.unreplied, mix.entries)}</td>
                                <td>{share(mix.syn_sent + mix.syn_recv, mix.entries)}</td>
                                <td class="why">{why}</td>
                                <td class="actions">
                                    <button type="button" on:click=move |_| selected.set(Some(address))>
                                        "Entries"
                                    </button>
                                    {suggestion
                                        .filter(|_| may_block)
                                        .map(|suggestion| {
                                            view! {
                                                <button
                                                    type="button"
                                                    on:click=move |_| blocking.set(Some(suggestion.clone()))
                                                >
                                                    "Protect…"
                                                </button>
                                            }
                                        })}
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

/// Who creates entries fastest: the helper's counters, asked apart from the walk (they come back
/// at once, while a walk may take seconds), one table per key for the chosen window, and the
/// fixes they call for at the live fill.
#[component]
fn CreatorsSection(
    refresh: RwSignal<u32>,
    live: Resource<Result<LiveSample, ServerFnError>>,
    user: Resource<Result<Option<CurrentUser>, ServerFnError>>,
    blocking: RwSignal<Option<BlockSuggestion>>,
) -> impl IntoView {
    let answer = Resource::new(move || refresh.get(), |_| list_creators());
    let window = RwSignal::new(DEFAULT_WINDOW_SECS);
    view! {
        <section aria-labelledby="creators-heading" data-testid="creators">
            <h2 id="creators-heading">"Creators"</h2>
            <p class="muted small">
                "The holders above are who has entries now, from one walk of the table. Creators \
                 are who makes new entries fastest: the kernel counts each entry as it is created \
                 and the helper reads the counts every 10 s, so short flows that come and go \
                 between two walks show here even when they hold little."
            </p>
            <fieldset class="window-choice">
                <legend>"Window"</legend>
                {WINDOW_CHOICES
                    .iter()
                    .map(|&(seconds, label)| {
                        view! {
                            <label>
                                <input
                                    type="radio"
                                    name="creators-window"
                                    value=seconds.to_string()
                                    checked=seconds == DEFAULT_WINDOW_SECS
                                    on:change=move |_| window.set(seconds)
                                />
                                {label}
                            </label>
                        }
                    })
                    .collect_view()}
            </fieldset>
            <Transition fallback=|| view! { <p class="muted">"Reading the counters…"</p> }>
                {move || Suspend::new(async move {
                    let may_block = matches!(user.await, Ok(Some(ref u)) if u.may(Permission::Block));
                    let fill = fill_of(&live.await);
                    match answer.await {
                        Ok(CreatorsView::Available { creators }) => {
                            view! { <CreatorTables creators window fill may_block blocking/> }
                                .into_any()
                        }
                        Ok(CreatorsView::Unavailable { reason }) => {
                            view! {
                                <p class="banner info" role="status" data-testid="creators-unavailable">
                                    {reason.explain()}
                                </p>
                            }
                                .into_any()
                        }
                        Err(error) => {
                            view! { <p class="banner critical" role="alert">{clean_error(&error)}</p> }
                                .into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn CreatorTables(
    creators: Creators,
    window: RwSignal<u32>,
    fill: Option<TableFill>,
    may_block: bool,
    blocking: RwSignal<Option<BlockSuggestion>>,
) -> impl IntoView {
    let sampled = format!(
        "counters read every {} s, newest at {}; each counting set holds up to {} keys, and new \
         entries of keys beyond that are uncounted",
        creators.sample_secs,
        format::clock_utc(creators.sampled_at.saturating_mul(1000)),
        format::thousands(u64::from(creators.set_capacity)),
    );
    let watch = creating::watch_words(&creators);
    move || {
        let seconds = window.get();
        let Some(shown) = creators.window(seconds) else {
            return view! { <p class="muted">"The helper did not count this window."</p> }
                .into_any();
        };
        let covered = if shown.covered_secs < shown.seconds {
            format!(" (counted for {} s so far)", shown.covered_secs)
        } else {
            String::new()
        };
        view! {
            <p data-testid="creators-total">
                {format!(
                    "All new entries over {}{covered}: {} ({sampled}).",
                    creating::window_words(seconds),
                    creating::rate(shown, shown.new_flows),
                )}
            </p>
            {proposal_lines(shown, fill, may_block, blocking)}
            <div class="two-columns">
                {CreatorKey::ALL
                    .iter()
                    .filter_map(|&key| shown.list(key))
                    .map(|list| creator_table(shown, list))
                    .collect_view()}
            </div>
            {turned_away_table(shown, watch.clone())}
        }
        .into_any()
    }
}

/// The fixes the window's creators call for, each a "Proposed fix" line with what it costs and
/// when it is wrong, and the holders' block form behind its button; or why there is none.
fn proposal_lines(
    window: &CreatorWindow,
    fill: Option<TableFill>,
    may_block: bool,
    blocking: RwSignal<Option<BlockSuggestion>>,
) -> impl IntoView + use<> {
    let none = |words: String| {
        view! { <p class="muted small" data-testid="creators-no-proposal">{words}</p> }.into_any()
    };
    match proposals::propose(window, fill) {
        Err(quiet) => none(quiet.explain()),
        Ok(found) if found.is_empty() => none(format!(
            "No fix proposed: no source, reflection or distributed flood makes most of the new \
             entries over {}.",
            creating::window_words(window.seconds),
        )),
        Ok(found) => found
            .into_iter()
            .map(|proposal| {
                let suggestion = proposal.suggestion;
                let fix = format!(
                    "block {}. {}",
                    suggestion.scope.target_text(),
                    suggestion.note.clone().unwrap_or_default(),
                );
                view! {
                    <div class="banner warning" role="note" data-testid="creators-proposal">
                        <p>{proposal.words}</p>
                        <p>
                            <strong>"Proposed fix: "</strong>
                            {fix}
                        </p>
                        {may_block
                            .then(|| {
                                view! {
                                    <button
                                        type="button"
                                        on:click=move |_| blocking.set(Some(suggestion.clone()))
                                    >
                                        "Block…"
                                    </button>
                                }
                            })}
                    </div>
                }
            })
            .collect_view()
            .into_any(),
    }
}

/// Who conntrack turned away in the window (its table full): sources by packets refused, the
/// rest and the uncounted, beside the kernel's own drop statistic.
fn turned_away_table(window: &CreatorWindow, watch: String) -> impl IntoView + use<> {
    let turned_away = &window.turned_away;
    let heading = view! { <h3 id="turned-away-heading">"Turned away (table full)"</h3> };
    let watch = view! { <p class="muted" data-testid="turned-away-watch">{watch}</p> };
    if turned_away.counted() == 0
        && turned_away.kernel_drops == 0
        && turned_away.unwatched_drops == 0
    {
        return view! {
            <section aria-labelledby="turned-away-heading" data-testid="turned-away">
                {heading}
                <p data-testid="turned-away-none">
                    {format!(
                        "Nobody was turned away over {}: conntrack found room for every new flow.",
                        creating::window_words(window.seconds),
                    )}
                </p>
                {watch}
            </section>
        }
        .into_any();
    }
    let line = move |label: &'static str, packets: u64| {
        view! {
            <tr class="muted">
                <th scope="row">{label}</th>
                <td>{creating::refused(packets)}</td>
                <td>{creating::packet_rate(window, packets)}</td>
            </tr>
        }
    };
    let rows = turned_away
        .top
        .iter()
        .map(|source| {
            view! {
                <tr>
                    <th scope="row">{source.address.to_string()}</th>
                    <td>{creating::refused(source.packets)}</td>
                    <td>{creating::packet_rate(window, source.packets)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="turned-away-heading" data-testid="turned-away">
            {heading}
            <p class="muted">
                "Packets that could start a flow which conntrack dropped because its table was \
                 full, per source."
            </p>
            <table class="data compact" data-testid="turned-away-sources">
                <thead>
                    <tr>
                        <th scope="col">"Source"</th>
                        <th scope="col">"Refused"</th>
                        <th scope="col">"Rate"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows}
                    {line("everyone else", turned_away.rest)}
                    {(turned_away.uncounted > 0)
                        .then(|| line("uncounted (set full)", turned_away.uncounted))}
                </tbody>
            </table>
            <p data-testid="turned-away-kernel">{creating::kernel_comparison(turned_away)}</p>
            {watch}
        </section>
    }
    .into_any()
}

fn creator_table(window: &CreatorWindow, list: &CreatorList) -> impl IntoView + use<> {
    let key = list.key;
    let service = creating::has_service(key);
    let line = move |label: &'static str, new_flows: u64| {
        view! {
            <tr class="muted">
                <th scope="row">{label}</th>
                {service.then(|| view! { <td></td> })}
                <td>{creating::rate(window, new_flows)}</td>
            </tr>
        }
    };
    let rows = list
        .top
        .iter()
        .map(|creator| {
            view! {
                <tr>
                    <th scope="row">{creator.address.to_string()}</th>
                    {service.then(|| view! { <td>{creating::service(key, creator)}</td> })}
                    <td>{creating::creates(window.per_second(creator.new_flows))}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="data compact" data-testid=format!("creators-{}", key.as_str())>
            <caption>{creating::key_title(key)}</caption>
            <thead>
                <tr>
                    <th scope="col">"Address"</th>
                    {service.then(|| view! { <th scope="col">"Service"</th> })}
                    <th scope="col">"New entries"</th>
                </tr>
            </thead>
            <tbody>
                {rows}
                {line("everyone else", list.rest)}
                {(list.uncounted > 0).then(|| line("uncounted (set full)", list.uncounted))}
            </tbody>
        </table>
    }
}

#[component]
fn EntriesPanel(address: IpAddr) -> impl IntoView {
    let entries = Resource::new(move || address, |a| entries_of(a.to_string()));
    view! {
        <section class="card" data-testid="entries-panel">
            <h2>{format!("Entries of {address}")}</h2>
            <Transition fallback=|| view! { <p class="muted">"Listing…"</p> }>
                {move || Suspend::new(async move {
                    match entries.await {
                        Ok(list) => view! { <EntriesTable list/> }.into_any(),
                        Err(error) => {
                            view! { <p class="banner critical">{clean_error(&error)}</p> }.into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn EntriesTable(list: EntriesView) -> impl IntoView {
    let truncated = list.truncated;
    let shown = list.entries.len();
    view! {
        <table class="data compact">
            <thead>
                <tr>
                    <th scope="col">"Proto"</th>
                    <th scope="col">"Source"</th>
                    <th scope="col">"Destination"</th>
                    <th scope="col">"State"</th>
                    <th scope="col">"Expires in"</th>
                </tr>
            </thead>
            <tbody>
                {list
                    .entries
                    .into_iter()
                    .map(|entry| {
                        let port = |p: Option<u16>| p.map(|p| format!(":{p}")).unwrap_or_default();
                        let state = match (entry.tcp_state, entry.unreplied, entry.assured) {
                            (Some(state), _, _) => format!("{state:?}"),
                            (None, true, _) => "unreplied".into(),
                            (None, _, true) => "assured".into(),
                            _ => "seen both ways".into(),
                        };
                        view! {
                            <tr>
                                <td>{entry.protocol.clone()}</td>
                                <td>{format!("{}{}", entry.source, port(entry.sport))}</td>
                                <td>{format!("{}{}", entry.destination, port(entry.dport))}</td>
                                <td>{state}</td>
                                <td>{format!("{} s", entry.timeout_secs)}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
        <Show when=move || truncated>
            <p class="muted small">{format!("The first {shown} entries are shown.")}</p>
        </Show>
    }
}
