//! The files a node writes for itself (SPEC §3.11): the config write-back,
//! the blacklist snapshot, the identity providers' last good key sets, and
//! the last config applied from etcd.
//!
//! Every one is written the same way ([`write_private`]): a new file with
//! an unpredictable name, created exclusively (never through a file or a
//! symbolic link someone else planted) with owner-only permissions, synced,
//! renamed over the old one, and the directory synced. A crash leaves the
//! old file or the new one, never a mix; a local user who can write to the
//! directory cannot make the gateway write through their file.
//!
//! What this crate does not do: decide what goes into a file, or when.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A node's state directory (`state_dir`) and the names of what lives in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory (owner-only when it is new).
    pub fn ensure(&self) -> std::io::Result<()> {
        create_private_dir(&self.root)
    }

    /// The last blacklist this node saw of a shared (Redis) store.
    pub fn blacklist_snapshot(&self) -> PathBuf {
        self.root.join("blacklist.snapshot")
    }

    /// The last good key set of identity provider `name`.
    pub fn provider_keys(&self, name: &str) -> PathBuf {
        self.root
            .join("providers")
            .join(format!("{}.jwks.json", file_safe(name)))
    }

    /// The last configuration applied from etcd.
    pub fn etcd_config(&self) -> PathBuf {
        self.root.join("etcd-config.json")
    }

    /// The routes and providers of the config a node ran from its file
    /// while it held protected policies.
    pub fn protected_policies(&self) -> PathBuf {
        self.root.join("protected-policies.json")
    }
}

/// `name` with every byte outside `[A-Za-z0-9._-]` escaped as `%XX`, so that
/// no name can climb out of its directory or collide with another.
fn file_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') || (b == b'.' && !out.is_empty()) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Creates `dir` and its missing parents; a directory this call creates is
/// owner-only (`0700`).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Replaces `path` with `bytes`, atomically, as a private file (`0600`).
/// Creates the parent directory if it is missing.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_private(path, bytes, || true, false).map(|_| ())
}

/// [`write_private`] for a file an operator keeps (the config's
/// write-back), if `still()` says so once the new file is on disk, right
/// before it replaces `path` (whose owner may have changed it in the
/// meantime). The new file keeps the owner and group of the regular file
/// it replaces where the process may give them. `Ok(false)`: not written,
/// `path` untouched.
pub fn write_private_if(
    path: &Path,
    bytes: &[u8],
    still: impl FnOnce() -> bool,
) -> std::io::Result<bool> {
    replace_private(path, bytes, still, true)
}

fn replace_private(
    path: &Path,
    bytes: &[u8],
    still: impl FnOnce() -> bool,
    keep_owner: bool,
) -> std::io::Result<bool> {
    let dir = parent_dir(path);
    create_private_dir(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    // A few tries: a name can only be taken by chance, or by someone who
    // guessed 128 random bits.
    let mut last = None;
    for _ in 0..4 {
        let tmp = dir.join(format!(".{name}.{}.tmp", random_hex()?));
        match write_new(&tmp, bytes) {
            Ok(()) => {
                if keep_owner {
                    give_owner_of(path, &tmp);
                }
                if !still() {
                    let _ = std::fs::remove_file(&tmp);
                    return Ok(false);
                }
                if let Err(e) = std::fs::rename(&tmp, path) {
                    let _ = std::fs::remove_file(&tmp);
                    let why = format!("cannot rename a new file into place: {e}");
                    return Err(std::io::Error::new(e.kind(), why));
                }
                // The rename is durable only once the directory is on disk.
                return File::open(&dir)?.sync_all().map(|()| true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

/// Gives `tmp` the owner and group of the regular file it will replace,
/// when the process may (root may; another user only its own uid and
/// groups): a node run as root does not take the operator's file from the
/// group that manages it. Owner-only it stays. Not through a link: the
/// owner of one planted at `path` would be given the new file.
fn give_owner_of(path: &Path, tmp: &Path) {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::MetadataExt;
        if meta.file_type().is_file() {
            let _ = std::os::unix::fs::chown(tmp, Some(meta.uid()), Some(meta.gid()));
        }
    }
}

/// Creates `path` exclusively and owner-only (`0600`), for writing.
/// `O_CREAT | O_EXCL` fails on any existing name, a planted symbolic link
/// included (POSIX `open`: "If O_CREAT and O_EXCL are set, and path names a
/// symbolic link, open() shall fail with [EEXIST]").
pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Opens `path`, which must exist, for reading and writing in place (the
/// embedded store's database). Never through a symbolic link
/// (`O_NOFOLLOW`: a link someone planted in the directory would make the
/// gateway fill a file of their choosing), and only a regular file no
/// other user may write (`0600` or `0644`, not `0660` or `0666`): a
/// database another user can truncate or swap is not a record of anything.
pub fn open_private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    open_checked(path, options)
}

/// Opens `path` for reading only, held to [`open_private_file`]'s rule.
pub fn open_private_read(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    open_checked(path, options)
}

/// The whole of `path`, a state file the node wrote and reads back (a key
/// cache, a blacklist snapshot, etcd's local copy), held to the same rule
/// as [`open_private_file`]: not through a link, a regular file, and none
/// other users may write. What another user could have planted or changed
/// there is not trusted.
pub fn read_private(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = open_private_read(path)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(bytes)
}

/// The whole of `path`, held to [`read_private`]'s rule on links and file
/// types only: a file other users may write, or another user owns, is read
/// all the same, with what is wrong with it beside its bytes. For a caller
/// to whom such a file can only refuse more than none would (the record of
/// protected policies): refusing it instead would stop a node whose files
/// a platform makes group-writable (Kubernetes' `fsGroup`) at every start.
pub fn read_own_noting(path: &Path) -> std::io::Result<(Vec<u8>, Option<String>)> {
    let mut options = OpenOptions::new();
    options.read(true);
    let (mut file, note) = open_noting(path, options)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok((bytes, note))
}

fn open_checked(path: &Path, options: OpenOptions) -> std::io::Result<File> {
    match open_noting(path, options)? {
        (file, None) => Ok(file),
        (_, Some(why)) => Err(std::io::Error::other(why)),
    }
}

/// Opens `path` not through a link, a regular file; what makes it not the
/// node's own (other users may write it, another user owns it) is the note.
fn open_noting(path: &Path, mut options: OpenOptions) -> std::io::Result<(File, Option<String>)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let file = options.open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            std::io::Error::other("is a symbolic link: refused, as the file must be the node's own")
        } else {
            e
        }
    })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o022 != 0 {
            return Ok((
                file,
                Some(format!(
                    "other users may write it (mode {mode:04o}): refused; make it owner-only (chmod 600)"
                )),
            ));
        }
        let euid = rustix::process::geteuid().as_raw();
        let dir_owner = || std::fs::metadata(parent_dir(path)).ok().map(|d| d.uid());
        if !owner_trusted(euid, meta.uid(), dir_owner) {
            return Ok((
                file,
                Some(format!(
                    "is owned by uid {}, not by this process's uid {euid}: refused, as the file \
                     must be the node's own (another user could have planted it)",
                    meta.uid()
                )),
            ));
        }
    }
    Ok((file, None))
}

