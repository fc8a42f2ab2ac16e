//! Numbers as a person reads them: durations and counts with short units,
//! for the table, the health reasons and the CLI.

/// `ns` as a short human duration: `850ns`, `12.3us`, `4.5ms`, `2.00s`.
pub fn duration(ns: u64) -> String {
    let n = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}us", n / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.1}ms", n / 1e6)
    } else {
        format!("{:.2}s", n / 1e9)
    }
}

/// A count or rate with an SI suffix: `950`, `12.3k`, `4.56M`, `1.20G`.
pub fn si(v: f64) -> String {
    let a = v.abs();
    if a < 1e3 {
        if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    } else if a < 1e6 {
        format!("{:.1}k", v / 1e3)
    } else if a < 1e9 {
        format!("{:.2}M", v / 1e6)
    } else {
        format!("{:.2}G", v / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(duration(850), "850ns");
        assert_eq!(duration(12_300), "12.3us");
        assert_eq!(duration(4_500_000), "4.5ms");
        assert_eq!(duration(2_000_000_000), "2.00s");
        assert_eq!(si(950.0), "950");
        assert_eq!(si(12_300.0), "12.3k");
        assert_eq!(si(4_560_000.0), "4.56M");
        assert_eq!(si(2.5), "2.5");
    }
}
