//! The filter examples' accounting: every packet gen sent, passed or
//! dropped by `min-len`, and every one passed, at the sink.

use tilewire_pipeline::Pipeline;

/// What gen sent, min-len passed and dropped, and the sink got, after a
/// run of `gen -> filter (min-len) -> sink`; an error unless every packet
/// gen sent is accounted for.
pub(crate) fn account(p: &Pipeline) -> Result<String, String> {
    let count = |tile: &str, name: &str| p.counter(tile, name).unwrap_or(0);
    let sent = count("gen", "sent");
    let passed = count("filter", "passed");
    let dropped = count("filter", "dropped");
    let sunk = count("sink", "frags");
    let line =
        format!("gen sent {sent}; min-len passed {passed}, dropped {dropped}; the sink got {sunk}");
    if sent == 0 || passed + dropped != sent || sunk != passed {
        return Err(format!(
            "{line}: the counts do not add up, the stop lost packets"
        ));
    }
    Ok(line)
}
