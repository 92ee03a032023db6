//! How widely a source spreads its entries: distinct destination ports and destination addresses
//! per source, each counted in a fixed 512-bit sketch (linear counting), so a walk's memory stays
//! bounded whatever the table holds. Hand-written: a few lines of bit arithmetic, where a
//! HyperLogLog crate would bring dependencies into the root helper for less accuracy at these
//! small counts.

use std::net::IpAddr;

use ctguard_protocol::SourceSpread;

use super::top::SeededMap;

const BITS: usize = 512;

/// One linear-counting sketch: a value sets one bit chosen by its hash.
#[derive(Debug, Clone, Copy, Default)]
struct Sketch([u64; BITS / 64]);

impl Sketch {
    fn insert(&mut self, value: u128) {
        let bit = (mix(value) % BITS as u64) as usize;
        self.0[bit / 64] |= 1 << (bit % 64);
    }

    /// `-m ln(zeros / m)`: the expected number of distinct values that leave `zeros` bits unset.
    fn estimate(&self) -> u32 {
        let ones: u32 = self.0.iter().map(|word| word.count_ones()).sum();
        let zeros = BITS as f64 - f64::from(ones);
        if zeros == 0.0 {
            return SourceSpread::SATURATED;
        }
        let estimate = -(BITS as f64) * (zeros / BITS as f64).ln();
        (estimate.round() as u32).min(SourceSpread::SATURATED)
    }
}

/// splitmix64's finaliser over both halves: neighbouring ports and addresses land on unrelated
/// bits.
fn mix(value: u128) -> u64 {
    let mut z = (value as u64) ^ ((value >> 64) as u64).rotate_left(32);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn address_bits(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Spread {
    dports: Sketch,
    destinations: Sketch,
}

/// The sketches of up to `cap` sources: the first `cap` distinct sources a walk meets. Later
/// ones are not sketched (their spread is unknown, never wrong); the heavy sources a suspicious
/// table is about appear early and often.
#[derive(Debug)]
pub struct SpreadTracker {
    sources: SeededMap<IpAddr, Spread>,
    cap: usize,
}

impl SpreadTracker {
    pub fn new(cap: usize) -> Self {
        Self {
            sources: SeededMap::default(),
            cap,
        }
    }

    pub fn add(&mut self, source: IpAddr, destination: IpAddr, dport: Option<u16>) {
        let full = self.sources.len() >= self.cap;
        let spread = match self.sources.get_mut(&source) {
            Some(spread) => spread,
            None if full => return,
            None => self.sources.entry(source).or_default(),
        };
        spread.destinations.insert(address_bits(destination));
        if let Some(port) = dport {
            spread.dports.insert(u128::from(port));
        }
    }

    pub fn spread_of(&self, source: IpAddr) -> Option<SourceSpread> {
        self.sources.get(&source).map(|spread| SourceSpread {
            source,
            dports: spread.dports.estimate(),
            destinations: spread.destinations.estimate(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(estimate: u32, actual: u32, percent: u32) -> bool {
        estimate.abs_diff(actual) * 100 <= actual * percent
    }

    #[test]
    fn distinct_ports_and_destinations_are_estimated_closely() {
        let source: IpAddr = "203.0.113.66".parse().expect("address");
        let mut tracker = SpreadTracker::new(16);
        for round in 0..3 {
            for port in 1000..1300u16 {
                let destination = IpAddr::from([198, 51, 100, (port % 50) as u8]);
                tracker.add(source, destination, Some(port));
            }
            let spread = tracker.spread_of(source).expect("tracked");
            assert!(within(spread.dports, 300, 10), "round {round}: {spread:?}");
            assert!(within(spread.destinations, 50, 10), "{spread:?}");
        }
    }

    #[test]
    fn a_huge_spread_saturates_and_one_port_stays_one() {
        let scanner: IpAddr = "203.0.113.77".parse().expect("address");
        let single: IpAddr = "203.0.113.88".parse().expect("address");
        let target: IpAddr = "198.51.100.10".parse().expect("address");
        let mut tracker = SpreadTracker::new(16);
        for port in 1..=60_000u16 {
            tracker.add(scanner, target, Some(port));
            tracker.add(single, target, Some(8080));
        }
        let scan = tracker.spread_of(scanner).expect("tracked");
        assert_eq!(scan.dports, SourceSpread::SATURATED);
        assert_eq!(scan.destinations, 1);
        assert_eq!(tracker.spread_of(single).expect("tracked").dports, 1);
    }

    #[test]
    fn sources_beyond_the_cap_are_not_sketched() {
        let mut tracker = SpreadTracker::new(2);
        let target: IpAddr = "198.51.100.10".parse().expect("address");
        for last in 1..=3u8 {
            tracker.add(IpAddr::from([203, 0, 113, last]), target, Some(80));
        }
        assert!(tracker.spread_of(IpAddr::from([203, 0, 113, 2])).is_some());
        assert!(tracker.spread_of(IpAddr::from([203, 0, 113, 3])).is_none());
    }
}
