//! Output on stdout without a panic when the reader went away.

use std::io::Write;
use std::process::ExitCode;

/// Writes to stdout; a closed pipe (`| head`) is not an error worth more
/// than an exit code.
pub fn print(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(1),
        Err(e) => {
            eprintln!("jwtgate: cannot write to stdout: {e}");
            ExitCode::from(1)
        }
    }
}

/// Writes `text` to stdout, then answers `code`, the command's own status:
/// a reader that went away early (`| grep -q`) changes nothing. A stdout
/// that cannot be written (a full disk) is said on stderr, status 1. Never
/// a panic, as `println!` would.
pub fn print_with(text: &str, code: ExitCode) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            eprintln!("jwtgate: cannot write to stdout: {e}");
            ExitCode::from(1)
        }
    }
}
