//! Asking the kernel whether a user may use paths: `faccessat(2)` with
//! `AT_EACCESS`, in this process when it already is that user, else (as
//! root) in a child that takes the user's identity and reports back over
//! a pipe.

use std::ffi::CString;
use std::io::Read as _;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{AccessFlags, ForkResult, Gid, Uid};

use super::Who;

/// One answer on the wire: the errno (0: allowed), native-endian `i32`.
const ANSWER: usize = 4;

/// The kernel's answer to each `(path, mode)` as `who` would get it.
/// `Err` when it cannot be asked on `who`'s behalf.
pub(super) fn ask(
    who: &Who,
    questions: &[(CString, AccessFlags)],
) -> Result<Vec<Result<(), Errno>>, String> {
    let me = nix::unistd::geteuid();
    if me.as_raw() == who.uid {
        return Ok(questions.iter().map(|(p, m)| access(p, *m)).collect());
    }
    if !me.is_root() {
        return Err(format!(
            "--user {}: only root can check on another user's behalf (run it as root, or as {} without --user)",
            who.name, who.name
        ));
    }
    ask_as(who, questions)
}

/// `faccessat(AT_FDCWD, path, mode, AT_EACCESS)`. Allocates nothing, so
/// the forked child may call it.
fn access(path: &CString, mode: AccessFlags) -> Result<(), Errno> {
    nix::unistd::faccessat(AT_FDCWD, path.as_c_str(), mode, AtFlags::AT_EACCESS)
}

/// [`ask`] through a child that becomes `who`.
#[allow(
    unsafe_code,
    reason = "fork(2) and _exit(2): the child process that takes the user's identity"
)]
fn ask_as(
    who: &Who,
    questions: &[(CString, AccessFlags)],
) -> Result<Vec<Result<(), Errno>>, String> {
    // Everything the child needs is prepared here: after fork() it may
    // only make async-signal-safe calls (no allocation, no locks).
    let groups: Vec<Gid> = who.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    let gid = Gid::from_raw(who.gid);
    let uid = Uid::from_raw(who.uid);
    let (rd, wr) = nix::unistd::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    // SAFETY: the child only calls setgroups, setgid, setuid, faccessat,
    // write, close and _exit (all async-signal-safe system calls), on
    // values prepared before the fork; it allocates nothing and takes no
    // lock, so the other threads' state it inherits does not matter.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            drop(rd);
            child(&groups, gid, uid, questions, &wr);
            // SAFETY: _exit(2) ends the child without running the
            // parent's atexit handlers or destructors (async-signal-safe).
            unsafe { libc::_exit(0) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(wr);
            let mut bytes = Vec::with_capacity((questions.len() + 1) * ANSWER);
            let read = std::fs::File::from(rd).read_to_end(&mut bytes);
            let status = loop {
                match waitpid(child, None) {
                    Err(Errno::EINTR) => continue,
                    other => break other,
                }
            };
            read.map_err(|e| format!("cannot read the checking process's answers: {e}"))?;
            match status {
                Ok(WaitStatus::Exited(_, 0)) => {}
                Ok(s) => return Err(format!("the checking process failed ({s:?})")),
                Err(e) => return Err(format!("cannot wait for the checking process: {e}")),
            }
            decode(&bytes, questions.len()).map_err(|why| format!("user {}: {why}", who.name))
        }
        Err(e) => Err(format!("cannot start the checking process: {e}")),
    }
}

/// The child's work: become the user (the first answer is how that
/// went), then one answer per question. Async-signal-safe only.
fn child(groups: &[Gid], gid: Gid, uid: Uid, questions: &[(CString, AccessFlags)], wr: &OwnedFd) {
    let became = nix::unistd::setgroups(groups)
        .and_then(|()| nix::unistd::setgid(gid))
        .and_then(|()| nix::unistd::setuid(uid));
    if !send(wr, errno_of(became)) || became.is_err() {
        return;
    }
    for (path, mode) in questions {
        if !send(wr, errno_of(access(path, *mode))) {
            return;
        }
    }
}

/// 0 for `Ok`, else the errno.
fn errno_of(r: Result<(), Errno>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e as i32,
    }
}

/// Writes one answer whole; false when the pipe refuses.
fn send(wr: &OwnedFd, errno: i32) -> bool {
    let bytes = errno.to_ne_bytes();
    let mut sent = 0;
    while sent < bytes.len() {
        match nix::unistd::write(wr.as_fd(), &bytes[sent..]) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// The child's bytes as answers: the identity change first, then `n`
/// answers.
fn decode(bytes: &[u8], n: usize) -> Result<Vec<Result<(), Errno>>, String> {
    let mut words = bytes
        .chunks_exact(ANSWER)
        .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    match words.next() {
        None => return Err("the checking process answered nothing".into()),
        Some(0) => {}
        Some(e) => {
            return Err(format!(
                "cannot take that user's identity: {}",
                Errno::from_raw(e).desc()
            ));
        }
    }
    let answers: Vec<Result<(), Errno>> = words
        .map(|e| {
            if e == 0 {
                Ok(())
            } else {
                Err(Errno::from_raw(e))
            }
        })
        .collect();
    if answers.len() != n || !bytes.len().is_multiple_of(ANSWER) {
        return Err(format!(
            "the checking process gave {} answers to {n} questions",
            answers.len()
        ));
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::decode;

    fn bytes(words: &[i32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    #[test]
    fn the_childs_answers_are_decoded_in_order() {
        let got = decode(
            &bytes(&[0, 0, Errno::EACCES as i32, Errno::EROFS as i32]),
            3,
        )
        .unwrap();
        assert_eq!(got, vec![Ok(()), Err(Errno::EACCES), Err(Errno::EROFS)]);
    }

    #[test]
    fn a_failed_identity_change_or_short_answers_are_errors() {
        let e = decode(&bytes(&[Errno::EPERM as i32]), 2).unwrap_err();
        assert!(e.contains("cannot take that user's identity"), "{e}");
        let e = decode(&bytes(&[0, 0]), 2).unwrap_err();
        assert!(e.contains("1 answers to 2"), "{e}");
        assert!(decode(&[], 0).is_err());
        // A torn last word.
        assert!(decode(&[0, 0, 0, 0, 0, 0], 0).is_err());
    }
}
