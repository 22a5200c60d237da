//! What `jwtgate check` and the TLS set-up read of an X.509 certificate
//! (RFC 5280 §4.1) from its DER: the validity period, to warn about a
//! certificate that has expired or is not valid yet, and the kind of its
//! key (and an RSA key's size), to say why a small one is refused and
//! whether the TLS 1.2 cipher suites fit it. Only the path to those fields is
//! walked; nothing here decides whether a certificate is trusted (the TLS
//! library does, with the whole certificate).

/// `notBefore` and `notAfter`, in Unix seconds; `None` if `der` is not a
/// certificate this can read.
pub fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let (validity, _) = element(from_validity(der)?, SEQUENCE)?;
    let (not_before, rest) = time(validity)?;
    let (not_after, _) = time(rest)?;
    Some((not_before, not_after))
}

/// The kind of a certificate's public key, as TLS 1.2 cipher suites name
/// them (`ECDHE_RSA` or `ECDHE_ECDSA`, which Ed25519 keys use too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKey {
    /// `rsaEncryption`, with its modulus size when it reads.
    Rsa {
        bits: Option<usize>,
    },
    Ecdsa,
    Ed25519,
    Other,
}

/// The certificate's public key kind; `None` for what this cannot read.
pub fn public_key(der: &[u8]) -> Option<PublicKey> {
    let tbs = element(from_validity(der)?, SEQUENCE)?.1; // validity
    let tbs = element(tbs, SEQUENCE)?.1; // subject
    let (spki, _) = element(tbs, SEQUENCE)?;
    let (algorithm, _) = element(spki, SEQUENCE)?;
    let (oid, _) = element(algorithm, OBJECT_IDENTIFIER)?;
    Some(match oid {
        RSA_ENCRYPTION => PublicKey::Rsa {
            bits: crate::jwt::keys::rsa_modulus_bits(der_of_first(tbs)?),
        },
        EC_PUBLIC_KEY => PublicKey::Ecdsa,
        ED25519 => PublicKey::Ed25519,
        _ => PublicKey::Other,
    })
}

/// Whether the certificate names a DNS name in its `subjectAltName`
/// (RFC 5280 §4.2.1.6), the only names TLS clients and the gateway's SNI
/// choice match (RFC 6125 §6.4.4: not the subject's CN when there are
/// none); `None` for what this cannot read.
pub fn has_dns_name(der: &[u8]) -> Option<bool> {
    dns_names(der).map(|names| !names.is_empty())
}

/// Whether a wildcard name, kept without its `*` (`*.example.com` as
/// `.example.com`), covers `name` as browsers read it (RFC 6125 §6.4.3):
/// the `*` stands for exactly one whole, non-empty label.
pub fn wildcard_covers(suffix: &str, name: &str) -> bool {
    let Some(cut) = name.len().checked_sub(suffix.len()).filter(|&c| c > 0) else {
        return false;
    };
    match (name.get(..cut), name.get(cut..)) {
        (Some(label), Some(rest)) => rest.eq_ignore_ascii_case(suffix) && !label.contains('.'),
        _ => false,
    }
}

/// The DNS names of the certificate's `subjectAltName`, as written
/// (`*.example.com` included); `None` for what this cannot read.
pub fn dns_names(der: &[u8]) -> Option<Vec<String>> {
    let tbs = element(from_validity(der)?, SEQUENCE)?.1; // validity
    let tbs = element(tbs, SEQUENCE)?.1; // subject
    let mut rest = element(tbs, SEQUENCE)?.1; // subjectPublicKeyInfo
                                              // issuerUniqueID [1], subjectUniqueID [2], then extensions [3].
    let mut found = Vec::new();
    while let Some((tag, content, after)) = crate::der::tlv(rest) {
        if tag == EXTENSIONS {
            let (mut extensions, _) = element(content, SEQUENCE)?;
            while !extensions.is_empty() {
                let (extension, after) = element(extensions, SEQUENCE)?;
                extensions = after;
                let (oid, mut fields) = element(extension, OBJECT_IDENTIFIER)?;
                if oid != SUBJECT_ALT_NAME {
                    continue;
                }
                if fields.first() == Some(&BOOLEAN) {
                    fields = element(fields, BOOLEAN)?.1; // critical
                }
                let (value, _) = element(fields, OCTET_STRING)?;
                let (mut names, _) = element(value, SEQUENCE)?;
                while let Some((tag, name, after)) = crate::der::tlv(names) {
                    if tag == DNS_NAME {
                        found.push(String::from_utf8_lossy(name).into_owned());
                    }
                    names = after;
                }
                return Some(found);
            }
            return Some(found);
        }
        rest = after;
    }
    Some(found)
}

/// The `tbsCertificate` fields from `validity` on.
fn from_validity(der: &[u8]) -> Option<&[u8]> {
    let (cert, _) = element(der, SEQUENCE)?;
    let (mut tbs, _) = element(cert, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        tbs = element(tbs, VERSION)?.1;
    }
    let tbs = element(tbs, INTEGER)?.1; // serialNumber
    let tbs = element(tbs, SEQUENCE)?.1; // signature
    element(tbs, SEQUENCE).map(|(_, rest)| rest) // issuer
}

