//! The OpenID Connect discovery document (OIDC Discovery 1.0 §3, §4): what
//! it must say for the gateway to trust the `jwks_uri` in it.

use jwtgate_core::redact::url_for_display;
use serde_json::Value;

/// Why a discovery document is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the discovery document is not a JSON object")]
    NotAnObject,
    #[error(
        "the discovery document says issuer {found:?}, not {expected:?} (OIDC Discovery §4.3)"
    )]
    WrongIssuer { found: String, expected: String },
    #[error("the discovery document has no jwks_uri")]
    NoJwksUri,
    #[error("the discovery document's jwks_uri {0:?} is not an http(s) URL")]
    BadJwksUri(String),
    #[error(
        "the discovery document's jwks_uri {0:?} is plain http, while the issuer is https: \
         the keys would travel unprotected (OIDC Discovery §3 requires TLS)"
    )]
    Downgrade(String),
}

/// `{issuer}/.well-known/openid-configuration` (OIDC Discovery §4).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The `jwks_uri` of a discovery document whose `issuer` is exactly
/// `expected`; an https issuer's keys come over https too, or whoever is
/// on the way to a plain-http `jwks_uri` chooses the keys.
pub fn jwks_uri(document: &[u8], expected: &str) -> Result<String, DiscoveryError> {
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(document) else {
        return Err(DiscoveryError::NotAnObject);
    };
    let found = doc
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if found != expected {
        // Shown as URLs are (a user part or a query may hold a secret).
        return Err(DiscoveryError::WrongIssuer {
            found: url_for_display(found),
            expected: url_for_display(expected),
        });
    }
    let uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or(DiscoveryError::NoJwksUri)?;
    let http = uri.starts_with("https://") || uri.starts_with("http://");
    if !http || uri.parse::<http::Uri>().is_err() {
        return Err(DiscoveryError::BadJwksUri(url_for_display(uri)));
    }
    if expected.starts_with("https://") && !uri.starts_with("https://") {
        return Err(DiscoveryError::Downgrade(url_for_display(uri)));
    }
    Ok(uri.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outside review: an IdP's `jwks_uri` or issuer with a credential
    /// reached the log and `/status` whole.
    #[test]
    fn urls_in_refusals_are_shown_without_their_secrets() {
        let doc =
            br#"{"issuer": "https://idp/a", "jwks_uri": "http://idp/keys?access_token=s3cret"}"#;
        let e = jwks_uri(doc, "https://idp/a")
            .expect_err("downgrade")
            .to_string();
        assert!(
            !e.contains("s3cret") && e.contains("access_token=***"),
            "{e}"
        );
        let doc = br#"{"issuer": "https://u:pw@idp/a", "jwks_uri": "ftp://idp/keys?k=s3cret"}"#;
        let e = jwks_uri(doc, "https://idp/a")
            .expect_err("issuer")
            .to_string();
        assert!(!e.contains("pw@"), "{e}");
        let doc = br#"{"issuer": "https://idp/a", "jwks_uri": "ftp://idp/keys?k=s3cret"}"#;
        let e = jwks_uri(doc, "https://idp/a")
            .expect_err("scheme")
            .to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        let doc = br#"{"issuer": "https://idp/realms/a", "jwks_uri": "https://idp/keys"}"#;
        assert_eq!(
            jwks_uri(doc, "https://idp/realms/a").as_deref(),
            Ok("https://idp/keys")
        );
        for other in [
            "https://idp/realms/a/",
            "https://IDP/realms/a",
            "https://idp/realms",
        ] {
            assert!(matches!(
                jwks_uri(doc, other),
                Err(DiscoveryError::WrongIssuer { .. })
            ));
        }
        assert_eq!(
            jwks_uri(br#"{"issuer": "i"}"#, "i"),
            Err(DiscoveryError::NoJwksUri)
        );
        assert_eq!(
            jwks_uri(br#"{"issuer": "i", "jwks_uri": "file:///etc/passwd"}"#, "i"),
            Err(DiscoveryError::BadJwksUri("file:///etc/passwd".into()))
        );
        assert_eq!(jwks_uri(b"[]", "i"), Err(DiscoveryError::NotAnObject));
        assert_eq!(
            discovery_url("https://idp/realms/a/"),
            "https://idp/realms/a/.well-known/openid-configuration"
        );
    }

    /// A discovery document fetched over TLS must not send the key fetch
    /// over plain http: whoever is on that path would choose the keys.
    #[test]
    fn regression_an_https_issuer_keeps_its_keys_on_https() {
        let doc = |jwks: &str, issuer: &str| {
            format!(r#"{{"issuer": "{issuer}", "jwks_uri": "{jwks}"}}"#).into_bytes()
        };
        let https = "https://idp.example/realms/a";
        assert_eq!(
            jwks_uri(&doc("http://idp.example/keys", https), https),
            Err(DiscoveryError::Downgrade("http://idp.example/keys".into()))
        );
        assert_eq!(
            jwks_uri(&doc("HTTP://idp.example/keys", https), https),
            Err(DiscoveryError::BadJwksUri("HTTP://idp.example/keys".into()))
        );
        // A plain-http issuer (on loopback, say) may name plain-http keys.
        let http = "http://127.0.0.1:8080/realms/a";
        assert_eq!(
            jwks_uri(&doc("http://127.0.0.1:8080/keys", http), http).as_deref(),
            Ok("http://127.0.0.1:8080/keys")
        );
    }
}
