//! The flags every bench takes and the way every bench prints: a
//! readable table, or with `--json` one object per line.

/// What every benchmark takes.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct BenchArgs {
    /// One JSON object per line instead of a table
    #[arg(long)]
    pub json: bool,
    /// Short runs (a quick look; the ratios are noisier)
    #[arg(long)]
    pub quick: bool,
}

/// Parses a `--duration`: seconds a cell measures, 0.1 to 60.
pub(crate) fn window_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.1..=60.0).contains(&v) {
        return Err(format!("{v} is not in 0.1..=60 seconds"));
    }
    Ok(v)
}

/// Prints `row` as one line of JSON: what every `--json` prints.
pub(crate) fn print_json(row: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string(row).expect("bench rows hold only numbers and strings")
    );
}

/// `v` rounded to `digits` decimals, for ratios and per-packet costs in
/// machine output.
pub(crate) fn round(v: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (v * k).round() / k
}
