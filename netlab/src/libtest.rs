//! Reading libtest's output: the `test result:` lines of test binaries that
//! xtask and the guest stage run.

/// Test counts gathered from libtest's `test result:` lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TestCounts {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl TestCounts {
    /// Adds `test result: ok. 3 passed; 1 failed; 2 ignored; ...`; other
    /// lines are ignored.
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().filter(|w| !w.ends_with('.'));
            let (Some(n), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TestCounts;

    #[test]
    fn counts_libtest_result_lines() {
        let mut c = TestCounts::default();
        c.add_line("test result: ok. 3 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        c.add_line("test result: FAILED. 1 passed; 4 failed; 0 ignored; 0 measured; 0 filtered out");
        c.add_line("running 5 tests");
        assert_eq!((c.passed, c.failed, c.ignored), (4, 4, 2));
    }
}
