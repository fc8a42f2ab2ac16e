//! The command line's conventions: `--help` on stdout with exit 0 for the
//! binary and every subcommand, `--version`, and unknown flags or bad
//! values refused with exit 2, naming the flag, before anything runs.

use std::process::{Command, Output};

fn tilewire(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tilewire"))
        .args(args)
        .output()
        .expect("running tilewire")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const COMMANDS: &[&[&str]] = &[
    &[],
    &["demo"],
    &["run"],
    &["tile"],
    &["monitor"],
    &["soak"],
    &["shmem"],
    &["shmem", "ls"],
    &["shmem", "info"],
    &["shmem", "rm"],
];

#[test]
fn every_command_has_help_on_stdout_and_exits_0() {
    for cmd in COMMANDS {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = tilewire(&args);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(stdout.contains("Usage: tilewire"), "{args:?}: {stdout}");
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
    // The demo's help names every fixture class --mix takes.
    let demo = text(&tilewire(&["demo", "--help"]).stdout);
    for class in ["txn", "shred", "malformed", "ipv6_udp", "vlan"] {
        assert!(demo.contains(class), "{demo}");
    }
}

#[test]
fn version_is_printed() {
    let out = tilewire(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("tilewire {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_flags_and_bad_values_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["demo", "--rate", "0"], "--rate"),
        (&["demo", "--rate", "lots"], "--rate"),
        (&["demo", "--duration", "0"], "--duration"),
        (&["demo", "--rate", "-5"], "--rate"),
        (&["run", "topo.toml", "--duration", "-1"], "--duration"),
        (&["run"], "<TOPOLOGY>"),
        (&["tile", "--workspace", "w"], "--name"),
        (
            &["tile", "--workspace", "w", "--name", "t", "--parent", "x"],
            "--parent",
        ),
        (&["monitor", "w", "--interval-ms", "0"], "--interval-ms"),
        (
            &["monitor", "w", "--prometheus", "0.0.0.0:9100"],
            "--prometheus",
        ),
        (
            &["monitor", "w", "--once", "--prometheus", "127.0.0.1:0"],
            "--once",
        ),
        (&["soak", "--rate", "0"], "--rate"),
        (&["soak", "--duration", "-1"], "--duration"),
        (&["soak", "--kill-every", "0"], "--kill-every"),
        (&["soak", "--seed", "x"], "--seed"),
        (&["shmem", "rm"], "<WORKSPACES>"),
        (&["shmem", "ls", "--force"], "--force"),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, flag) in cases {
        let out = tilewire(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?} names {flag}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
}

#[test]
fn bench_says_where_the_benchmarks_went_and_fails() {
    for args in [
        &["bench"][..],
        &["bench", "link"],
        &["bench", "pipeline", "--quick", "--json"],
        &["bench", "--help"],
    ] {
        let out = tilewire(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cargo run --release -p tilewire-bench --"),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
    let help = text(&tilewire(&["--help"]).stdout);
    assert!(!help.contains("bench"), "{help}");
}

#[test]
fn the_runner_logs_each_tiles_start_and_end_with_its_name() {
    let topo = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pipeline/tests/topos/gen_forward_sink.toml"
    );
    let quiet = tilewire(&["run", topo, "--duration", "0.3", "--quiet"]);
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    assert!(
        !text(&quiet.stderr).contains("tile thread started"),
        "warnings only by default"
    );
    let out = tilewire(&[
        "--log-level",
        "info",
        "run",
        topo,
        "--duration",
        "0.3",
        "--quiet",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The topology names no cpu or group: on a machine with fewer cpus
    // than tiles they share one thread, whose start names them all.
    for tile in ["gen", "forward", "sink"] {
        assert!(
            stderr.lines().any(|l| {
                (l.contains("tile thread started") && l.contains(&format!("tile={tile}")))
                    || (l.contains("group thread started") && l.contains(&format!("\"{tile}\"")))
            }),
            "start of {tile}: {stderr}"
        );
        for event in ["asked to drain its inputs and stop", "tile halted"] {
            assert!(
                stderr
                    .lines()
                    .any(|l| l.contains(event) && l.contains(&format!("tile={tile}"))),
                "{event} for {tile}: {stderr}"
            );
        }
    }
    assert!(
        !stderr.contains('\u{1b}'),
        "no colours when stderr is not a terminal"
    );
}
