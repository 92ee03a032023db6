//! The history chart: entries and the limit over a time span, drawn as SVG by Leptos itself (no
//! chart library), coloured through the stylesheet's variables so it reads in light and dark mode.

use leptos::prelude::*;

use crate::format;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 26.0;

/// One point of the chart: time (ms since the epoch), entries, limit.
pub type ChartPoint = (u64, u64, u64);

/// Where the axes put things, for a span ending at `end_ms` and values up to `top`.
#[derive(Debug, Clone, Copy)]
struct Scale {
    start_ms: u64,
    span_ms: u64,
    top: u64,
}

impl Scale {
    fn x(&self, at_ms: u64) -> f64 {
        let offset = at_ms.saturating_sub(self.start_ms).min(self.span_ms) as f64;
        LEFT + offset / self.span_ms as f64 * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, value: u64) -> f64 {
        let fraction = value.min(self.top) as f64 / self.top as f64;
        HEIGHT - BOTTOM - fraction * (HEIGHT - TOP - BOTTOM)
    }
}

/// A round upper bound for the value axis, at or above `value`: 1, 2, 3, 4, 5, 6 or 8 times a power
/// of ten, so a quarter of it is a round tick too and the plot is not mostly empty.
pub fn nice_top(value: u64) -> u64 {
    let mut power = 1u64;
    loop {
        for factor in [1, 2, 3, 4, 5, 6, 8] {
            let candidate = factor * power;
            if candidate >= value.max(1) {
                return candidate;
            }
        }
        power = power.saturating_mul(10);
    }
}

fn polyline(points: &[ChartPoint], scale: Scale, value: impl Fn(&ChartPoint) -> u64) -> String {
    let mut out = String::with_capacity(points.len() * 14);
    for point in points {
        if point.0 < scale.start_ms {
            continue;
        }
        out.push_str(&format!(
            "{:.1},{:.1} ",
            scale.x(point.0),
            scale.y(value(point))
        ));
    }
    out
}

/// `span_ms` of history ending at `end_ms`, with a tick every `tick_ms` labelled by `label(ms ago)`.
#[component]
pub fn HistoryChart(
    title: &'static str,
    testid: &'static str,
    points: Vec<ChartPoint>,
    end_ms: u64,
    span_ms: u64,
    tick_ms: u64,
    label: fn(u64) -> String,
) -> impl IntoView {
    let top = nice_top(
        points
            .iter()
            .map(|&(_, count, max)| count.max(max))
            .max()
            .unwrap_or(1),
    );
    let scale = Scale {
        start_ms: end_ms.saturating_sub(span_ms),
        span_ms: span_ms.max(1),
        top,
    };
    let count_line = polyline(&points, scale, |p| p.1);
    let max_line = polyline(&points, scale, |p| p.2);
    let value_ticks: Vec<_> = (0..=4)
        .map(|i| {
            let value = top / 4 * i;
            let y = scale.y(value);
            view! {
                <line class="chart-grid" x1=LEFT x2=WIDTH - RIGHT y1=y y2=y></line>
                <text class="chart-label" x=LEFT - 6.0 y=y + 4.0 text-anchor="end">
                    {format::compact(value)}
                </text>
            }
        })
        .collect();
    let time_ticks: Vec<_> = (0..=span_ms / tick_ms.max(1))
        .map(|i| {
            let ago = span_ms - i * tick_ms;
            let x = scale.x(end_ms.saturating_sub(ago));
            view! {
                <line class="chart-grid" x1=x x2=x y1=TOP y2=HEIGHT - BOTTOM></line>
                <text class="chart-label" x=x y=HEIGHT - 8.0 text-anchor="middle">
                    {label(ago)}
                </text>
            }
        })
        .collect();
    let points_shown = points.len().to_string();
    view! {
        <figure class="chart-card" data-testid=testid data-points=points_shown>
            <figcaption>
                {title} <span class="legend count">"entries"</span>
                <span class="legend max">"limit (nf_conntrack_max)"</span>
            </figcaption>
            <svg
                class="chart"
                viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                role="img"
                aria-label=format!("{title}: entries and limit; value axis in entries")
            >
                {value_ticks}
                {time_ticks}
                <text class="chart-unit" x=4.0 y=12.0>"entries"</text>
                <polyline class="chart-max" points=max_line></polyline>
                <polyline class="chart-count" points=count_line></polyline>
            </svg>
        </figure>
    }
}

/// `0` → `now`, `300000` → `−5 min`.
pub fn minutes_ago(ms: u64) -> String {
    if ms == 0 {
        "now".to_owned()
    } else {
        format!("−{} min", ms / 60_000)
    }
}

/// `0` → `now`, `21600000` → `−6 h`.
pub fn hours_ago(ms: u64) -> String {
    if ms == 0 {
        "now".to_owned()
    } else {
        format!("−{} h", ms / 3_600_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_axis_ends_on_a_round_number() {
        assert_eq!(nice_top(0), 1);
        assert_eq!(nice_top(3), 3);
        assert_eq!(nice_top(7), 8);
        assert_eq!(nice_top(262_144), 300_000);
        assert_eq!(nice_top(65_536), 80_000);
        assert_eq!(nice_top(200_000), 200_000);
    }

    #[test]
    fn points_map_into_the_plot_area() {
        let scale = Scale {
            start_ms: 1_000,
            span_ms: 1_000,
            top: 100,
        };
        assert_eq!(scale.x(1_000), LEFT);
        assert_eq!(scale.x(2_000), WIDTH - RIGHT);
        assert_eq!(scale.y(0), HEIGHT - BOTTOM);
        assert_eq!(scale.y(100), TOP);
        assert_eq!(scale.y(1_000), TOP, "clamped");
    }

    #[test]
    fn tick_labels_say_how_long_ago() {
        assert_eq!(minutes_ago(0), "now");
        assert_eq!(minutes_ago(300_000), "−5 min");
        assert_eq!(hours_ago(21_600_000), "−6 h");
    }
}
