//! Each marker test fails if the guest still holds a file an earlier test
//! made; `breaks_the_shell` removes /bin/sh, which `needs_a_shell` (listed, and so run, after it) needs;
//! `deliberately_fails` must be reported as failed; `ignored_by_default`
//! runs only with --ignored / --include-ignored.

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    const MARKER: &str = "/root/isolation-marker";

    fn leave_a_marker(test: &str) {
        assert!(
            !Path::new(MARKER).exists(),
            "{test}: the marker of an earlier test is here: {:?}",
            std::fs::read_to_string(MARKER)
        );
        std::fs::write(MARKER, test).unwrap();
    }

    #[test]
    fn marker_one() {
        leave_a_marker("marker_one");
    }

    #[test]
    fn marker_two() {
        leave_a_marker("marker_two");
    }

    #[test]
    fn marker_three() {
        leave_a_marker("marker_three");
    }

    #[test]
    fn breaks_the_shell() {
        leave_a_marker("breaks_the_shell");
        std::fs::remove_file("/bin/sh").unwrap();
    }

    #[test]
    fn needs_a_shell() {
        leave_a_marker("needs_a_shell");
        let status = Command::new("/bin/sh").args(["-c", "exit 0"]).status().unwrap();
        assert!(status.success());
    }

    #[test]
    fn sees_the_setup() {
        assert_eq!(std::fs::read_to_string("/root/from-setup").unwrap(), "set up\n");
    }

    #[test]
    fn deliberately_fails() {
        let sum = 1 + 1;
        assert_eq!(sum, 3, "deliberately wrong arithmetic"); /* MARK:deliberately-fails */
    }

    #[test]
    #[ignore]
    fn ignored_by_default() {
        leave_a_marker("ignored_by_default");
    }
}
