//! The bench binary's conventions, as the `tilewire` binary's: `--help`
//! on stdout with exit 0 for the binary and every bench, `--version`, and
//! unknown flags or bad values refused with exit 2, naming the flag,
//! before anything runs.

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tilewire-bench"))
        .args(args)
        .output()
        .expect("running tilewire-bench")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const COMMANDS: &[&[&str]] = &[&[], &["link"], &["udp"], &["xdp"], &["pipeline"]];

#[test]
fn every_bench_has_help_on_stdout_and_exits_0() {
    for cmd in COMMANDS {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = bench(&args);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains("Usage: tilewire-bench"),
            "{args:?}: {stdout}"
        );
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn version_is_printed() {
    let out = bench(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("tilewire-bench {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_flags_and_bad_values_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        // A bench never runs on a mistyped flag.
        (&["link", "--jsno"], "--jsno"),
        (&["nope"], "nope"),
        (&["pipeline", "--duration", "0"], "--duration"),
        (&["pipeline", "--engine", "dpdk"], "--engine"),
        (&["pipeline", "--rate", "5"], "--rate"),
    ];
    for (args, flag) in cases {
        let out = bench(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?} names {flag}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
}
