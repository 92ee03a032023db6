//! Parser of `/proc/net/stat/nf_conntrack`: a header of column names, then one row of hexadecimal
//! counters per possible CPU. Columns differ between kernels, so they are found by name, never by
//! position. Rows are kept per CPU: each counter is 32-bit and wraps on its own.

use ctguard_protocol::{ConntrackStats, status::CpuStats};

/// One [`CpuStats`] per row, numbered by position (`ct_cpu_seq_show` prints possible CPUs in
/// order and no number). Columns this kernel lacks stay zero.
pub fn parse(text: &str) -> Result<Vec<CpuStats>, String> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty statistics file")?
        .split_whitespace()
        .collect();
    let mut cpus = Vec::new();
    for (row_number, row) in lines.enumerate() {
        let values: Vec<&str> = row.split_whitespace().collect();
        if values.len() != header.len() {
            return Err(format!(
                "row {} has {} columns, the header {}",
                row_number + 1,
                values.len(),
                header.len()
            ));
        }
        let mut stats = ConntrackStats::default();
        for (name, value) in header.iter().zip(values) {
            let value = u64::from_str_radix(value, 16)
                .map_err(|e| format!("column {name} of row {}: {e}", row_number + 1))?;
            if let Some(counter) = counter_mut(&mut stats, name) {
                *counter = value;
            }
        }
        cpus.push(CpuStats {
            cpu: u32::try_from(row_number).map_err(|_| "more rows than CPUs can be")?,
            stats,
        });
    }
    Ok(cpus)
}

/// The per-CPU counters added up, as `conntrack -S` users add them.
pub fn sum(cpus: &[CpuStats]) -> ConntrackStats {
    let mut totals = ConntrackStats::default();
    for cpu in cpus {
        let s = &cpu.stats;
        for (total, value) in [
            (&mut totals.found, s.found),
            (&mut totals.invalid, s.invalid),
            (&mut totals.insert, s.insert),
            (&mut totals.insert_failed, s.insert_failed),
            (&mut totals.drop, s.drop),
            (&mut totals.early_drop, s.early_drop),
            (&mut totals.search_restart, s.search_restart),
            (&mut totals.error, s.error),
            (&mut totals.clash_resolve, s.clash_resolve),
            (&mut totals.chaintoolong, s.chaintoolong),
        ] {
            *total = total.saturating_add(value);
        }
    }
    totals
}

fn counter_mut<'a>(stats: &'a mut ConntrackStats, column: &str) -> Option<&'a mut u64> {
    Some(match column {
        "found" => &mut stats.found,
        "invalid" => &mut stats.invalid,
        "insert" => &mut stats.insert,
        "insert_failed" => &mut stats.insert_failed,
        "drop" => &mut stats.drop,
        "early_drop" => &mut stats.early_drop,
        "search_restart" => &mut stats.search_restart,
        "icmp_error" => &mut stats.error,
        "clashres" => &mut stats.clash_resolve,
        // Since 5.15 `ct_cpu_seq_show` prints chaintoolong under this name, where delete_list was.
        "chainlength" => &mut stats.chaintoolong,
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The layout of 5.9 to 5.14 (5.10 LTS): clashres, but still delete_list, which 5.15 replaced
    /// with chainlength when it bounded the chains; two CPUs.
    pub(crate) const TWO_CPUS: &str = "\
entries  clashres found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00010000  00000000 00000001 00000000 00000010 00000000 00000000 00000000 00000100 00000002 00000900 0000000a 00000000  00000000 00000000 00000000 00000003
00010000  00000000 00000002 00000000 00000020 00000000 00000000 00000000 00000200 00000001 0000006e 00000005 00000000  00000000 00000000 00000000 00000004
";

    #[test]
    fn keeps_each_cpu_and_sums_named_columns() {
        let cpus = parse(TWO_CPUS).expect("parses");
        assert_eq!(cpus.len(), 2);
        assert_eq!((cpus[0].cpu, cpus[1].cpu), (0, 1));
        assert_eq!((cpus[0].stats.drop, cpus[1].stats.drop), (0x900, 0x6e));
        assert_eq!(
            sum(&cpus),
            ConntrackStats {
                found: 3,
                invalid: 0x30,
                insert: 0x300,
                insert_failed: 3,
                drop: 0x96e,
                early_drop: 15,
                search_restart: 7,
                ..ConntrackStats::default()
            }
        );
    }

    #[test]
    fn reads_the_6x_columns_clashres_chainlength_and_icmp_error() {
        // Kernel 6.18's header (this machine's), one CPU.
        let six = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
                   00000005  00000002 00000000 00000000 00000011 00000000 00000000 00000003 00000000 00000004 00000006 00000000 00000007  00000000 00000000 00000000 00000001\n";
        let stats = sum(&parse(six).expect("parses"));
        assert_eq!(stats.clash_resolve, 2);
        assert_eq!(stats.chaintoolong, 3);
        assert_eq!(stats.error, 7);
        assert_eq!(stats.invalid, 0x11);
        assert_eq!(stats.insert_failed, 4);
        assert_eq!(stats.drop, 6);
        assert_eq!(stats.search_restart, 1);
    }

    #[test]
    fn finds_columns_by_name_in_an_older_layout() {
        let old = "entries searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error expect_new expect_create expect_delete search_restart\n\
                   0000002a 00000000 00000005 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000007 00000000 00000000 00000000 00000000 00000000 00000000\n";
        let stats = sum(&parse(old).expect("parses"));
        assert_eq!(stats.found, 5);
        assert_eq!(stats.drop, 7);
    }

    #[test]
    fn refuses_ragged_rows_and_bad_hex() {
        assert!(parse("").is_err());
        assert!(parse("found drop\n1\n").is_err());
        assert!(parse("found drop\n1 zz\n").is_err());
    }
}
