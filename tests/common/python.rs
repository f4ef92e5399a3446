//! A Python with coverage.py and scipy, for tests that compare redline with them: the
//! interpreter named by `REDLINE_TEST_PYTHON`, or else a venv under the target dir that is
//! created on first use with pinned versions from PyPI (about 30 s once, then reused).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Pinned so that every machine compares against the same tool versions.
pub const PACKAGES: &[&str] = &["coverage==7.17.3", "scipy==1.17.1"];

/// The Python interpreter to run `python -m coverage` and scipy with.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(find_or_create).clone()
}

fn has_packages(python: &Path) -> bool {
    Command::new(python).args(["-c", "import coverage, scipy.stats"]).output().is_ok_and(|o| o.status.success())
}

fn find_or_create() -> PathBuf {
    if let Some(p) = std::env::var_os("REDLINE_TEST_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            has_packages(&p),
            "REDLINE_TEST_PYTHON={} cannot import coverage and scipy: run `{} -m pip install {}`",
            p.display(),
            p.display(),
            PACKAGES.join(" ")
        );
        return p;
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-venv");
    let stamp = venv.join("redline-packages.txt");
    let python = venv.join("bin").join("python");
    let wanted = PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) && has_packages(&python) {
        return python;
    }

    // Build in a private directory and rename it into place, so that test binaries running at
    // the same time never see a half-installed venv; whoever renames first wins.
    let base = super::require_tool("python3", "python3 python3-venv");
    let tmp = venv.with_file_name(format!("python-venv.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let out = Command::new(&base).arg("-m").arg("venv").arg(&tmp).output().expect("run python3 -m venv");
    assert!(
        out.status.success(),
        "python3 -m venv failed (install it: `apt-get install -y python3-venv`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(tmp.join("bin").join("python"))
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(PACKAGES)
        .output()
        .expect("run pip");
    assert!(
        out.status.success(),
        "pip install {} failed (needs PyPI; or point REDLINE_TEST_PYTHON at a python that has them):\n{}",
        PACKAGES.join(" "),
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
    assert!(has_packages(&python), "the venv at {} cannot import coverage and scipy", venv.display());
    python
}
