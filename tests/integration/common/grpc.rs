//! Real gRPC peers for the HTTP/2 proxy tests, from grpcio on PyPI: owns the venv with the
//! pinned grpcio packages, `GrpcServer` (tests/integration/grpc_peers/server.py: service
//! `redline.test.Echo` with raw-bytes messages, plus the standard `grpc.health.v1.Health`)
//! and `call` (tests/integration/grpc_peers/client.py: one RPC per run, reported as one JSON
//! object). The scripts' docstrings list the methods, scenarios and JSON fields.
//!
//! Both block (they run processes): from an async test, run them in `spawn_blocking` when
//! something the test awaits has to make progress meanwhile.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use super::free_port;
use super::python::venv;

/// Pinned, with protobuf (grpcio-health-checking's dependency), so that every machine runs
/// the same gRPC implementation.
pub const PACKAGES: &[&str] = &["grpcio==1.85.3", "grpcio-health-checking==1.85.1", "protobuf==7.36.2"];

/// The python of a venv with the pinned grpcio packages (built on first use, then reused).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| venv("grpc-venv", PACKAGES, "import grpc, grpc_health.v1.health")).clone()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/grpc_peers").join(name)
}

/// server.py on a loopback port; killed on drop. It also exits by itself when this test
/// process dies, as its stdin (held here) then closes.
pub struct GrpcServer {
    pub port: u16,
    child: Child,
    _stdin: ChildStdin,
}

impl GrpcServer {
    /// Starts server.py on a free port with extra `args` (e.g. `["--health", "NOT_SERVING"]`)
    /// and waits for its `READY <port>` line.
    pub fn start(args: &[&str]) -> GrpcServer {
        GrpcServer::start_on(free_port(), args)
    }

    /// As `start`, on `port` (e.g. a stopped server's, to stand in for it).
    pub fn start_on(port: u16, args: &[&str]) -> GrpcServer {
        let mut child = Command::new(python())
            .arg(script("server.py"))
            .args(["--port", &port.to_string(), "--exit-on-eof"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn grpc_peers/server.py");
        let stdin = child.stdin.take().expect("server stdin");

        // Drain both pipes on threads (so that the server never blocks writing), passing the
        // READY line's port (or None at the end of stdout) on.
        let mut err_pipe = child.stderr.take().expect("server stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err_pipe.read_to_string(&mut text);
            text
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        let out_pipe = child.stdout.take().expect("server stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(p) = line.strip_prefix("READY ") {
                    let _ = ready_tx.send(p.trim().parse::<u16>().ok());
                }
            }
            let _ = ready_tx.send(None);
        });

        let why = match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(p)) if p == port => return GrpcServer { port, child, _stdin: stdin },
            Ok(Some(p)) => format!("it says READY {p}"),
            Ok(None) => "it closed stdout without READY".to_string(),
            Err(_) => "no READY within 30s".to_string(),
        };
        let _ = child.kill();
        let status = child.wait();
        drop(stdin);
        let stderr = stderr.join().unwrap_or_default();
        panic!("grpc server on port {port} did not get ready: {why} ({status:?}):\n{stderr}");
    }

    /// Asks for a graceful stop (SIGTERM: GOAWAY, calls in flight finish) and waits for the exit.
    pub fn terminate(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal the grpc server");
        let _ = self.child.wait();
    }

    /// Kills the server at once (SIGKILL): its connections break mid-call.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `127.0.0.1:PORT`: the target for `call` when a test talks to the server directly.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs client.py against `target` (`host:port`) with `args` (options, then a scenario and
/// its arguments, e.g. `["--timeout", "0.2", "sleep", "1000"]`) and returns its JSON report.
/// An RPC error is a report (`code` other than "OK"); a harness failure panics with stderr.
pub fn call(target: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(script("client.py"))
        .args(["--target", target])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run grpc_peers/client.py");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client.py {args:?} failed ({}):\n{stderr}", out.status);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("client.py {args:?} printed no JSON ({e}):\n{}\n{stderr}", String::from_utf8_lossy(&out.stdout))
    })
}

/// The peers answer each other directly (no proxy), as the proxy tests expect them to: a
/// failing call here is the harness's fault, not redline's.
#[test]
fn peers_answer_each_other_directly() {
    let server = GrpcServer::start(&[]);
    let ok = call(&server.target(), &["unary", "hello"]);
    assert_eq!((ok["code"].as_str(), ok["response"].as_str()), (Some("OK"), Some("hello")), "{ok}");
    assert_eq!(ok["trailing_metadata"]["x-echo-trailer"], "5", "{ok}");
    let failed = call(&server.target(), &["fail", "NOT_FOUND:no such thing"]);
    assert_eq!((failed["code"].as_str(), failed["details"].as_str()), (Some("NOT_FOUND"), Some("no such thing")));
    assert_eq!(call(&server.target(), &["health"])["status"], "SERVING");
}
