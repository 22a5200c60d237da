//! Differential tests against OpenSSL, for all thirteen algorithms.
//!
//! `tests/differential.rs` checks us against `jsonwebtoken`, which runs on
//! aws-lc-rs as we do; this file adds an oracle that shares no code with us:
//! the `openssl` command line tool (OpenSSL 3). Tokens whose signature
//! OpenSSL made verify with our [`VerifyKey`]; signatures our [`SigningKey`]
//! made verify with OpenSSL, including the parameters RFC 7518 fixes and a
//! lenient verifier would not notice (PSS salt length = hash length, MGF1
//! with the same hash; ECDSA `r || s` of fixed width).
//!
//! Needs `openssl` on `PATH` (Debian: the `openssl` package); the tests fail,
//! rather than pass vacuously, without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwtgate_core::jwt::{Algorithm, SigningKey, Token, VerifyKey};
use serde_json::{json, Map, Value};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/keys");

const SECRET: &[u8] = b"openssl-differential-secret-0123456789abcdef0123456789abcdef";

fn key_path(name: &str) -> PathBuf {
    Path::new(KEYS).join(name)
}

/// (private key file, public key file) of an asymmetric algorithm.
fn key_files(alg: Algorithm) -> (PathBuf, PathBuf) {
    let base = match alg {
        Algorithm::ES256 => "ec-p256",
        Algorithm::ES384 => "ec-p384",
        Algorithm::ES512 => "ec-p521",
        Algorithm::EdDSA => "ed25519",
        _ => "rsa",
    };
    (
        key_path(&format!("{base}.key")),
        key_path(&format!("{base}.pub")),
    )
}

fn digest(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 | Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 => "-sha256",
        Algorithm::HS384 | Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => "-sha384",
        _ => "-sha512",
    }
}

/// `r` and `s` are this many octets each in a JWS ECDSA signature.
fn ecdsa_width(alg: Algorithm) -> Option<usize> {
    match alg {
        Algorithm::ES256 => Some(32),
        Algorithm::ES384 => Some(48),
        Algorithm::ES512 => Some(66),
        _ => None,
    }
}

fn is_pss(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512)
}

// ---------------------------------------------------------------------------
// Running openssl
// ---------------------------------------------------------------------------

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("jwtgate-openssl-{}-{name}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch directory");
        Scratch(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(args: &[&std::ffi::OsStr]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl(1): {e}; install it (Debian: apt-get install openssl)")
        })
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

/// The raw JWS signature OpenSSL computes over `message`.
fn openssl_sign(alg: Algorithm, message: &[u8], scratch: &Scratch) -> Vec<u8> {
    let msg = scratch.write("message", message);
    let output = if alg.is_hmac() {
        let key = format!("hexkey:{}", hex(SECRET));
        openssl(&[
            os("dgst"),
            os(digest(alg)),
            os("-mac"),
            os("HMAC"),
            os("-macopt"),
            os(&key),
            os("-binary"),
            msg.as_os_str(),
        ])
    } else if alg == Algorithm::EdDSA {
        let (private, _) = key_files(alg);
        openssl(&[
            os("pkeyutl"),
            os("-sign"),
            os("-rawin"),
            os("-inkey"),
            private.as_os_str(),
            os("-in"),
            msg.as_os_str(),
        ])
    } else {
        let (private, _) = key_files(alg);
        let mut args = vec![
            os("dgst"),
            os(digest(alg)),
            os("-sign"),
            private.as_os_str(),
        ];
        if is_pss(alg) {
            args.extend([
                os("-sigopt"),
                os("rsa_padding_mode:pss"),
                os("-sigopt"),
                os("rsa_pss_saltlen:digest"),
            ]);
        }
        args.extend([os("-binary"), msg.as_os_str()]);
        openssl(&args)
    };
    assert!(
        output.status.success(),
        "{alg}: openssl could not sign: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    match ecdsa_width(alg) {
        Some(width) => ecdsa_der_to_raw(&output.stdout, width)
            .unwrap_or_else(|| panic!("{alg}: openssl gave no DER ECDSA signature")),
        None => output.stdout,
    }
}

