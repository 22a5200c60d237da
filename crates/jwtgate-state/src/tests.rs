use super::*;

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

#[test]
fn replaces_the_file_owner_only_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, "old").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    write_private(&path, b"new").expect("atomic write");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    assert_eq!(names(dir.path()), ["jwtgate.yaml"]);
}

#[test]
#[cfg(unix)]
fn regression_config_write_back_hijack() {
    // A local user plants the file the old code would have written through
    // (predictable name, not created exclusively): a link to a file they
    // own, or to one they want overwritten. Nothing they planted is used.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, "old").expect("write");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "untouched").expect("write");
    for pid_guess in [std::process::id(), 1, 2] {
        let planted = dir
            .path()
            .join(format!(".jwtgate.yaml.jwtgate-tmp-{pid_guess}"));
        std::os::unix::fs::symlink(&victim, &planted).expect("symlink");
    }
    write_private(&path, b"new").expect("write");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "untouched");
    // The written file is a regular file of ours, not a link.
    let meta = std::fs::symlink_metadata(&path).expect("meta");
    assert!(meta.file_type().is_file());
    assert_eq!(mode(&path), 0o600);
}

#[test]
#[cfg(unix)]
fn a_planted_temporary_name_is_never_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "untouched").expect("write");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&victim, &link).expect("symlink");
    let err = write_new(&link, b"x").expect_err("exclusive create refuses");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "untouched");
}

#[test]
fn creates_missing_directories_owner_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = StateDir::new(dir.path().join("state"));
    let keys = state.provider_keys("corp");
    write_private(&keys, b"{}").expect("write");
    assert_eq!(std::fs::read(&keys).expect("read"), b"{}");
    #[cfg(unix)]
    {
        assert_eq!(mode(state.root()), 0o700);
        assert_eq!(mode(&state.root().join("providers")), 0o700);
    }
}

#[test]
fn provider_names_cannot_climb_out() {
    let state = StateDir::new("/s");
    assert_eq!(
        state.provider_keys("../etc/passwd"),
        Path::new("/s/providers/%2E.%2Fetc%2Fpasswd.jwks.json")
    );
    assert_eq!(
        state.provider_keys("a.b"),
        Path::new("/s/providers/a.b.jwks.json")
    );
    assert_ne!(state.provider_keys("a/b"), state.provider_keys("a%2Fb"));
}

/// The write-back asks, once its new file is on disk, whether the file it
/// replaces is still the one it read: an editor's save in between was
/// overwritten. Told no, it leaves the file (and no temporary file) alone.
#[test]
fn regression_a_write_that_is_told_no_at_the_last_moment_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, "by hand\n").expect("write");
    let asked = std::cell::Cell::new(false);
    let written = write_private_if(&path, b"by the API\n", || {
        asked.set(true);
        // What an editor saved while the API wrote.
        std::fs::write(&path, "edited meanwhile\n").expect("edit");
        false
    })
    .expect("no I/O error");
    assert!(asked.get() && !written);
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "edited meanwhile\n"
    );
    assert_eq!(names(dir.path()), ["jwtgate.yaml"]);
    assert!(write_private_if(&path, b"by the API\n", || true).expect("write"));
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "by the API\n"
    );
}

#[test]
#[cfg(unix)]
fn a_private_file_is_made_whole_and_never_opened_through_a_link() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    create_private_whole(&path, |mut f| f.write_all(b"made")).expect("create");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(std::fs::read(&path).expect("read"), b"made");
    assert_eq!(names(dir.path()), ["store.db"], "a temporary file was left");
    // Never replaces what is there.
    let err = create_private_whole(&path, |mut f| f.write_all(b"other")).expect_err("exists");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&path).expect("read"), b"made");
    // A fill that fails leaves nothing.
    let failed = dir.path().join("failed.db");
    create_private_whole(&failed, |_| Err(std::io::Error::other("disk full"))).expect_err("fill");
    assert!(!failed.exists());
    assert_eq!(names(dir.path()), ["store.db"]);
    // What a crash leaves is taken away.
    std::fs::write(dir.path().join(".store.db.0123.tmp"), b"").expect("leftover");
    remove_leftovers(&path);
    assert_eq!(names(dir.path()), ["store.db"]);

    open_private_file(&path).expect("open");
    let err = open_private_file(&dir.path().join("missing.db")).expect_err("missing");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);

    // A planted link, dangling or to an existing empty file: refused, and
    // nothing is created or written at its target.
    let target = dir.path().join("elsewhere");
    let link = dir.path().join("planted.db");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let err = open_private_file(&link).expect_err("a dangling link");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(!target.exists(), "the link's target was created");
    std::fs::write(&target, b"").expect("victim");
    let err = open_private_file(&link).expect_err("a link to a file");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(std::fs::metadata(&target).expect("victim").len(), 0);

    // A file other users may write, or no file at all.
    for (m, refused) in [(0o666, true), (0o660, true), (0o644, false), (0o600, false)] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).expect("chmod");
        assert_eq!(open_private_file(&path).is_err(), refused, "mode {m:o}");
    }
    let err = open_private_file(dir.path()).expect_err("a directory");
    assert!(!err.to_string().is_empty());
}

