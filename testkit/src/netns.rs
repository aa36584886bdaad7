//! Network namespaces for tests that need a network of their own (firewall rules, loss):
//! whatever a test does inside one never touches the machine's network. Needs root,
//! iproute2 and, for rules, nftables; a missing tool fails the test, it never skips.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};

/// A network namespace with its loopback up, deleted (rules and all) when dropped.
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates namespace `name`; the name must be unique on the machine (carry the test's
    /// own word and a process id or random part).
    pub fn new(name: &str) -> Self {
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "`ip {}` failed: this test needs root and iproute2 (scripts/test installs it)",
                args.join(" ")
            );
        };
        ip(&["netns", "add", name]);
        let ns = Namespace {
            name: name.to_owned(),
        };
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program` run inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Applies an nftables ruleset with `nft -f -`: `Command::new("nft")` for this process's
/// namespace, `ns.command("nft")` for another.
pub fn nft(mut nft: Command, ruleset: &str) {
    let mut child = nft
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft runs (scripts/test installs nftables)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(ruleset.as_bytes())
        .expect("ruleset written");
    assert!(child.wait().expect("nft ends").success(), "{ruleset}");
}
