//! `jwtgate token sign`: mint a token for a consumer of a config, or from
//! explicit key material. For development and tests.

use std::process::ExitCode;

use base64::Engine as _;
use jwtgate_config::RawCredential;
use jwtgate_core::clock::{Clock, SystemClock};
use jwtgate_core::jwt::{Algorithm, SigningKey};
use serde_json::{Map, Value};

use crate::cli::SignArgs;

pub fn sign(args: &SignArgs) -> ExitCode {
    match mint(args) {
        Ok(token) => crate::out::print_with(&format!("{token}\n"), ExitCode::SUCCESS),
        Err(msg) => {
            eprintln!("jwtgate token sign: {msg}");
            ExitCode::from(2)
        }
    }
}

/// The secret in `file` (`-`: stdin), without one final newline.
fn read_secret(file: &std::path::Path) -> Result<String, String> {
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        // One byte past the bound tells a longer input from one that fits:
        // signing with the first MiB of it would be signing with a secret
        // nobody gave.
        std::io::Read::read_to_string(
            &mut std::io::Read::take(std::io::stdin(), jwtgate_config::MAX_FILE_BYTES + 1),
            &mut text,
        )
        .map_err(|e| format!("cannot read the secret from stdin: {e}"))?;
        if text.len() as u64 > jwtgate_config::MAX_FILE_BYTES {
            return Err(format!(
                "the secret on stdin is longer than {} bytes",
                jwtgate_config::MAX_FILE_BYTES
            ));
        }
        text
    } else {
        jwtgate_config::read_text_bounded(file, jwtgate_config::MAX_FILE_BYTES)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?
    };
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    Ok(text.to_owned())
}

