//! Where a `.c1z` is built: a private directory next to the target (`.<name>.work`, mode
//! 0700, its files 0600), held with an exclusive lock so two syncs never write one file. The
//! name is fixed, so a sync that was interrupted (Ctrl-C, SIGKILL, a crash) leaves its work
//! where the next sync of the same file finds it and resumes.

use anyhow::{Context, bail};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct WorkDir {
    path: PathBuf,
    /// Whether this writer created the directory (then there is nothing in it to clear).
    created: bool,
    /// Held (locked) for the writer's life.
    _lock: File,
}

impl WorkDir {
    /// Opens (or creates) the work directory of `target`, in `dir`, and locks it. Leftovers
    /// of older layouts (`.<name>.<random>.work` directories, `.<name>.<random>.tmp` files)
    /// are removed first, at the process's first open of `target`: they hold nothing that can
    /// be resumed.
    pub fn open(dir: &Path, target: &Path) -> anyhow::Result<WorkDir> {
        let name = target.file_name().unwrap_or_default();
        if first_open(&dir.join(name)) {
            remove_stale(dir, name);
        }
        let path = dir.join(dotted(name, ".work"));
        let created = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                restrict(&path, 0o700)?;
                false
            }
            Ok(_) => bail!(
                "{} is in the way of the sync's work directory; remove it",
                path.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_private_dir(&path).with_context(|| {
                    format!(
                        "cannot write .c1z {}: directory {} is not writable",
                        target.display(),
                        dir.display()
                    )
                })?;
                true
            }
            Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
        };
        let lock = lock_handle(&path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => bail!(
                "another sync is writing {} (its work directory {} is in use)",
                target.display(),
                path.display()
            ),
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        Ok(WorkDir {
            path,
            created,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The work database's file.
    pub fn db(&self) -> PathBuf {
        self.path.join("db")
    }

    /// Removes everything but the lock, for a fresh start.
    pub fn clear(&self) -> anyhow::Result<()> {
        if self.created {
            return Ok(());
        }
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            if entry.file_name() == "lock" {
                continue;
            }
            let p = entry.path();
            let removed = if entry.file_type()?.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            removed.with_context(|| format!("removing {}", p.display()))?;
        }
        Ok(())
    }

    /// Removes the directory (the sync finished, or left nothing worth resuming).
    pub fn remove(self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// What is locked to hold the work directory: the directory itself where it can be (one
/// file fewer to create per sync: creating files was a small sync's largest cost after
/// SQLite), else a `lock` file in it.
fn lock_handle(path: &Path) -> anyhow::Result<File> {
    #[cfg(unix)]
    {
        File::open(path).with_context(|| format!("opening {}", path.display()))
    }
    #[cfg(not(unix))]
    {
        private_file(&path.join("lock"))
    }
}

/// `.<name><suffix>`.
pub(crate) fn dotted(name: &std::ffi::OsStr, suffix: &str) -> OsString {
    let mut p = OsString::from(".");
    p.push(name);
    p.push(suffix);
    p
}

/// Creates `path` (mode 0600 on unix) if it does not exist, and opens it for writing.
pub(crate) fn private_file(path: &Path) -> anyhow::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true).read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    restrict(path, 0o600)?;
    Ok(file)
}

fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Sets `path`'s mode (unix only): identity data is readable by its owner only.
fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("restricting {} to its owner", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Whether this process opens `target`'s work directory for the first time. Leftovers are
/// looked for then only: the look reads the whole directory, which a many-tenant host shares
/// among all its tenants' files, and this process leaves none behind but by crashing.
fn first_open(target: &Path) -> bool {
    static OPENED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    OPENED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(target.to_path_buf())
}

/// Removes `.<name>.*.work` directories and `.<name>.*.tmp` files left by interrupted runs of
/// older versions or of the final packaging step (never the fixed `.<name>.work`).
fn remove_stale(dir: &Path, name: &std::ffi::OsStr) {
    let Some(name) = name.to_str() else { return };
    let prefix = format!(".{name}.");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let stale_dir = rest.ends_with(".work") && rest != "work";
        let stale_tmp = rest.ends_with(".tmp");
        if stale_dir {
            let _ = fs::remove_dir_all(entry.path());
        } else if stale_tmp {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What interrupted runs left beside a file (an older version's work directory, the temp
    /// file of a write cut short) goes when its work directory is first opened; other files'
    /// leftovers and unrelated files stay.
    #[test]
    fn leftovers_of_interrupted_runs_go_at_the_first_open() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for stale in [".sync.c1z.x1y2z3.work", ".other.c1z.a1b2c3.work"] {
            fs::create_dir(d.join(stale)).unwrap();
        }
        for file in [".sync.c1z.k9j8.tmp", "notes.txt"] {
            fs::write(d.join(file), b"x").unwrap();
        }
        let work = WorkDir::open(d, &d.join("sync.c1z")).unwrap();
        let mut left: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [".other.c1z.a1b2c3.work", ".sync.c1z.work", "notes.txt"]
        );
        drop(work);
    }
}