/// Whether OpenSSL accepts `signature` (raw JWS form) over `message`.
fn openssl_verify(alg: Algorithm, message: &[u8], signature: &[u8], scratch: &Scratch) -> bool {
    if alg.is_hmac() {
        // HMAC has no verify operation: recompute and compare.
        return openssl_sign(alg, message, scratch) == signature;
    }
    let signature = match ecdsa_width(alg) {
        Some(width) if signature.len() != 2 * width => return false,
        Some(width) => ecdsa_raw_to_der(signature, width),
        None => signature.to_vec(),
    };
    let msg = scratch.write("message", message);
    let sig = scratch.write("signature", &signature);
    let (_, public) = key_files(alg);
    let output = if alg == Algorithm::EdDSA {
        openssl(&[
            os("pkeyutl"),
            os("-verify"),
            os("-rawin"),
            os("-pubin"),
            os("-inkey"),
            public.as_os_str(),
            os("-in"),
            msg.as_os_str(),
            os("-sigfile"),
            sig.as_os_str(),
        ])
    } else {
        let mut args = vec![
            os("dgst"),
            os(digest(alg)),
            os("-verify"),
            public.as_os_str(),
        ];
        if is_pss(alg) {
            // Exactly the RFC 7518 §3.5 parameters, not "any salt length".
            args.extend([
                os("-sigopt"),
                os("rsa_padding_mode:pss"),
                os("-sigopt"),
                os("rsa_pss_saltlen:digest"),
            ]);
        }
        args.extend([os("-signature"), sig.as_os_str(), msg.as_os_str()]);
        openssl(&args)
    };
    output.status.success()
}

// ---------------------------------------------------------------------------
// ECDSA signatures: JWS raw r || s  <->  the DER SEQUENCE OpenSSL speaks
// ---------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match u8::try_from(contents.len()) {
        Ok(len) if len < 0x80 => out.push(len),
        Ok(len) => out.extend([0x81, len]),
        Err(_) => unreachable!("ECDSA signatures are shorter than 256 octets"),
    }
    out.extend_from_slice(contents);
    out
}

fn der_unsigned(magnitude: &[u8]) -> Vec<u8> {
    let first = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    let magnitude = &magnitude[first..];
    let mut contents = Vec::with_capacity(magnitude.len() + 1);
    if magnitude.first().is_none_or(|&b| b & 0x80 != 0) {
        contents.push(0);
    }
    contents.extend_from_slice(magnitude);
    der(0x02, &contents)
}

fn ecdsa_raw_to_der(raw: &[u8], width: usize) -> Vec<u8> {
    let (r, s) = raw.split_at(width);
    der(0x30, &[der_unsigned(r), der_unsigned(s)].concat())
}

/// One DER TLV with a short or one-octet long length: (tag, contents, rest).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let (len, rest) = match len {
        0x81 => {
            let (&len, rest) = rest.split_first()?;
            (usize::from(len), rest)
        }
        len if len < 0x80 => (usize::from(len), rest),
        _ => return None,
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

