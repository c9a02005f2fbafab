//! Waiting on file descriptors: the one poll(2) loop the control loop, the
//! gdb session and the device threads share.

use std::os::fd::RawFd;
use std::time::Duration;

/// Blocks until one of `fds` is readable (or `timeout` passes); returns
/// which are. A descriptor closed meanwhile counts as ready (POLLNVAL).
pub fn readable(fds: &[RawFd], timeout: Option<Duration>) -> std::io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    loop {
        // SAFETY: `pfds` is a valid array of pollfd for its whole length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if n >= 0 {
            return Ok(pfds.iter().map(|p| p.revents != 0).collect());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
