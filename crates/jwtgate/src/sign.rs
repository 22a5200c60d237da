//! `jwtgate token sign`: mint a token for a consumer of a config, or from
//! explicit key material. For development and tests.

use std::process::ExitCode;

use base64::Engine as _;
use jwtgate_config::{load_file, RawCredential};
use jwtgate_core::clock::{Clock, SystemClock};
use jwtgate_core::jwt::{Algorithm, SigningKey};
use serde_json::{Map, Value};

use crate::cli::SignArgs;

pub fn sign(args: &SignArgs) -> ExitCode {
    match mint(args) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("jwtgate token sign: {msg}");
            ExitCode::from(2)
        }
    }
}

fn mint(args: &SignArgs) -> Result<String, String> {
    let (key, alg, secret, claim_name) = match (&args.config, &args.consumer) {
        (Some(path), Some(name)) => {
            let config = load_file(path).map_err(|e| format!("{}:\n{e}", path.display()))?;
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
            let cred: &RawCredential = &consumer.jwt;
            let alg = cred.algorithm.clone().unwrap_or_else(|| "HS256".into());
            let secret = match &cred.secret {
                Some(s) if cred.base64_secret == Some(true) => Some(decode_b64(s)?),
                Some(s) => Some(s.clone().into_bytes()),
                None => None,
            };
            (cred.key.clone(), alg, secret, claim_name)
        }
        _ => {
            let key = args
                .key
                .clone()
                .ok_or("give --config and --consumer, or --key and --alg")?;
            let alg = args.alg.clone().unwrap_or_else(|| "HS256".into());
            let secret = match &args.secret {
                Some(s) if args.base64_secret => Some(decode_b64(s)?),
                Some(s) => Some(s.clone().into_bytes()),
                None => None,
            };
            (key, alg, secret, None)
        }
    };
    let alg: Algorithm = alg.parse().map_err(|e| format!("{e}"))?;
    let signer = if alg.is_hmac() {
        let secret = secret.ok_or_else(|| format!("{alg} needs a secret (--secret)"))?;
        SigningKey::from_secret(alg, &secret).map_err(|e| e.to_string())?
    } else {
        let file = args.private_key.as_ref().ok_or_else(|| {
            format!("{alg} needs --private-key FILE (the config holds only the public key)")
        })?;
        let pem = std::fs::read_to_string(file)
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
    claims.insert(claim_name, Value::String(key));
    claims.insert("iat".into(), Value::from(now));
    if args.ttl > 0 {
        let ttl = i64::try_from(args.ttl).map_err(|_| "--ttl is too large")?;
        claims.insert("exp".into(), Value::from(now.saturating_add(ttl)));
    }
    for kv in &args.claims {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--claim {kv:?}: expected k=v"))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        claims.insert(k.to_owned(), value);
    }
    signer.encode(&claims).map_err(|e| e.to_string())
}

fn decode_b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s.trim()))
        .map_err(|_| "secret is not valid base64".to_string())
}
