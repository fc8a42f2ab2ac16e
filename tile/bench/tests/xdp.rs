//! `tilewire-bench xdp --quick --json` end to end, as root (it makes veth
//! pairs in namespaces and attaches XDP programs; otherwise `skipped:
//! needs CAP_NET_ADMIN`): tilewire's AF_XDP rows and mmsg have an IPv4
//! and an IPv6 row in each direction and size, every IPv6 row got packets
//! through and compares with its IPv4 twin, xsk-rs's rows are IPv4's
//! alone, and every received packet passed its check (the command fails
//! otherwise). About half a minute.

mod common;

use tilewire_aio::netns::VethPair;

#[test]
fn bench_xdp_runs_ipv6_beside_ipv4_and_checks_every_packet() {
    // The privileges the bench needs, asked the way every veth test asks.
    let Some(probe) = VethPair::new_or_skip("bxt") else {
        return;
    };
    drop(probe);
    let (rows, _) = common::run_json(&["xdp", "--quick", "--json"]);
    let rows: Vec<serde_json::Value> = rows
        .into_iter()
        .filter(|r| r["bench"] == "xdp_rx" || r["bench"] == "xdp_tx")
        .collect();
    let find = |bench: &str, size: u64, imp: &str, family: &str| {
        let found: Vec<&serde_json::Value> = rows
            .iter()
            .filter(|r| {
                r["bench"] == bench
                    && r["size"] == size
                    && r["impl"] == imp
                    && r["family"] == family
            })
            .collect();
        assert!(found.len() <= 1, "{bench} {size} {imp} {family}: {found:?}");
        found.first().copied()
    };
    for bench in ["xdp_rx", "xdp_tx"] {
        for size in [64, 1232] {
            for imp in ["tilewire-xdp-skb", "tilewire-xdp-drv", "mmsg"] {
                let what = format!("{bench} {size} B {imp}");
                let v4 = find(bench, size, imp, "ipv4").unwrap_or_else(|| panic!("{what} ipv4"));
                let v6 = find(bench, size, imp, "ipv6").unwrap_or_else(|| panic!("{what} ipv6"));
                for r in [v4, v6] {
                    assert!(r["rate_pps"].as_u64().unwrap() > 0, "{what}: {r}");
                    assert!(r["arrived"].as_u64().unwrap() > 0, "{what}: {r}");
                }
                assert!(v4["vs_ipv4"].is_null(), "{what}: {v4}");
                let ratio = v6["vs_ipv4"].as_f64().expect("an IPv6 row has vs_ipv4");
                let want = v6["rate_pps"].as_f64().unwrap() / v4["rate_pps"].as_f64().unwrap();
                assert!(
                    (ratio - want).abs() < 0.01,
                    "{what}: {ratio} against {want}"
                );
                assert!(v6["cpu_vs_ipv4"].as_f64().unwrap() > 0.0, "{what}: {v6}");
            }
            for imp in ["xsk-rs-skb", "xsk-rs-drv"] {
                assert!(find(bench, size, imp, "ipv6").is_none(), "{imp}: IPv4 only");
            }
        }
    }
    for r in &rows {
        assert!(r["family"] == "ipv4" || r["family"] == "ipv6", "{r}");
    }
}
