//! The Suspicious page's "Trace new flows" panel (issue 15): the running (or last) trace's counts
//! for everyone, polled every [`POLL_SECS`] while it runs; the form to start one and the Stop
//! button for operators and admins, both through the confirmed-change flow.

use std::time::Duration;

use ctguard_protocol::trace::{TraceCount, TraceReading};
use leptos::prelude::*;

use crate::{
    components::operation_flow::{OperationFlow, clean_error},
    format,
    operators::operations::{Operation, read_trace},
    operators::trace::{self, DURATIONS, POLL_SECS, TraceView},
};

#[component]
pub fn TracePanel(flow: OperationFlow, may_trace: bool) -> impl IntoView {
    let tick = RwSignal::new(0_u32);
    let answer = Resource::new(move || (tick.get(), flow.applied()), |_| read_trace());
    // Ask again while the trace runs; the browser only (effects do not run on the server).
    Effect::new(move |_| {
        if let Some(Ok(view)) = answer.get()
            && view.running()
        {
            set_timeout(
                move || tick.update(|n| *n += 1),
                Duration::from_secs(u64::from(POLL_SECS)),
            );
        }
    });
    let filter = RwSignal::new(String::new());
    let seconds = RwSignal::new(DURATIONS[1].0);
    let reason = RwSignal::new(String::new());
    let start = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        flow.ask(Operation::StartTrace {
            filter: filter.get_untracked(),
            seconds: seconds.get_untracked(),
            reason: reason.get_untracked(),
        });
    };
    view! {
        <section aria-labelledby="trace-heading" data-testid="trace">
            <h2 id="trace-heading">"Trace new flows"</h2>
            <p class="muted">
                "Counts the new flows that match a filter by source, destination and destination \
                 port for a few minutes, in kernel counters. Nothing is logged to syslog and no \
                 traffic is dropped."
            </p>
            <Transition fallback=|| view! { <p class="muted">"Reading the trace…"</p> }>
                {move || Suspend::new(async move {
                    match answer.await {
                        Ok(view) => view! { <TraceCounts view flow may_trace/> }.into_any(),
                        Err(error) => {
                            view! { <p class="banner critical" role="alert">{clean_error(&error)}</p> }
                                .into_any()
                        }
                    }
                })}
            </Transition>
            {may_trace
                .then(|| {
                    view! {
                        <form class="trace-form" data-testid="trace-form" on:submit=start>
                            <label>
                                "Filter "
                                <input
                                    type="text"
                                    name="trace-filter"
                                    placeholder="to 198.51.100.10, udp from 203.0.113.0/24 sport 53"
                                    prop:value=move || filter.get()
                                    on:input=move |ev| filter.set(event_target_value(&ev))
                                />
                            </label>
                            <label>
                                "For "
                                <select
                                    name="trace-seconds"
                                    on:change=move |ev| {
                                        if let Ok(value) = event_target_value(&ev).parse() {
                                            seconds.set(value);
                                        }
                                    }
                                >
                                    {DURATIONS
                                        .iter()
                                        .map(|&(value, label)| {
                                            view! {
                                                <option
                                                    value=value.to_string()
                                                    selected=value == DURATIONS[1].0
                                                >
                                                    {label}
                                                </option>
                                            }
                                        })
                                        .collect_view()}
                                </select>
                            </label>
                            <label>
                                "Reason "
                                <input
                                    type="text"
                                    name="trace-reason"
                                    prop:value=move || reason.get()
                                    on:input=move |ev| reason.set(event_target_value(&ev))
                                />
                            </label>
                            <button type="submit">"Preview trace…"</button>
                        </form>
                    }
                })}
        </section>
    }
}

#[component]
fn TraceCounts(view: TraceView, flow: OperationFlow, may_trace: bool) -> impl IntoView {
    let (reading, running, now) = match view {
        TraceView::Unsupported => {
            return view! {
                <p class="banner info" role="status" data-testid="trace-unavailable">
                    "Traces are not available: the helper does not trace (it is older than this \
                     panel)."
                </p>
            }
            .into_any();
        }
        TraceView::Reading { reading: None, .. } => {
            return view! { <p class="muted" data-testid="trace-none">"No trace has run since the helper started."</p> }
                .into_any();
        }
        TraceView::Reading {
            reading: Some(reading),
            running,
            now,
        } => (reading, running, now),
    };
    let TraceReading {
        info,
        new_flows,
        sources,
        destinations,
        destination_ports,
        uncounted_sources,
    } = *reading;
    let state = if running {
        format!("running, {}", trace::time_left(now, info.ends_at))
    } else {
        format!(
            "ended at {}",
            format::clock_utc(info.ends_at.min(now) * 1000)
        )
    };
    view! {
        <p data-testid="trace-state" data-running=running.to_string()>
            {format!(
                "Trace of {} since {}: {}; {}.",
                info.filter,
                format::clock_utc(info.started_at * 1000),
                trace::new_flows(new_flows),
                state,
            )}
            {(running && may_trace)
                .then(|| {
                    view! {
                        " "
                        <button
                            type="button"
                            data-testid="trace-stop"
                            on:click=move |_| flow.ask(Operation::StopTrace {})
                        >
                            "Stop…"
                        </button>
                    }
                })}
        </p>
        <div class="two-columns">
            {count_table("Sources", "trace-sources", sources, uncounted_sources)}
            {count_table("Destinations", "trace-destinations", destinations, 0)}
            {count_table("Destination ports", "trace-ports", destination_ports, 0)}
        </div>
    }
    .into_any()
}

fn count_table(
    title: &'static str,
    testid: &'static str,
    rows: Vec<TraceCount>,
    uncounted: u64,
) -> impl IntoView {
    view! {
        <table class="data compact" data-testid=testid>
            <caption>{title}</caption>
            <thead>
                <tr>
                    <th scope="col">{title}</th>
                    <th scope="col">"New flows"</th>
                </tr>
            </thead>
            <tbody>
                {rows
                    .iter()
                    .map(|row| {
                        view! {
                            <tr>
                                <th scope="row">{trace::label(row)}</th>
                                <td>{format::thousands(row.new_flows)}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
                {(uncounted > 0)
                    .then(|| {
                        view! {
                            <tr class="muted">
                                <th scope="row">"uncounted (set full)"</th>
                                <td>{format::thousands(uncounted)}</td>
                            </tr>
                        }
                    })}
            </tbody>
        </table>
    }
}
