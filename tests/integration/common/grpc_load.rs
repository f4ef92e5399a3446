//! A steady gRPC load for tests that need traffic over time (the canary judge, dashboards):
//! tests/integration/grpc_peers/load.py, grpcio from PyPI in the venv of [`super::grpc`].

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// tests/integration/grpc_peers/load.py: one call every 20 ms to `target` from `mix` (see the
/// script: e.g. `["8:unary", "1:fail:NOT_FOUND"]`), for at most 150 s, until stopped or dropped.
pub struct GrpcLoad {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl GrpcLoad {
    pub fn start(target: &str, mix: &[&str]) -> GrpcLoad {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/grpc_peers/load.py");
        let mut child = Command::new(super::grpc::python())
            .arg(script)
            .args(["--target", target, "--interval-ms", "20", "--seconds", "150"])
            .args(mix)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn grpc_peers/load.py");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("load stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read load.py");
        assert_eq!(line.trim(), "READY", "load.py on {target} did not connect");
        GrpcLoad { child, stdin, stdout }
    }

    /// Stops the load and returns the calls made per status code name.
    pub fn stop(mut self) -> serde_json::Value {
        drop(self.stdin.take());
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read load.py");
        let _ = self.child.wait();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("load.py summary {line:?}: {e}"))
    }
}

impl Drop for GrpcLoad {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