/// Whether a state file owned by `owner` is the node's own for a process
/// running as `euid`: its own file or root's (as ssh's StrictModes), or,
/// for root (`token explain` run with sudo on a service's state), a file
/// of the user who owns its directory, the service's (an outside audit: a
/// key cache another user planted in a world-writable directory was
/// loaded, and its key verified tokens).
fn owner_trusted(euid: u32, owner: u32, dir_owner: impl FnOnce() -> Option<u32>) -> bool {
    owner == euid || owner == 0 || (euid == 0 && dir_owner() == Some(owner))
}

/// Makes `path`, owner-only (`0600`), from a new file that `fill` first
/// writes in full under an unpredictable name beside it, then links into
/// place, so that a crash never leaves a half-made `path` (it leaves a
/// `.NAME.*.tmp` file, which [`remove_leftovers`] takes away). Fails with
/// `AlreadyExists` when `path` appeared meanwhile: that one is kept.
pub fn create_private_whole(
    path: &Path,
    fill: impl FnOnce(File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", random_hex()?));
    let filled = create_private_file(&tmp).and_then(fill);
    // A link, not a rename: it never replaces a `path` that appeared. A
    // file system without links (vfat, some network ones) gets a rename,
    // if `path` is still missing.
    let placed = filled.and_then(|()| match std::fs::hard_link(&tmp, path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists && !path.exists() => {
            std::fs::rename(&tmp, path)
        }
        linked => linked,
    });
    let _ = std::fs::remove_file(&tmp);
    placed?;
    File::open(&dir)?.sync_all()
}

/// Removes what [`create_private_whole`] left of `path` in a crash.
pub fn remove_leftovers(path: &Path) {
    let (Some(name), Ok(entries)) = (
        path.file_name().map(|n| n.to_string_lossy().into_owned()),
        std::fs::read_dir(parent_dir(path)),
    ) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) && file.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether other users may write to `dir` (a group- or world-writable
/// directory without the sticky bit): they can then remove or replace
/// what the node keeps there.
pub fn others_may_write(dir: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir)
            .map(|m| {
                let mode = m.permissions().mode();
                mode & 0o022 != 0 && mode & 0o1000 == 0
            })
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        false
    }
}

/// Whether a file could replace `path` as [`write_private_if`] replaces
/// one: a new file made (and removed) in its directory. Said before a
/// write has to: an admin API whose changes cannot be saved.
pub fn can_replace(path: &Path) -> std::io::Result<()> {
    let dir = parent_dir(path);
    // Not a random name: the first use of the system's random generator
    // costs a start some 400 million instructions (aws-lc seeding its
    // generator), and this file is empty and removed at once; created
    // exclusively, a name someone planted is an error, never followed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let probe = dir.join(format!(".jwtgate-probe.{}.{nanos}.tmp", std::process::id()));
    let made = write_new(&probe, b"");
    let _ = std::fs::remove_file(&probe);
    made
}

/// Creates `tmp` exclusively, owner-only, and writes and syncs `bytes`.
/// A file that cannot be made is said of its directory: a file is
/// replaced by a new one written beside it, so the directory's
/// permissions are what matter, not the file's.
fn write_new(tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = create_private_file(tmp).map_err(|e| {
        let dir = parent_dir(tmp);
        let why = format!(
            "cannot create a file in {} (the file is replaced by a new one written beside it): {e}",
            dir.display()
        );
        std::io::Error::new(e.kind(), why)
    })?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| std::io::Error::other("no randomness"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests;
