//! The demo's working directory: where it is, whether it may be used, and what goes in it.
//!
//! Invariant: the demo deletes nothing it did not create. A directory is cleared only when it
//! carries [`MARKER`], which the demo writes into every directory it makes; an empty directory is
//! used as it is; anything else is refused before a single file is touched. Whatever the marker
//! says, the demo never clears `/`, the home directory, the current directory or one of its
//! ancestors. A relative `--dir` is relative to the current directory, never to the build
//! directory, and the example configuration comes from the binary itself, so the demo runs from
//! anywhere with nothing but the binary.

use std::path::{Path, PathBuf};

use super::DemoError;

/// The file that marks a directory as the demo's own (safe to clear on the next run).
pub const MARKER: &str = ".driftgate-demo";

/// What the marker file says, for a person who finds it.
const MARKER_TEXT: &str = "This directory was created by `driftgate demo`; the next demo run \
                           with the same --dir clears it.\n";

/// The example configuration, built into the binary: (path inside the working directory,
/// contents). The baseline is not among them: the demo builds its own from the training set it
/// generates, as `driftgate baseline build` would.
const EXAMPLE_FILES: [(&str, &str); 3] = [
    (
        "config/driftgate.toml",
        include_str!("../../config/driftgate.toml"),
    ),
    (
        "config/policies/payments.toml",
        include_str!("../../config/policies/payments.toml"),
    ),
    (
        "config/dags/retrain.toml",
        include_str!("../../config/dags/retrain.toml"),
    ),
];

/// Directories the demo fills besides the configuration's.
const WORK_DIRS: [&str; 2] = ["config/baselines", "var/training"];

/// Makes `dir` the demo's fresh working directory with the example configuration in it, and
/// returns its absolute path. Refuses (touching nothing) a directory it may not clear.
pub fn prepare(dir: &Path) -> Result<PathBuf, DemoError> {
    let here = std::env::current_dir()
        .map_err(|err| DemoError::Failed(format!("no working directory: {err}")))?;
    let dir = claim(dir, &here)?;
    for sub in WORK_DIRS {
        create_dir(&dir.join(sub))?;
    }
    for (path, text) in EXAMPLE_FILES {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            create_dir(parent)?;
        }
        std::fs::write(&path, text)
            .map_err(|err| DemoError::Failed(format!("cannot write {}: {err}", path.display())))?;
    }
    Ok(dir)
}

/// Checks that `dir` may be the demo's and leaves it empty but for the marker.
fn claim(dir: &Path, here: &Path) -> Result<PathBuf, DemoError> {
    if dir.as_os_str().is_empty() {
        return Err(refuse(dir, "the path is empty"));
    }
    let absolute = here.join(dir);
    if !absolute.exists() {
        create_dir(&absolute)?;
        write_marker(&absolute)?;
        return canonical(&absolute);
    }
    let absolute = canonical(&absolute)?;
    refuse_protected(dir, &absolute, here)?;
    if !absolute.is_dir() {
        return Err(refuse(dir, "it is not a directory"));
    }
    if absolute.join(MARKER).is_file() {
        clear(&absolute)?;
    } else if !is_empty(&absolute)? {
        return Err(refuse(
            dir,
            &format!("it is not empty and was not created by the demo (no {MARKER} in it); name a new or empty directory"),
        ));
    }
    write_marker(&absolute)?;
    Ok(absolute)
}

/// `/`, the home directory, the current directory and its ancestors are never the demo's.
fn refuse_protected(asked: &Path, dir: &Path, here: &Path) -> Result<(), DemoError> {
    if dir.parent().is_none() {
        return Err(refuse(asked, "it is the root directory"));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if let Some(home) = home.and_then(|h| h.canonicalize().ok()) {
        if dir == home {
            return Err(refuse(asked, "it is the home directory"));
        }
    }
    let here = here.canonicalize().unwrap_or_else(|_| here.to_path_buf());
    if here.starts_with(dir) {
        return Err(refuse(
            asked,
            "it is the current directory or one of its parents",
        ));
    }
    Ok(())
}

fn refuse(dir: &Path, why: &str) -> DemoError {
    DemoError::Refused(format!(
        "refusing to use {} as the demo directory: {why}",
        dir.display()
    ))
}

/// Removes everything inside a marked directory (the directory itself stays).
fn clear(dir: &Path) -> Result<(), DemoError> {
    let failed = |err: std::io::Error| {
        DemoError::Failed(format!(
            "cannot clear the demo directory {}: {err}",
            dir.display()
        ))
    };
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        // file_type does not follow links: a link is removed, never what it points at.
        if entry.file_type().map_err(failed)?.is_dir() {
            std::fs::remove_dir_all(entry.path()).map_err(failed)?;
        } else {
            std::fs::remove_file(entry.path()).map_err(failed)?;
        }
    }
    Ok(())
}

