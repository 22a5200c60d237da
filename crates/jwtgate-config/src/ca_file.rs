//! A `ca_file`: PEM certificates a TLS client of the gateway trusts (an
//! upstream's, an identity provider's). Each is checked at load as the TLS
//! client takes it, a trust anchor, so a file that would trust nothing is
//! a config error naming the certificate, not a handshake failing later.

use std::path::Path;

use crate::compile::read_file;
use crate::error::Errors;

/// The file's text, if every certificate in it is a usable trust anchor
/// and it holds at least one; else its problems, located at `loc`.
pub(crate) fn read(base_dir: &Path, file: &str, loc: &str, errors: &mut Errors) -> Option<Vec<u8>> {
    let pem = read_file(base_dir, file, loc, errors)?;
    // Read as the TLS clients read it (rustls-pemfile), so what passes
    // here is what they take.
    let mut certificates = 0;
    let mut usable = true;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        certificates += 1;
        let problem = match &cert {
            Err(e) => Some(format!("is not valid PEM: {e}")),
            Ok(der) => webpki::anchor_from_trusted_cert(der)
                .err()
                .map(|e| format!("is not a certificate a TLS client can take: {e:?}")),
        };
        if let Some(problem) = problem {
            errors.add(loc, format!("certificate {certificates} {problem}"));
            usable = false;
        }
    }
    if certificates == 0 {
        errors.add(loc, "holds no PEM CERTIFICATE");
        return None;
    }
    usable.then_some(pem)
}
