//! Whether a process is still there: the allocator lock's owner check and
//! a monitor's creator check.
#![allow(unsafe_code)] // kill(pid, 0); the use says why it is sound

use std::io;

/// True if process `pid` exists (in this pid namespace), zombies included:
/// what a lock's owner check needs. [`pid_alive`] also says no to zombies.
pub(crate) fn pid_exists(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// True if process `pid` exists and is not a zombie, judged from `/proc`
/// (in this process's pid namespace). Where `/proc` is not mounted nothing
/// can be told and every pid counts as alive: the heartbeat still tells.
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let proc_root = std::path::Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    match std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) {
        // The state is the first field after the command, which is in
        // parentheses and may itself hold spaces and parentheses.
        Ok(stat) => match stat.rfind(')') {
            Some(end) => !matches!(stat[end + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}
