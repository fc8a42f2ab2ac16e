//! The soak's books: every frag the source sent is delivered, counted
//! lost on a named link, or counted dropped with a reason; what is none
//! of these is *unexplained*.
//!
//! # What is counted where
//!
//! - *sent*: the ids the source published, exactly (the next seq of its
//!   output link after the stop; see [`kinds`](super::kinds));
//! - *delivered*: ids the sink's record holds, exactly (bits set);
//! - *lost*: frags a consumer counted lost to overruns on a link
//!   (`DIAG_OVRNP_FRAGS` of its fseq, in the workspace, so a restarted
//!   consumer adds to what its predecessors counted). A frag overwritten
//!   while read is counted once more as an overrun-while-reading event,
//!   but it is among the frags the next poll counts lost, so only the
//!   frag count is added here;
//! - *dropped*: frags a consumer or a tile counted away with a reason
//!   that lasts across restarts (bad chunks, filtered, corrupt lines,
//!   frames without an id at the sink).
//!
//! # Counted lost but delivered
//!
//! A consumer of an unreliable link publishes its progress every few
//! frags. Killed, it may have read and passed on frags past its last
//! publish; its successor starts at that progress, and when the producer
//! lapped it meanwhile, counts those frags lost although they were
//! delivered. So the counts can exceed what is missing: the excess is
//! reported as *counted lost but delivered*, never subtracted silently.
//! It has a bound: each restart of such a consumer can count at most one
//! progress interval of frags this way ([`Tally::overcount_bound`]). An
//! excess past the bound is itself a problem (a count no run can make).
//!
//! The books balance by totals, not by id: an excess within the bound
//! could hide a loss as large elsewhere. The bound is small (one progress
//! interval per restart of an unreliable link's consumer) and is printed
//! beside the excess, so what could hide is stated, not hidden.

use serde::Serialize;

/// Frags one consumer of one link counted lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LinkLoss {
    /// The link.
    pub(crate) link: String,
    /// The consumer tile that counted them.
    pub(crate) consumer: String,
    /// Whether the link is reliable (it may lose nothing).
    pub(crate) reliable: bool,
    /// Frags counted lost.
    pub(crate) frags: u64,
}

/// Frags dropped for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Dropped {
    /// Who dropped them and why.
    pub(crate) reason: String,
    /// How many.
    pub(crate) frags: u64,
}

/// What the books are made from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Ids the source published.
    pub(crate) sent: u64,
    /// Ids the sink recorded.
    pub(crate) delivered: u64,
    /// Losses, per link and consumer.
    pub(crate) lost: Vec<LinkLoss>,
    /// Drops, per reason.
    pub(crate) dropped: Vec<Dropped>,
    /// Most frags the restarts of unreliable links' consumers may have
    /// counted lost although they were delivered.
    pub(crate) overcount_bound: u64,
}

/// The books balanced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Books {
    /// Sent and never delivered.
    pub(crate) missing: u64,
    /// Counted lost, all links.
    pub(crate) lost: u64,
    /// Counted dropped, all reasons.
    pub(crate) dropped: u64,
    /// Missing, and neither counted lost nor dropped.
    pub(crate) unexplained: u64,
    /// Counted lost or dropped beyond what is missing (see the [module
    /// docs](self)).
    pub(crate) counted_lost_but_delivered: u64,
    /// The most that can be, by the restarts.
    pub(crate) counted_lost_but_delivered_bound: u64,
    /// What does not add up, in words; empty when the books balance.
    pub(crate) problems: Vec<String>,
}

