//! `tilewire-bench fanout --quick --duration 0.2 --json` end to end, as
//! root (it makes a veth pair between namespaces; otherwise the test
//! prints the line CI counts): every sender has a row, every one of them
//! delivered packets to the peer's addresses and none to a wrong one, and
//! every loss is explained. The multi-buffer sender's packets (a header
//! frame chained to a shared payload frame) arrive whole at the right
//! addresses like the others'. About fifteen seconds.

mod common;

#[test]
fn bench_fanout_runs_every_sender_and_counts_every_packet() {
    // The bench makes its own pair; this one only asks whether it can
    // (and prints the line CI counts when it cannot).
    if tilewire_aio::netns::VethPair::new_or_skip("tfan").is_none() {
        return;
    }
    let (rows, stderr) = common::run_json(&["fanout", "--quick", "--duration", "0.2", "--json"]);
    for imp in [
        "sendmmsg",
        "agave-xdp-style",
        "xdp-multibuf",
        "tilewire",
        "tilewire-2q",
    ] {
        let r = rows
            .iter()
            .find(|r| r["impl"] == imp)
            .unwrap_or_else(|| panic!("no row for {imp}: {stderr}"));
        assert!(r["received"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["wrong_address"], 0, "{r}");
        assert_eq!(r["bad"], 0, "{r}");
        assert_eq!(r["unexplained"], 0, "{r}");
    }
}
