//! `tilewire-bench pipeline --quick --duration 0.1 --json` end to end:
//! every cell it can make here (memory and loopback always, veth as
//! root) has a row for both pipelines at each load (saturation, half of
//! it, sustained), every delivered packet passed its
//! check (the command fails otherwise), and in memory, where nothing is
//! lost, each dedup dropped exactly the duplicates that were sent.
//! About ten seconds.

mod common;

#[test]
fn bench_pipeline_runs_every_cell_and_checks_every_packet() {
    let (rows, stderr) = common::run_json(&["pipeline", "--quick", "--duration", "0.1", "--json"]);
    for path in ["memory", "loopback"] {
        for imp in ["tilewire", "agave-style"] {
            let n = rows
                .iter()
                .filter(|r| r["path"] == path && r["impl"] == imp)
                .count();
            assert_eq!(
                n, 3,
                "{path} {imp}: saturation, half of it and sustained rows; {stderr}"
            );
        }
    }
    // As root, over veth too, AF_XDP both ways among them.
    if rows.iter().any(|r| r["path"] == "veth") {
        for imp in [
            "tilewire",
            "tilewire-xdp",
            "tilewire-xdp2way",
            "agave-style",
        ] {
            let n = rows
                .iter()
                .filter(|r| r["path"] == "veth" && r["impl"] == imp)
                .count();
            assert_eq!(n, 3, "veth {imp}: three loads; {stderr}");
        }
    }
    for r in &rows {
        assert_eq!(r["bad"], 0, "{r}");
        assert!(r["delivered"].as_u64().unwrap() > 0, "{r}");
        if r["path"] == "memory" {
            assert_eq!(r["dups_dropped"], r["dups_sent"], "{r}");
            assert_eq!(r["unexplained"], 0, "{r}");
        }
    }
}