/// The whole first element of `der`, tag and length included.
fn der_of_first(der: &[u8]) -> Option<&[u8]> {
    let (_, _, rest) = crate::der::tlv(der)?;
    der.get(..der.len() - rest.len())
}

/// 1.2.840.113549.1.1.1
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// 1.2.840.10045.2.1
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// 1.3.101.112
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OBJECT_IDENTIFIER: u8 = 0x06;
/// 2.5.29.17
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// `[3] EXPLICIT Extensions`.
const EXTENSIONS: u8 = 0xa3;
/// `dNSName [2] IA5String` in a `GeneralName`.
const DNS_NAME: u8 = 0x82;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;

const INTEGER: u8 = 0x02;
const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version`.
const VERSION: u8 = 0xa0;

/// The content of the element at the start of `der` if its tag is `tag`,
/// and what follows it.
fn element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, content, rest) = crate::der::tlv(der)?;
    (found == tag).then_some((content, rest))
}

/// A `Time` (UTCTime or GeneralizedTime, in the `Z` forms RFC 5280
/// requires) at the start of `der`, and what follows it.
fn time(der: &[u8]) -> Option<(i64, &[u8])> {
    let (text, year, rest) = match *der.first()? {
        UTC_TIME => {
            let (text, rest) = element(der, UTC_TIME)?;
            let yy = digits(text.get(..2)?)?;
            // RFC 5280 §4.1.2.5.1: 50-99 are 19xx, 00-49 are 20xx.
            let year = if yy >= 50 { 1900 + yy } else { 2000 + yy };
            (text.get(2..)?, year, rest)
        }
        GENERALIZED_TIME => {
            let (text, rest) = element(der, GENERALIZED_TIME)?;
            (text.get(4..)?, digits(text.get(..4)?)?, rest)
        }
        _ => return None,
    };
    // MMDDHHMMSSZ
    if text.len() != 11 || text.last() != Some(&b'Z') {
        return None;
    }
    let field = |i: usize| digits(text.get(i..i + 2)?);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3_600 + minute * 60 + second, rest))
}

fn digits(text: &[u8]) -> Option<i64> {
    text.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `unix` as `YYYY-MM-DD`, for messages.
pub fn date(unix: i64) -> String {
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER_CRT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/tls/server.crt");

    #[test]
    fn the_test_certificates_validity_is_read() {
        let pem = pem::parse(std::fs::read(SERVER_CRT).unwrap_or_default()).ok();
        let der = pem.as_ref().map(pem::Pem::contents).unwrap_or_default();
        // `openssl x509 -noout -startdate -enddate`: Nov 22 20:12:49 2026
        // GMT (UTCTime) and Oct 29 20:12:49 2126 GMT (GeneralizedTime).
        assert_eq!(validity(der), Some((1_795_378_369, 4_948_978_369)));
        assert_eq!(date(1_795_378_369), "2026-11-22");
        assert_eq!(date(4_948_978_369), "2126-10-29");
    }

    #[test]
    fn the_test_certificates_key_is_read() {
        let pem = pem::parse(std::fs::read(SERVER_CRT).unwrap_or_default()).ok();
        let der = pem.as_ref().map(pem::Pem::contents).unwrap_or_default();
        assert_eq!(public_key(der), Some(PublicKey::Ecdsa));
        assert_eq!(public_key(b"\x30\x03\x02\x01\x01"), None);
    }

    #[test]
    fn a_dns_name_in_the_subject_alt_name_is_found() {
        let der_of = |path: &str| {
            pem::parse(std::fs::read(path).unwrap_or_default())
                .map(|p| p.contents().to_vec())
                .unwrap_or_default()
        };
        // localhost and 127.0.0.1 in its subjectAltName.
        assert_eq!(has_dns_name(&der_of(SERVER_CRT)), Some(true));
        // Only a CN, and extensions that are not a subjectAltName.
        let cn_only = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/tls/cn-only.crt"
        );
        assert_eq!(has_dns_name(&der_of(cn_only)), Some(false));
        assert_eq!(has_dns_name(b"\x30\x03\x02\x01\x01"), None);
    }

    #[test]
    fn times_and_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(
            time(b"\x17\x0d491231235959Z"),
            Some((2_524_607_999, &b""[..]))
        );
        assert_eq!(
            time(b"\x17\x0d500101000000Z").map(|t| t.0),
            Some(-631_152_000)
        );
    }

    #[test]
    fn what_is_not_a_certificate_reads_as_none() {
        for der in [
            &b""[..],
            b"\x30",
            b"\x30\x80",
            b"\x30\x85\x01\x02\x03\x04\x05",
            b"\x30\x03\x02\x01\x01",
            b"\x17\x0d491231235959+",
        ] {
            assert_eq!(validity(der), None, "{der:?}");
        }
        assert_eq!(time(b"\x17\x0d491331235959Z"), None, "month 13");
        assert_eq!(time(b"\x18\x0f2049123123595aZ"), None, "not digits");
    }
}
