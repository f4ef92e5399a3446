//! npm packages for tests that validate files with them: a `node_modules` under the target dir,
//! installed on first use with pinned versions from the npm registry and then reused. Built in
//! a private directory and renamed into place, like the Python venvs (python.rs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::require_tool;

/// The CRD schemas of Argo Rollouts and prometheus-operator as the kubernetes-models project
/// publishes them (generated from the projects' own CRD/OpenAPI definitions).
pub const CRD_PACKAGES: &[&str] =
    &["@kubernetes-models/argo-rollouts@2.0.0", "@kubernetes-models/prometheus-operator@6.0.0"];

/// A directory with `node_modules` holding `CRD_PACKAGES`; ES modules placed in it can import them.
pub fn crd_models() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| install("crd-models-npm", CRD_PACKAGES)).clone()
}

/// The `node` binary, with an install hint when it is missing.
pub fn node() -> PathBuf {
    require_tool("node", "nodejs")
}

fn installed(dir: &Path, wanted: &str) -> bool {
    std::fs::read_to_string(dir.join("redline-packages.txt")).is_ok_and(|s| s == wanted)
}

fn install(name: &str, packages: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let wanted = packages.join("\n");
    if installed(&dir, &wanted) {
        return dir;
    }
    let npm = require_tool("npm", "npm");
    let tmp = dir.with_file_name(format!("{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("create npm dir");
    std::fs::write(tmp.join("package.json"), "{\"private\": true}\n").expect("write package.json");
    let out = Command::new(npm)
        .args(["install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error", "--prefix"])
        .arg(&tmp)
        .args(packages)
        .output()
        .expect("run npm");
    assert!(
        out.status.success(),
        "npm install {} failed (needs the npm registry):\n{}",
        packages.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(tmp.join("redline-packages.txt"), &wanted).expect("write npm stamp");
    if dir.exists() && !installed(&dir, &wanted) {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(installed(&dir, &wanted), "npm packages missing in {}", dir.display());
    dir
}

/// playwright-core (the library without its browser downloads), to drive Debian's Chromium.
pub const PLAYWRIGHT_PACKAGES: &[&str] = &["playwright-core@1.65.2"];

/// A directory with `node_modules` holding `PLAYWRIGHT_PACKAGES`; scripts run from it can import them.
pub fn playwright() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| install("playwright-npm", PLAYWRIGHT_PACKAGES)).clone()
}
