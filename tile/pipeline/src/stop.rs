//! The order a pipeline stops in, so that a stop loses nothing (see
//! [`Pipeline`](crate::Pipeline#a-stop-loses-nothing)).

use crate::topo::strongly_connected;
use crate::Topology;

/// For each tile (by index in the topology): the tiles that must halt
/// before it is asked to stop, and the inputs it drains (bit `i` = input
/// `i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StopPlan {
    pub(crate) before: Vec<Vec<usize>>,
    pub(crate) drain: Vec<u64>,
}

impl StopPlan {
    pub(crate) fn new(topo: &Topology) -> StopPlan {
        let n = topo.tiles.len();
        let index = |name: &str| topo.tiles.iter().position(|t| t.name == name);
        // Every edge producer -> consumer (input i of the consumer), with
        // whether its link is reliable.
        let mut edges: Vec<(usize, usize, usize, bool)> = Vec::new();
        for (c, t) in topo.tiles.iter().enumerate() {
            for (i, link) in t.inputs.iter().enumerate() {
                let Some(p) = topo.producer(link).and_then(|p| index(&p.name)) else {
                    continue;
                };
                let reliable = topo.link(link).is_some_and(|l| l.reliable);
                edges.push((p, c, i, reliable));
            }
        }
        let adj: Vec<Vec<usize>> = (0..n)
            .map(|p| edges.iter().filter(|e| e.0 == p).map(|e| e.1).collect())
            .collect();
        let group = strongly_connected(&adj);
        let mut before = vec![Vec::new(); n];
        let mut drain = vec![0u64; n];
        for &(p, c, i, reliable) in &edges {
            if !reliable && group[p] == group[c] {
                continue;
            }
            if !before[c].contains(&p) && p != c {
                before[c].push(p);
            }
            if i < 64 {
                drain[c] |= 1 << i;
            }
        }
        StopPlan { before, drain }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    fn plan(links: &str, tiles: &str) -> (Topology, StopPlan) {
        let text = format!("[workspace]\nname = \"stop-plan\"\n{links}\n{tiles}");
        let topo = Registry::with_builtins().parse(&text).unwrap();
        let plan = StopPlan::new(&topo);
        (topo, plan)
    }

    #[test]
    fn a_chain_stops_from_its_source() {
        let (_, p) = plan(
            "[[link]]\nname = \"a\"\ndepth = 64\n[[link]]\nname = \"b\"\ndepth = 64\n",
            "[[tile]]\nname = \"g\"\nkind = \"gen\"\noutputs = [\"a\"]\n\
             [[tile]]\nname = \"f\"\nkind = \"forward\"\ninputs = [\"a\"]\noutputs = [\"b\"]\n\
             [[tile]]\nname = \"s\"\nkind = \"sink\"\ninputs = [\"b\"]\n",
        );
        assert_eq!(p.before, vec![vec![], vec![0], vec![1]]);
        assert_eq!(p.drain, vec![0, 1, 1]);
    }

    #[test]
    fn a_cycle_is_broken_at_its_unreliable_link_only() {
        // The demo: net -> (rx, unreliable) -> dedup -> (u) -> echo -> (tx)
        // -> net, and a sink reading u too, outside the cycle.
        let (_, p) = plan(
            "[[link]]\nname = \"rx\"\ndepth = 64\nreliable = false\n\
             [[link]]\nname = \"u\"\ndepth = 64\n[[link]]\nname = \"tx\"\ndepth = 64\n",
            "[[tile]]\nname = \"net\"\nkind = \"forward\"\ninputs = [\"tx\"]\noutputs = [\"rx\"]\n\
             [[tile]]\nname = \"dedup\"\nkind = \"dedup\"\ninputs = [\"rx\"]\noutputs = [\"u\"]\n\
             [[tile]]\nname = \"echo\"\nkind = \"forward\"\ninputs = [\"u\"]\noutputs = [\"tx\"]\n\
             [[tile]]\nname = \"s\"\nkind = \"sink\"\ninputs = [\"u\"]\n",
        );
        // dedup waits for nobody and does not drain rx; echo and the sink
        // drain u once dedup halted; net drains tx once echo halted.
        assert_eq!(p.before, vec![vec![2], vec![], vec![1], vec![1]]);
        assert_eq!(p.drain, vec![1, 0, 1, 1]);
    }

    #[test]
    fn an_unreliable_link_outside_a_cycle_is_drained() {
        let (_, p) = plan(
            "[[link]]\nname = \"a\"\ndepth = 64\nreliable = false\n",
            "[[tile]]\nname = \"g\"\nkind = \"gen\"\noutputs = [\"a\"]\n\
             [[tile]]\nname = \"s\"\nkind = \"sink\"\ninputs = [\"a\"]\n",
        );
        assert_eq!(p.before, vec![vec![], vec![0]]);
        assert_eq!(p.drain, vec![0, 1]);
    }
}
