//! Files that hold production data — the store, run directories, exported windows, task logs
//! and outputs — are created readable by the service's user only: directories 0700, files 0600.
//! Only what the service creates is given these modes; an existing file or directory keeps its
//! own.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` and its missing parents, each 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates (or truncates) `path` as a 0600 file, for writing.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Writes `bytes` to `path`, creating it 0600.
pub fn write_private(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    create_private_file(path)?.write_all(bytes.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn issue_21_new_directories_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("runs/run-1/train");
        create_private_dir(&nested).unwrap();
        assert_eq!(mode(&dir.path().join("runs")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        let file = nested.join("context.json");
        write_private(&file, "{}").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "{}");
    }
}