fn ecdsa_der_to_raw(der: &[u8], width: usize) -> Option<Vec<u8>> {
    let (0x30, body, []) = der_tlv(der)? else {
        return None;
    };
    let (0x02, r, rest) = der_tlv(body)? else {
        return None;
    };
    let (0x02, s, []) = der_tlv(rest)? else {
        return None;
    };
    let mut raw = Vec::with_capacity(2 * width);
    for n in [r, s] {
        let first = n.iter().position(|&b| b != 0).unwrap_or(n.len());
        let n = &n[first..];
        raw.extend(std::iter::repeat_n(0, width.checked_sub(n.len())?));
        raw.extend_from_slice(n);
    }
    Some(raw)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

fn claims() -> Map<String, Value> {
    let Value::Object(map) = json!({"sub": "alice", "iss": "openssl", "n": 7}) else {
        unreachable!("a JSON object literal")
    };
    map
}

fn our_keys(alg: Algorithm) -> (SigningKey, VerifyKey) {
    if alg.is_hmac() {
        return (
            SigningKey::from_secret(alg, SECRET).expect("signing key"),
            VerifyKey::from_secret(alg, SECRET).expect("verify key"),
        );
    }
    let (private, public) = key_files(alg);
    let read = |path: &Path| std::fs::read_to_string(path).expect("test key present");
    (
        SigningKey::from_private_pem(alg, &read(&private)).expect("signing key"),
        VerifyKey::from_public_pem(alg, &read(&public)).expect("verify key"),
    )
}

fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn der_and_raw_ecdsa_signatures_convert_both_ways() {
    // P-256: r with its high bit set (DER adds a zero octet), s short (the
    // raw form pads it back to 32 octets).
    let mut raw = vec![0u8; 64];
    raw[0] = 0x80;
    raw[63] = 0x05;
    let der = ecdsa_raw_to_der(&raw, 32);
    assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x21, 0x00]);
    assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x05]);
    assert_eq!(ecdsa_der_to_raw(&der, 32), Some(raw));
    // P-521: full-width r and s need the long length form.
    let mut raw = vec![0u8; 132];
    raw[0] = 0x01;
    raw[66] = 0x01;
    let der = ecdsa_raw_to_der(&raw, 66);
    assert_eq!(&der[..3], &[0x30, 0x81, 0x88]);
    assert_eq!(ecdsa_der_to_raw(&der, 66), Some(raw));
    assert_eq!(ecdsa_der_to_raw(&der, 32), None);
}

#[test]
fn openssl_signatures_verify_with_our_keys() {
    let scratch = Scratch::new("ours-verify");
    let mut failures = Vec::new();
    for alg in Algorithm::ALL {
        let (_, ours) = our_keys(alg);
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg.as_str(), "typ": "JWT"}).to_string());
        let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims()).to_string());
        let signing_input = format!("{header}.{payload}");
        let signature = openssl_sign(alg, signing_input.as_bytes(), &scratch);
        let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&signature));

        let parsed = Token::parse(&token).expect("an OpenSSL-signed token parses");
        if !ours.verify(parsed.signing_input(), parsed.signature()) {
            failures.push(format!("{alg}: our key rejects OpenSSL's signature"));
        }
        let mut changed = signing_input.clone().into_bytes();
        let last = changed.len() - 1;
        changed[last] ^= 0x01;
        if ours.verify(&changed, &signature) {
            failures.push(format!("{alg}: accepted over a changed signing input"));
        }
        let mut flipped = signature.clone();
        flipped[signature.len() / 2] ^= 0x01;
        if ours.verify(signing_input.as_bytes(), &flipped) {
            failures.push(format!("{alg}: accepted with a signature byte flipped"));
        }
    }
    assert_no_failures(&failures);
}

#[test]
fn our_signatures_verify_with_openssl() {
    let scratch = Scratch::new("openssl-verify");
    let mut failures = Vec::new();
    for alg in Algorithm::ALL {
        let (signing, _) = our_keys(alg);
        let token = signing.encode(&claims()).expect("our encode");
        let parsed = Token::parse(&token).expect("our token parses");
        let (input, signature) = (parsed.signing_input(), parsed.signature());

        if !openssl_verify(alg, input, signature, &scratch) {
            failures.push(format!("{alg}: OpenSSL rejects our signature"));
        }
        // Controls: OpenSSL is not a rubber stamp.
        let mut changed = input.to_vec();
        changed[0] ^= 0x01;
        if openssl_verify(alg, &changed, signature, &scratch) {
            failures.push(format!(
                "{alg}: OpenSSL accepts our signature over a changed input"
            ));
        }
        let mut flipped = signature.to_vec();
        flipped[signature.len() / 2] ^= 0x01;
        if openssl_verify(alg, input, &flipped, &scratch) {
            failures.push(format!(
                "{alg}: OpenSSL accepts our signature with a byte flipped"
            ));
        }
    }
    assert_no_failures(&failures);
}
