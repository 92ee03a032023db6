//! The Tuning page: every allowlisted sysctl with its value now, the kernel's default, what ctguard
//! recommends and why, what is persisted, and whether something changed it behind the panel's back.
//! Admins apply a value (or the recommendation) through the confirmation dialog.

use ctguard_protocol::SysctlKey;
use leptos::prelude::*;

use crate::{
    auth::Permission,
    components::operation_flow::{OperationFeedback, OperationFlow, clean_error},
    format,
    operators::operations::Operation,
    operators::tuning::{SettingGroup, SettingRow, TuningView, advice, load_tuning, scope_words},
    session::current_user_query,
    utc,
};

#[component]
pub fn TuningPage() -> impl IntoView {
    let flow = OperationFlow::new();
    let settings = Resource::new(move || flow.applied(), |_| load_tuning());
    let user = Resource::new(|| (), |_| current_user_query());
    view! {
        <h1>"Tuning"</h1>
        <OperationFeedback flow/>
        <Transition fallback=|| view! { <p class="muted">"Reading the settings…"</p> }>
            {move || Suspend::new(async move {
                let may_tune = matches!(user.await, Ok(Some(ref u)) if u.may(Permission::Tune));
                match settings.await {
                    Ok(view) => view! { <Settings view may_tune flow/> }.into_any(),
                    Err(error) => {
                        view! { <p class="banner critical" role="alert">{clean_error(&error)}</p> }
                            .into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn Settings(view: TuningView, may_tune: bool, flow: OperationFlow) -> impl IntoView {
    let peak = view.peak_24h.map_or_else(String::new, |peak| {
        format!(" Peak of the last 24 hours: {}.", format::thousands(peak))
    });
    let memory = match view.entry_bytes {
        Some(bytes) => format!(
            "{} entries now in the watched namespace's table, {} each; the host has {} of RAM.{peak}",
            format::thousands(view.count),
            format::bytes(bytes),
            format::bytes(view.host_memory_bytes),
        ),
        None => format!("{} entries now.{peak}", format::thousands(view.count)),
    };
    let drifted: Vec<SettingRow> = view
        .rows
        .iter()
        .filter(|row| row.changed_behind_our_back())
        .cloned()
        .collect();
    view! {
        <p class="muted" data-testid="tuning-summary">{memory}</p>
        {(!may_tune)
            .then(|| {
                view! { <p class="muted">"Only admins change these settings; you can read them."</p> }
            })}
        {(!drifted.is_empty())
            .then(|| {
                view! {
                    <div class="banner warning" role="status" data-testid="drift-banner">
                        <strong>"Changed outside ctguard: "</strong>
                        {drifted
                            .iter()
                            .map(|row| row.key.name().to_owned())
                            .collect::<Vec<_>>()
                            .join(", ")}
                        ". Another agent (kube-proxy, a sysctl.d file, someone with a shell) set a \
                         different value after the panel last did."
                    </div>
                }
            })}
        {SettingGroup::ALL
            .into_iter()
            .map(|group| {
                let rows: Vec<SettingRow> = view
                    .rows
                    .iter()
                    .filter(|row| SettingGroup::of(row.key) == group)
                    .cloned()
                    .collect();
                view! {
                    <section class="card" aria-label=group.title()>
                        <h2>{group.title()}</h2>
                        <p class="muted">{group.explanation()}</p>
                        <table class="data settings">
                            <thead>
                                <tr>
                                    <th scope="col">"Setting"</th>
                                    <th scope="col">"Now"</th>
                                    <th scope="col">"Kernel default"</th>
                                    <th scope="col">"Recommended"</th>
                                    <th scope="col">"Persisted"</th>
                                    <th scope="col">"Change"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {rows
                                    .into_iter()
                                    .map(|row| view! { <Setting row may_tune flow/> }.into_any())
                                    .collect_view()}
                            </tbody>
                        </table>
                    </section>
                }
                    .into_any()
            })
            .collect_view()}
    }
}

fn shown(key: SysctlKey, value: Option<u64>, missing: &str) -> String {
    value.map_or_else(|| missing.to_owned(), |v| advice::with_unit(key, v))
}

/// The recommendation as the column shows it: "keep" when it is the current value.
fn recommended_words(key: SysctlKey, current: Option<u64>, recommended: Option<u64>) -> String {
    match recommended {
        Some(value) if current == Some(value) => "keep".to_owned(),
        other => shown(key, other, "no opinion"),
    }
}

#[component]
fn Setting(row: SettingRow, may_tune: bool, flow: OperationFlow) -> impl IntoView {
    let key = row.key;
    let drifted = row.changed_behind_our_back();
    let last_set = row.last_set.clone().map(|set| {
        let words = format!(
            "ctguard set {} ({}, {} UTC, audit #{})",
            advice::with_unit(key, set.value),
            set.actor,
            utc::datetime(set.at),
            set.audit_id
        );
        view! {
            <small class=if drifted { "drift" } else { "muted" } data-testid="last-set">
                {if drifted { format!("Changed back since: {words}") } else { words }}
            </small>
        }
    });
    let recommend = row
        .recommended
        .filter(|&value| may_tune && row.current != Some(value));
    view! {
        <tr
            data-testid=format!("setting-{}", key.name())
            data-value=row.current.map(|v| v.to_string()).unwrap_or_default()
            data-drifted=drifted.to_string()
        >
            <th scope="row">
                <code>{key.name()}</code>
                <small class="muted">{format!(" · {}", scope_words(key))}</small>
                <p class="reasoning">{row.reasoning.clone()}</p>
                {(!row.cost.is_empty())
                    .then(|| {
                        view! {
                            <p class="reasoning" data-testid="cost">
                                <strong>"Cost: "</strong>
                                {row.cost.clone()}
                            </p>
                        }
                    })}
                {(!row.wrong_when.is_empty())
                    .then(|| {
                        view! {
                            <p class="reasoning" data-testid="wrong-when">
                                {row.wrong_when.clone()}
                            </p>
                        }
                    })}
            </th>
            <td data-testid="current">{shown(key, row.current, "not on this kernel")} {last_set}</td>
            <td>{shown(key, advice::kernel_default(key), "sized from RAM")}</td>
            <td data-testid="recommended">{recommended_words(key, row.current, row.recommended)}</td>
            <td>{shown(key, row.persisted, "—")}</td>
            <td>
                <Show when=move || may_tune fallback=|| "—">
                    {recommend
                        .map(|value| {
                            view! {
                                <button
                                    type="button"
                                    data-testid="apply-recommended"
                                    on:click=move |_| {
                                        flow.ask(Operation::SetSysctl {
                                            key,
                                            value,
                                            persist: true,
                                        })
                                    }
                                >
                                    "Apply recommended…"
                                </button>
                            }
                        })}
                    <ValueForm key flow/>
                </Show>
            </td>
        </tr>
    }
    .into_any()
}

/// "7440", "7_440" and "7,440" are all 7440: people copy numbers from many places.
fn parse_value(text: &str) -> Option<u64> {
    let digits: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, '_' | ',' | ' '))
        .collect();
    digits.parse().ok()
}

#[component]
fn ValueForm(key: SysctlKey, flow: OperationFlow) -> impl IntoView {
    let value = RwSignal::new(String::new());
    let persist = RwSignal::new(true);
    let problem = RwSignal::new(None::<String>);
    let id = key.name().replace('.', "-");
    let (min, max) = key.bounds();
    let unit = match key.unit() {
        ctguard_protocol::SysctlUnit::Seconds => "seconds",
        ctguard_protocol::SysctlUnit::Entries => "entries",
        ctguard_protocol::SysctlUnit::Buckets => "buckets",
    };
    view! {
        <form
            class="value-form"
            on:submit=move |ev| {
                ev.prevent_default();
                match parse_value(&value.get_untracked()) {
                    Some(parsed) => {
                        problem.set(None);
                        flow.ask(Operation::SetSysctl {
                            key,
                            value: parsed,
                            persist: persist.get_untracked(),
                        });
                    }
                    None => problem.set(Some(format!("Enter a whole number of {unit}."))),
                }
            }
        >
            <label for=format!("value-{id}")>{format!("New value ({unit})")}</label>
            <input
                id=format!("value-{id}")
                inputmode="numeric"
                autocomplete="off"
                required
                placeholder=format!("{min}–{max}")
                bind:value=value
            />
            <label class="check">
                <input type="checkbox" bind:checked=persist/>
                " keep after reboot"
            </label>
            <button type="submit">"Review…"</button>
            {move || problem.get().map(|text| view! { <small class="field-error" role="alert">{text}</small> })}
        </form>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::{SysctlKey, parse_value, recommended_words};

    #[test]
    fn a_recommendation_equal_to_the_current_value_reads_keep() {
        let key = SysctlKey::NfConntrackBuckets;
        assert_eq!(recommended_words(key, Some(262_144), Some(262_144)), "keep");
        assert_eq!(
            recommended_words(key, Some(16_384), Some(65_536)),
            "65,536 buckets"
        );
        assert_eq!(recommended_words(key, Some(1), None), "no opinion");
    }

    #[test]
    fn values_are_read_the_way_people_write_them() {
        assert_eq!(parse_value(" 7440 "), Some(7_440));
        assert_eq!(parse_value("262,144"), Some(262_144));
        assert_eq!(parse_value("1_048_576"), Some(1_048_576));
        assert_eq!(parse_value("2h"), None);
        assert_eq!(parse_value("-5"), None);
        assert_eq!(parse_value(""), None);
    }
}