#[test]
#[cfg(unix)]
fn a_directory_others_may_write_is_told_apart_from_a_sticky_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let set = |m| std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(m));
    set(0o700).expect("chmod");
    assert!(!others_may_write(dir.path()));
    set(0o777).expect("chmod");
    assert!(others_may_write(dir.path()));
    set(0o770).expect("chmod");
    assert!(others_may_write(dir.path()));
    set(0o1777).expect("chmod");
    assert!(!others_may_write(dir.path()));
    set(0o700).expect("chmod");
}

/// The file replaced keeps its owner and group where the process may give
/// them (as root: the one place it matters, a node run as root editing a
/// file an operator's group manages); it had become root's.
#[test]
#[cfg(unix)]
fn a_write_back_keeps_the_files_owner_and_group() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, "by hand\n").expect("write");
    // nobody:nogroup when root may give the file away; else the process's
    // own, the only owner it can keep.
    let (uid, gid) = if std::os::unix::fs::chown(&path, Some(65534), Some(65534)).is_ok() {
        (65534, 65534)
    } else {
        let meta = std::fs::metadata(&path).expect("meta");
        (meta.uid(), meta.gid())
    };
    assert!(write_private_if(&path, b"by the API\n", || true).expect("write"));
    let meta = std::fs::metadata(&path).expect("meta");
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert_eq!(mode(&path), 0o600);
    // A state file (a snapshot, a cache: the node's own) is the node's, as
    // it was: whoever planted one there is given nothing.
    let state = dir.path().join("snapshot");
    std::fs::write(&state, "planted\n").expect("write");
    if std::os::unix::fs::chown(&state, Some(65534), Some(65534)).is_ok() {
        write_private(&state, b"ours\n").expect("write");
        let meta = std::fs::metadata(&state).expect("meta");
        assert_eq!(meta.uid(), own_uid(), "a state file stays the node's");
    }
}

/// The process's effective uid, as the files it creates get it.
#[cfg(unix)]
fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let probe = dir.path().join("probe");
    std::fs::write(&probe, "").expect("write");
    std::fs::metadata(&probe).expect("meta").uid()
}

/// A state file read back is refused through a link, as a non-file, and
/// when other users may write it: what they could have planted is not
/// trusted.
#[test]
#[cfg(unix)]
fn a_state_file_others_could_have_planted_is_not_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cache.json");
    write_private(&path, b"{}").expect("write");
    assert_eq!(read_private(&path).expect("read"), b"{}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let e = read_private(&path).expect_err("0666");
    assert!(
        e.to_string()
            .contains("other users may write it (mode 0666)"),
        "{e}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&path, &link).expect("link");
    let e = read_private(&link).expect_err("link");
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(read_private(dir.path()).is_err(), "a directory");
    let missing = read_private(&dir.path().join("none")).expect_err("missing");
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
}

/// Whether a file could be replaced is found by making one beside it, and
/// a failure names the directory, whose permissions are what matter (an
/// outside operations audit: the write-back's error named the file).
#[test]
fn a_replacement_that_cannot_be_made_is_said_of_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, "listen: x\n").expect("write");
    can_replace(&path).expect("a writable directory");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["jwtgate.yaml"], "the probe is gone");
    // A directory that cannot take a new file (root may write anywhere
    // here: a missing one stands for it).
    let gone = dir.path().join("gone").join("jwtgate.yaml");
    let e = can_replace(&gone).expect_err("no directory");
    assert!(
        e.to_string().contains(&format!(
            "cannot create a file in {} (the file is replaced by a new one written beside it)",
            dir.path().join("gone").display()
        )),
        "{e}"
    );
}

/// A state file must be the node's own: owned by the process's user, or,
/// for root, by the user who owns its directory (a service's state read
/// by `sudo jwtgate token explain`).
#[test]
fn a_state_file_of_another_user_is_not_the_nodes_own() {
    let never = || -> Option<u32> { panic!("not asked") };
    assert!(owner_trusted(1000, 1000, never));
    assert!(owner_trusted(1000, 0, never), "root's");
    assert!(!owner_trusted(1000, 65534, || Some(65534)), "not root");
    assert!(owner_trusted(0, 0, never));
    assert!(owner_trusted(0, 998, || Some(998)), "the service's own");
    assert!(
        !owner_trusted(0, 65534, || Some(0)),
        "planted in root's directory"
    );
    assert!(!owner_trusted(0, 65534, || None));
}