fn is_empty(dir: &Path) -> Result<bool, DemoError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|err| DemoError::Failed(format!("cannot list {}: {err}", dir.display())))?;
    Ok(entries.next().is_none())
}

fn write_marker(dir: &Path) -> Result<(), DemoError> {
    std::fs::write(dir.join(MARKER), MARKER_TEXT).map_err(|err| {
        DemoError::Failed(format!(
            "cannot mark {} as the demo's: {err}",
            dir.display()
        ))
    })
}

fn create_dir(dir: &Path) -> Result<(), DemoError> {
    std::fs::create_dir_all(dir)
        .map_err(|err| DemoError::Failed(format!("cannot create {}: {err}", dir.display())))
}

fn canonical(dir: &Path) -> Result<PathBuf, DemoError> {
    dir.canonicalize()
        .map_err(|err| DemoError::Failed(format!("cannot resolve {}: {err}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(result: Result<PathBuf, DemoError>) -> String {
        match result {
            Err(DemoError::Refused(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_new_directory_is_created_and_marked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = claim(Path::new("fresh/demo"), tmp.path()).unwrap();
        assert!(dir.join(MARKER).is_file());
        assert!(dir.starts_with(tmp.path().canonicalize().unwrap()));
    }

    #[test]
    fn a_marked_directory_is_cleared_an_empty_one_used() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = claim(Path::new("demo"), tmp.path()).unwrap();
        std::fs::create_dir(dir.join("var")).unwrap();
        std::fs::write(dir.join("var/old.txt"), "old").unwrap();
        claim(Path::new("demo"), tmp.path()).unwrap();
        assert!(!dir.join("var").exists());
        std::fs::create_dir(tmp.path().join("empty")).unwrap();
        assert!(claim(Path::new("empty"), tmp.path()).is_ok());
    }

    #[test]
    fn issue_14_a_directory_with_foreign_files_is_refused_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("mine")).unwrap();
        std::fs::write(tmp.path().join("mine/keep.txt"), "precious").unwrap();
        let message = refused(claim(Path::new("mine"), tmp.path()));
        assert!(message.contains("not created by the demo"), "{message}");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("mine/keep.txt")).unwrap(),
            "precious"
        );
    }

    #[test]
    fn issue_14_current_directory_parents_root_and_home_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let here = tmp.path().join("a/b");
        std::fs::create_dir_all(&here).unwrap();
        std::fs::write(here.join(MARKER), "").unwrap();
        std::fs::write(tmp.path().join("a").join(MARKER), "").unwrap();
        assert!(refused(claim(Path::new("."), &here)).contains("current directory"));
        assert!(refused(claim(Path::new(".."), &here)).contains("parents"));
        assert!(refused(claim(&tmp.path().join("a"), &here)).contains("parents"));
        assert!(refused(claim(Path::new("/"), &here)).contains("root"));
        if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
            if home.is_dir() && !here.starts_with(&home) {
                assert!(refused(claim(&home, &here)).contains("home"));
            }
        }
        assert!(here.join(MARKER).is_file(), "nothing was touched");
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("file"), "x").unwrap();
        assert!(refused(claim(Path::new("file"), tmp.path())).contains("not a directory"));
    }

    #[cfg(unix)]
    #[test]
    fn clearing_removes_links_never_their_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep.txt"), "keep").unwrap();
        let dir = claim(Path::new("demo"), tmp.path()).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        claim(Path::new("demo"), tmp.path()).unwrap();
        assert!(!dir.join("link").exists());
        assert!(outside.join("keep.txt").is_file());
    }
}
