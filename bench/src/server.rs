//! The two servers as child processes: Quarry (`quarry serve` on a fresh data dir) and
//! the null server (this binary's `null-server`). Each is ready when it prints its
//! `listening on http://ADDR` (or `https://`) line; dropping a `Process` kills it.

use crate::client::{ACCESS_KEY, SECRET_KEY};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Process {
    child: Child,
    pub address: SocketAddr,
}

impl Process {
    pub fn quarry(binary: &Path, data_dir: &Path) -> Result<Process, String> {
        Process::quarry_with(binary, data_dir, &[])
    }

    /// Quarry serving HTTPS with a fresh self-signed certificate for 127.0.0.1; returns
    /// the process and the certificate (PEM), for the client to trust.
    pub fn quarry_tls(binary: &Path, data_dir: &Path) -> Result<(Process, String), String> {
        let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .map_err(|e| format!("certificate: {e}"))?;
        let cert_pem = generated.cert.pem();
        let (cert, key) = (data_dir.with_extension("cert.pem"), data_dir.with_extension("key.pem"));
        std::fs::write(&cert, &cert_pem).map_err(|e| format!("{}: {e}", cert.display()))?;
        std::fs::write(&key, generated.signing_key.serialize_pem()).map_err(|e| format!("{}: {e}", key.display()))?;
        let flags = [OsStr::new("--tls-cert"), cert.as_os_str(), OsStr::new("--tls-key"), key.as_os_str()];
        Ok((Process::quarry_with(binary, data_dir, &flags)?, cert_pem))
    }

    fn quarry_with(binary: &Path, data_dir: &Path, flags: &[&OsStr]) -> Result<Process, String> {
        let log = data_dir.with_extension("log");
        std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
        let mut command = Command::new(binary);
        command
            .args(["serve", "--address", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(flags)
            .env("QUARRY_ACCESS_KEY", ACCESS_KEY)
            .env("QUARRY_SECRET_KEY", SECRET_KEY);
        Process::start(command, &log)
    }

    pub fn null_server(work: &Path) -> Result<Process, String> {
        let this = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut command = Command::new(this);
        command.args(["null-server", "--address", "127.0.0.1:0"]);
        Process::start(command, &work.join("null-server.log"))
    }

    fn start(mut command: Command, log: &Path) -> Result<Process, String> {
        // The log goes to a file: a pipe nobody reads would stall the server.
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("starting {command:?}: {e}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let address = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                return Err(format!("{command:?} exited before listening; see {}", log.display()));
            };
            if let Some(address) =
                line.split("listening on http://").nth(1).or(line.split("listening on https://").nth(1))
            {
                break address.trim().parse::<SocketAddr>().map_err(|e| format!("{line}: {e}"))?;
            }
        };
        // Keep reading stdout so the child never blocks on it.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Process { child, address })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss_bytes(&self) -> u64 {
        rss_bytes(self.pid())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resident set of process `pid` (VmRSS), 0 if it cannot be read.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}
