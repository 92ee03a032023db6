//! The block form: the scope of a block field by field (which address, the address or network,
//! protocol, port), a duration and a reason, with the target it makes shown in the protocol's
//! words. Submitting asks for the server's preview, which parses and checks the target again (and
//! says what is wrong with it); the parser is not shipped to the browser, to keep the bundle small.

use ctguard_protocol::{Protocol, Side};
use leptos::prelude::*;

use crate::{
    components::operation_flow::OperationFlow,
    operators::block_scope::BlockScope,
    operators::operations::{DURATIONS, Operation},
};

/// The port part of the form: none, or which side and the number as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortSide {
    Any,
    Source,
    Destination,
}

impl PortSide {
    fn of(port: Option<(Side, u16)>) -> Self {
        match port {
            None => Self::Any,
            Some((Side::Source, _)) => Self::Source,
            Some((Side::Destination, _)) => Self::Destination,
        }
    }

    fn side(self) -> Option<Side> {
        match self {
            Self::Any => None,
            Self::Source => Some(Side::Source),
            Self::Destination => Some(Side::Destination),
        }
    }
}

#[component]
pub fn BlockForm(
    flow: OperationFlow,
    /// Where the form starts, e.g. `from 203.0.113.66` or `udp from 203.0.113.53 sport 53`.
    scope: BlockScope,
    /// Prefilled reason.
    reason: String,
) -> impl IntoView {
    let direction = RwSignal::new(scope.direction);
    let network = RwSignal::new(scope.network.clone());
    let protocol = RwSignal::new(scope.protocol);
    let port_side = RwSignal::new(PortSide::of(scope.port));
    let port_number = RwSignal::new(scope.port.map(|(_, p)| p.to_string()).unwrap_or_default());
    let reason = RwSignal::new(reason);
    let duration = RwSignal::new(DURATIONS[1].0);
    let problem = RwSignal::new(None::<String>);

    // The scope as typed so far; a port that is not a number is reported, not guessed.
    let current = move || -> Result<BlockScope, String> {
        let port = match port_side.get().side() {
            None => None,
            Some(side) => {
                let typed = port_number.get();
                let number = typed.trim().parse::<u16>().map_err(|_| {
                    format!("{:?} is not a port number (1 to 65535).", typed.trim())
                })?;
                Some((side, number))
            }
        };
        let scope = BlockScope {
            direction: direction.get(),
            network: network.get(),
            protocol: protocol.get(),
            port,
        };
        match scope.problem() {
            Some(text) => Err(text.to_owned()),
            None => Ok(scope),
        }
    };
    let target_text = move || match current() {
        Ok(scope) => scope.target_text(),
        Err(_) => "…".to_owned(),
    };

    view! {
        <form
            class="block-form"
            data-testid="block-form"
            on:submit=move |ev| {
                ev.prevent_default();
                match current() {
                    Ok(scope) => {
                        problem.set(None);
                        flow.ask(Operation::Block {
                            target: scope.target_text(),
                            duration_secs: duration.get_untracked(),
                            reason: reason.get_untracked(),
                        });
                    }
                    Err(text) => problem.set(Some(text)),
                }
            }
        >
            <fieldset class="scope">
                <legend>"What to drop"</legend>
                <label for="block-direction">"Match"</label>
                <select
                    id="block-direction"
                    on:change=move |ev| {
                        direction
                            .set(
                                if event_target_value(&ev) == "to" {
                                    Side::Destination
                                } else {
                                    Side::Source
                                },
                            )
                    }
                >
                    <option value="from" selected=scope.direction == Side::Source>
                        "traffic from (source address)"
                    </option>
                    <option value="to" selected=scope.direction == Side::Destination>
                        "traffic to (destination address)"
                    </option>
                </select>
                <label for="block-network">"Address or network"</label>
                <input
                    id="block-network"
                    bind:value=network
                    required
                    spellcheck="false"
                    autocomplete="off"
                    placeholder="203.0.113.66 or 203.0.113.0/24"
                />
                <label for="block-protocol">"Protocol"</label>
                <select
                    id="block-protocol"
                    on:change=move |ev| {
                        protocol
                            .set(
                                match event_target_value(&ev).as_str() {
                                    "tcp" => Some(Protocol::Tcp),
                                    "udp" => Some(Protocol::Udp),
                                    _ => None,
                                },
                            )
                    }
                >
                    <option value="any" selected=scope.protocol.is_none()>"any"</option>
                    <option value="tcp" selected=scope.protocol == Some(Protocol::Tcp)>"TCP"</option>
                    <option value="udp" selected=scope.protocol == Some(Protocol::Udp)>"UDP"</option>
                </select>
                <label for="block-port-side">"Port"</label>
                <select
                    id="block-port-side"
                    on:change=move |ev| {
                        port_side
                            .set(
                                match event_target_value(&ev).as_str() {
                                    "sport" => PortSide::Source,
                                    "dport" => PortSide::Destination,
                                    _ => PortSide::Any,
                                },
                            )
                    }
                >
                    <option value="any" selected=scope.port.is_none()>"any port"</option>
                    <option value="sport" selected=PortSide::of(scope.port) == PortSide::Source>
                        "source port"
                    </option>
                    <option
                        value="dport"
                        selected=PortSide::of(scope.port) == PortSide::Destination
                    >
                        "destination port"
                    </option>
                </select>
                <label for="block-port">"Port number"</label>
                <input
                    id="block-port"
                    class="port"
                    bind:value=port_number
                    inputmode="numeric"
                    autocomplete="off"
                    disabled=move || port_side.get() == PortSide::Any
                />
                <p class="target-text">
                    "Blocks: " <code data-testid="block-target-text">{target_text}</code>
                </p>
            </fieldset>
            <label for="block-duration">"Duration"</label>
            <select
                id="block-duration"
                on:change=move |ev| {
                    if let Ok(secs) = event_target_value(&ev).parse::<u64>() {
                        duration.set(secs);
                    }
                }
            >
                {DURATIONS
                    .iter()
                    .map(|(secs, label)| {
                        view! {
                            <option value=secs.to_string() selected=*secs == DURATIONS[1].0>
                                {*label}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            <label for="block-reason">"Reason"</label>
            <input id="block-reason" bind:value=reason required maxlength="200"/>
            {move || {
                problem.get().map(|text| view! { <p class="field-error" role="alert">{text}</p> })
            }}
            <button type="submit" class="primary">"Block…"</button>
        </form>
    }
    // Type-erased: the form's view type is deep, and the pages that embed it would otherwise
    // exceed the compiler's query depth in the release wasm build.
    .into_any()
}
