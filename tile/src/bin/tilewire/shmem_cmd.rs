//! `tilewire shmem` (to be written).

/// Runs the command with the arguments after its name.
pub fn run(args: &[String]) -> Result<(), String> {
    let _ = args;
    Err("not written yet".into())
}