/// Balances `t` (see the [module docs](self)).
pub(crate) fn balance(t: &Tally) -> Books {
    let mut problems = Vec::new();
    if t.delivered > t.sent {
        problems.push(format!(
            "the sink recorded {} ids but the source sent {}",
            t.delivered, t.sent
        ));
    }
    for l in t.lost.iter().filter(|l| l.reliable && l.frags > 0) {
        problems.push(format!(
            "reliable link {} lost {} frags (counted by {})",
            l.link, l.frags, l.consumer
        ));
    }
    let missing = t.sent.saturating_sub(t.delivered);
    let lost: u64 = t.lost.iter().map(|l| l.frags).sum();
    let dropped: u64 = t.dropped.iter().map(|d| d.frags).sum();
    let counted = lost + dropped;
    let unexplained = missing.saturating_sub(counted);
    let excess = counted.saturating_sub(missing);
    if unexplained > 0 {
        problems.push(format!(
            "{unexplained} frags unexplained: {missing} sent and never delivered, {lost} \
             counted lost, {dropped} counted dropped"
        ));
    }
    if excess > t.overcount_bound {
        problems.push(format!(
            "{excess} frags counted lost or dropped beyond those missing, more than the {} \
             the restarts of unreliable links' consumers can account for",
            t.overcount_bound
        ));
    }
    Books {
        missing,
        lost,
        dropped,
        unexplained,
        counted_lost_but_delivered: excess,
        counted_lost_but_delivered_bound: t.overcount_bound,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(link: &str, reliable: bool, frags: u64) -> LinkLoss {
        LinkLoss {
            link: link.into(),
            consumer: "c".into(),
            reliable,
            frags,
        }
    }

    fn tally(sent: u64, delivered: u64, lost: Vec<LinkLoss>, dropped: u64, bound: u64) -> Tally {
        Tally {
            sent,
            delivered,
            lost,
            dropped: vec![Dropped {
                reason: "bad".into(),
                frags: dropped,
            }],
            overcount_bound: bound,
        }
    }

    #[test]
    fn every_missing_frag_counted_lost_or_dropped_balances() {
        let b = balance(&tally(1000, 880, vec![loss("u", false, 100)], 20, 0));
        assert_eq!((b.missing, b.lost, b.dropped), (120, 100, 20));
        assert_eq!(b.unexplained, 0);
        assert_eq!(b.counted_lost_but_delivered, 0);
        assert!(b.problems.is_empty(), "{:?}", b.problems);
    }

    #[test]
    fn a_loss_nobody_counted_is_unexplained() {
        // 100 counted on the link, 10 more missing that no one counted.
        let b = balance(&tally(1000, 890, vec![loss("u", false, 100)], 0, 512));
        assert_eq!(b.unexplained, 10);
        assert_eq!(b.problems.len(), 1, "{:?}", b.problems);
        assert!(b.problems[0].contains("10 frags unexplained"));
    }

    #[test]
    fn counted_lost_but_delivered_is_reported_within_its_bound_and_a_problem_past_it() {
        let within = balance(&tally(1000, 950, vec![loss("u", false, 70)], 0, 64));
        assert_eq!(within.counted_lost_but_delivered, 20);
        assert_eq!(within.unexplained, 0);
        assert!(within.problems.is_empty(), "{:?}", within.problems);
        let past = balance(&tally(1000, 950, vec![loss("u", false, 70)], 0, 10));
        assert_eq!(past.counted_lost_but_delivered, 20);
        assert_eq!(past.problems.len(), 1, "{:?}", past.problems);
    }

    #[test]
    fn a_loss_on_a_reliable_link_is_a_problem_even_when_counted() {
        let b = balance(&tally(
            1000,
            990,
            vec![loss("r", true, 10), loss("u", false, 0)],
            0,
            0,
        ));
        assert_eq!(b.unexplained, 0);
        assert_eq!(b.problems.len(), 1, "{:?}", b.problems);
        assert!(b.problems[0].contains("reliable link r lost 10"));
    }

    #[test]
    fn more_delivered_than_sent_is_a_problem() {
        let b = balance(&tally(10, 11, vec![], 0, 0));
        assert_eq!(b.missing, 0);
        assert!(
            b.problems[0].contains("recorded 11 ids"),
            "{:?}",
            b.problems
        );
    }
}