fn mint(args: &SignArgs) -> Result<String, String> {
    let mut issued = Map::new();
    let mut kid = args.kid.clone();
    let (key, alg, secret, claim_name) = match (&args.config, &args.consumer, &args.provider) {
        (Some(path), None, Some(name)) => {
            let config = crate::config_cmd::load_full(path)?;
            let provider = config
                .providers
                .by_name(name)
                .ok_or_else(|| format!("no provider {name:?} in {}", path.display()))?;
            let alg = match &args.alg {
                Some(a) => a.parse::<Algorithm>().map_err(|e| e.to_string())?,
                None => *provider
                    .algorithms
                    .first()
                    .ok_or("the provider has no algorithm")?,
            };
            if kid.is_none() {
                kid = sole_kid(&config, provider.index, alg);
            }
            issued.insert("iss".into(), Value::String(provider.issuer.clone()));
            if let Some(aud) = provider.audiences.first() {
                issued.insert("aud".into(), Value::String(aud.clone()));
            }
            (None, alg.to_string(), None, None)
        }
        (Some(path), Some(name), None) => {
            let config = crate::config_cmd::load_full(path)?;
            let consumer = config
                .raw
                .consumers
                .iter()
                .find(|c| &c.username == name)
                .ok_or_else(|| format!("no consumer {name:?} in {}", path.display()))?;
            let claim_name = match &args.route {
                Some(r) => {
                    let route = config
                        .route(r)
                        .ok_or_else(|| format!("no route {r:?} in {}", path.display()))?;
                    route.jwt.as_ref().map(|j| j.key_claim_name.clone())
                }
                None => None,
            };
            let cred: &RawCredential = consumer.jwt.as_ref().ok_or_else(|| {
                format!(
                    "consumer {name:?} has no jwt credential: it cannot sign tokens of its own \
                     (it is an anonymous consumer, or one an identity provider's consumer_claim names)"
                )
            })?;
            let alg = cred.algorithm.clone().unwrap_or_else(|| "HS256".into());
            let secret = match &cred.secret {
                Some(s) if cred.base64_secret == Some(true) => Some(decode_b64(s)?),
                Some(s) => Some(s.clone().into_bytes()),
                None => None,
            };
            (Some(cred.key.clone()), alg, secret, claim_name)
        }
        (Some(_), None, None) => return Err("with --config, give --consumer or --provider".into()),
        _ => {
            let key = args.key.clone();
            let alg = match (&args.alg, &args.private_key) {
                (Some(alg), _) => alg.clone(),
                // HS256's "needs a secret" pointed away from the key given.
                (None, Some(_)) if args.secret.is_none() && args.secret_file.is_none() => {
                    return Err("--private-key needs --alg, the algorithm it signs with \
                         (RS256, PS256, ES256, EdDSA, ...): without --alg a token is HS256, \
                         signed with a secret"
                        .into())
                }
                (None, _) => "HS256".into(),
            };
            let given = match (&args.secret, &args.secret_file) {
                (Some(s), _) => Some(s.clone()),
                (None, Some(file)) => Some(read_secret(file)?),
                (None, None) => None,
            };
            let secret = match given {
                Some(s) if args.base64_secret => Some(decode_b64(&s)?),
                Some(s) => Some(s.into_bytes()),
                None => None,
            };
            (key, alg, secret, None)
        }
    };
    let alg: Algorithm = alg.parse().map_err(|e| format!("{e}"))?;
    // A key for the other kind of algorithm was passed over without a
    // word (an outside audit): the token was not signed with what was given.
    if alg.is_hmac() && args.private_key.is_some() {
        return Err(format!(
            "{alg} signs with a secret: --private-key is for RS*, PS*, ES* and EdDSA"
        ));
    }
    if !alg.is_hmac() && (args.secret.is_some() || args.secret_file.is_some() || args.base64_secret)
    {
        return Err(format!(
            "{alg} signs with --private-key: --secret, --secret-file and --base64-secret are for HS*"
        ));
    }
    let signer = if alg.is_hmac() {
        let secret =
            secret.ok_or_else(|| format!("{alg} needs a secret (--secret-file or --secret)"))?;
        if secret.len() < jwtgate_config::MIN_SECRET_BYTES {
            eprintln!(
                "warning: the secret is {} bytes: a jwtgate config refuses HMAC secrets under \
                 {} bytes (RFC 7518 §3.2), so no consumer of one verifies this token",
                secret.len(),
                jwtgate_config::MIN_SECRET_BYTES
            );
        }
        SigningKey::from_secret(alg, &secret).map_err(|e| e.to_string())?
    } else {
        let file = args.private_key.as_ref().ok_or_else(|| {
            let why = if args.config.is_some() {
                " (the config holds only the public key)"
            } else {
                ""
            };
            format!("{alg} needs --private-key FILE{why}")
        })?;
        let pem = jwtgate_config::read_text_bounded(file, jwtgate_config::MAX_FILE_BYTES)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        SigningKey::from_private_pem(alg, &pem).map_err(|e| e.to_string())?
    };

    let now = SystemClock.now_unix();
    let mut claims = Map::new();
    let claim_name = args
        .key_claim_name
        .clone()
        .or(claim_name)
        .unwrap_or_else(|| "key".into());
    if let Some(key) = key {
        claims.insert(claim_name, Value::String(key));
    }
    claims.extend(issued);
    claims.insert("iat".into(), Value::from(now));
    if args.ttl > 0 {
        let ttl = i64::try_from(args.ttl).map_err(|_| "--ttl is too large")?;
        claims.insert("exp".into(), Value::from(now.saturating_add(ttl)));
    }
    for kv in &args.claims {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--claim {kv:?}: expected k=v"))?;
        if k.is_empty() {
            return Err(format!("--claim {kv:?}: the claim has no name"));
        }
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        // A time claim that is not a number (`exp=tomorrow`) makes a token
        // every gateway refuses: said here rather than found there.
        if matches!(k, "exp" | "nbf" | "iat") && !value.is_number() {
            return Err(format!(
                "--claim {kv:?}: {k} is a NumericDate, seconds since 1970 (RFC 7519 §2)"
            ));
        }
        claims.insert(k.to_owned(), value);
    }
    signer
        .encode_with_kid(&claims, kid.as_deref())
        .map_err(|e| e.to_string())
}

/// The kid of the only key of a `jwks_file` provider that fits `alg`.
fn sole_kid(config: &jwtgate_config::Config, index: usize, alg: Algorithm) -> Option<String> {
    let source = config.provider_sources.get(index)?;
    let jwtgate_config::KeySource::File { set, .. } = &source.keys else {
        return None;
    };
    let mut fitting = set.keys().iter().filter(|k| k.verifier(alg).is_some());
    match (fitting.next(), fitting.next()) {
        (Some(k), None) => k.kid.clone(),
        _ => None,
    }
}

fn decode_b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s.trim()))
        .map_err(|_| "secret is not valid base64".to_string())
}
