//! The OpenID Connect discovery document (OIDC Discovery 1.0 §3, §4): what
//! it must say for the gateway to trust the `jwks_uri` in it.

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
}

/// `{issuer}/.well-known/openid-configuration` (OIDC Discovery §4).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The `jwks_uri` of a discovery document whose `issuer` is exactly
/// `expected`.
pub fn jwks_uri(document: &[u8], expected: &str) -> Result<String, DiscoveryError> {
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(document) else {
        return Err(DiscoveryError::NotAnObject);
    };
    let found = doc
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if found != expected {
        return Err(DiscoveryError::WrongIssuer {
            found: found.to_owned(),
            expected: expected.to_owned(),
        });
    }
    let uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or(DiscoveryError::NoJwksUri)?;
    let http = uri.starts_with("https://") || uri.starts_with("http://");
    if !http || uri.parse::<http::Uri>().is_err() {
        return Err(DiscoveryError::BadJwksUri(uri.to_owned()));
    }
    Ok(uri.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
