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
    let blocks = match pem::parse_many(&pem) {
        Ok(blocks) => blocks,
        Err(e) => {
            errors.add(loc, format!("is not valid PEM: {e}"));
            return None;
        }
    };
    let mut certificates = 0;
    let mut usable = true;
    for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
        certificates += 1;
        let der = rustls_pki_types::CertificateDer::from(block.contents());
        if let Err(e) = webpki::anchor_from_trusted_cert(&der) {
            errors.add(
                loc,
                format!("certificate {certificates} cannot be trusted as a CA: {e:?}"),
            );
            usable = false;
        }
    }
    if certificates == 0 {
        errors.add(loc, "holds no PEM CERTIFICATE");
        return None;
    }
    usable.then_some(pem)
}
