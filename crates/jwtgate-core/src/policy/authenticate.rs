//! The checks that turn a raw token into a [`Principal`] or a typed
//! refusal, in the order of SPEC §3.1 and §3.6:
//!
//! 1. the token parses;
//! 2. its issuer decides the way: the `iss` of a provider the route lists
//!    (provider keys), of a provider it does not list (refused), or of none
//!    (the consumer-key way, if the route takes consumers);
//! 3. consumer way: key claim, consumer, pinned algorithm, signature;
//!    provider way: allowed algorithm, the key chosen by `kid`, signature;
//! 4. `exp`/`nbf`, required claims, lifetime; for providers the audience.
//!
//! Revocation is the data plane's last check, in memory.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::cache::{Verdict, VerifiedCache};
use super::{AuthContext, AuthError, Authenticated, JwtPolicy, Principal};
use crate::claims::{Claims, NumericDate};
use crate::clock::Clock;
use crate::consumer::{Consumer, Credential};
use crate::jwt::jwk::Jwk;
use crate::jwt::{Algorithm, RevocationKey, Token};
use crate::provider::{IdentityProvider, ProviderKeys};

/// One step of [`authenticate`], reported to an observer so that
/// `token explain` shows exactly the path the gateway takes.
#[derive(Debug)]
pub enum Step<'a> {
    Parsed(&'a Token<'a>),
    /// Which way the token goes, by its `iss` (only when providers exist).
    Issuer {
        iss: Option<&'a str>,
        provider: Option<&'a IdentityProvider>,
        /// The route lists that provider.
        listed: bool,
    },
    KeyClaim {
        claim: &'a str,
        value: Option<&'a Value>,
        claims: &'a Map<String, Value>,
    },
    Consumer {
        key: &'a str,
        /// The consumer whose credential has the key, and that credential.
        consumer: Option<(&'a Consumer, &'a Credential)>,
    },
    Algorithm {
        token: &'a str,
        expected: &'static str,
    },
    /// The provider way: is the token's `alg` one the provider may use?
    ProviderAlgorithm {
        token: &'a str,
        provider: &'a IdentityProvider,
        allowed: bool,
    },
    /// The provider's key set, and the key the token's `kid` chose.
    Key {
        provider: &'a IdentityProvider,
        kid: Option<&'a Value>,
        keys: Option<&'a ProviderKeys>,
        now: i64,
        result: Result<&'a Jwk, &'a AuthError>,
    },
    Signature {
        valid: bool,
        /// The key that verified, when it was not the one [`Step::Key`]
        /// chose but another under the same `kid`.
        twin: Option<&'a Jwk>,
    },
    Claims {
        now: i64,
        result: Result<(), &'a AuthError>,
    },
    Audience {
        expected: &'a [String],
        aud: Option<&'a Value>,
        result: Result<(), &'a AuthError>,
    },
    /// The provider's `consumer_claim`, and the consumer it names.
    ProviderConsumer {
        claim: &'a str,
        value: Option<&'a Value>,
        consumer: Option<&'a Consumer>,
    },
}

/// Runs the checks of SPEC §3.1 and §3.6 in order, up to (not including)
/// revocation.
pub fn authenticate(
    policy: &JwtPolicy,
    ctx: &AuthContext<'_>,
    raw: &str,
    clock: &dyn Clock,
) -> Result<Authenticated, AuthError> {
    authenticate_traced(policy, ctx, raw, clock, &mut |_| {})
}

/// [`authenticate`] with an observer that sees each step.
pub fn authenticate_traced(
    policy: &JwtPolicy,
    ctx: &AuthContext<'_>,
    raw: &str,
    clock: &dyn Clock,
    observe: &mut dyn FnMut(Step<'_>),
) -> Result<Authenticated, AuthError> {
    verify(policy, ctx, raw, clock, observe).result
}

/// [`authenticate`] through a [`VerifiedCache`]: a token seen before skips
/// parsing and the signature check, never the checks that depend on the
/// route or the time (issuer listed, claims, audience), and never a change
/// of the provider's keys: an entry verified with another key-set
/// generation is verified again.
pub fn authenticate_cached(
    policy: &JwtPolicy,
    ctx: &AuthContext<'_>,
    raw: &str,
    clock: &dyn Clock,
    cache: &VerifiedCache,
) -> Result<Authenticated, AuthError> {
    let now = clock.now_unix();
    match cache.get(raw, &policy.key_claim_name) {
        Some(Verdict::Verified {
            principal,
            claims,
            revocation,
        }) => {
            if let Some(keys) = current_generation_keys(ctx, &principal) {
                route_checks(policy, &principal, keys.as_deref(), &claims, now)?;
                return Ok(Authenticated {
                    principal,
                    claims,
                    revocation,
                });
            }
        }
        Some(Verdict::BadSignature { keys: None }) => return Err(AuthError::BadSignature),
        Some(Verdict::BadSignature {
            keys: Some((index, generation)),
        }) => {
            let current = ctx.keys.current(index).map(|k| k.generation);
            if current == Some(generation) {
                return Err(AuthError::BadSignature);
            }
        }
        None => {}
    }
    let checked = verify(policy, ctx, raw, clock, &mut |_| {});
    if let Some(verdict) = checked.verdict {
        cache.insert(raw, &policy.key_claim_name, verdict);
    }
    checked.result
}

/// What [`verify`] found: its answer, and what a [`VerifiedCache`] may
/// keep once a signature was checked. A token whose signature holds is
/// kept even when its claims fail (expired, not yet valid, another
/// audience): every hit runs [`route_checks`] again, so it is refused
/// exactly as before, without the signature being checked again. Refusals
/// before any crypto are not kept: they are cheap to reach again.
struct Verification {
    result: Result<Authenticated, AuthError>,
    verdict: Option<Verdict>,
}

impl Verification {
    /// The signature holds; `checked` is what the claims say.
    fn signed(checked: Result<(), AuthError>, signed: Authenticated) -> Self {
        let verdict = Verdict::Verified {
            principal: signed.principal.clone(),
            claims: Arc::clone(&signed.claims),
            revocation: signed.revocation,
        };
        Verification {
            result: checked.map(|()| signed),
            verdict: Some(verdict),
        }
    }

    /// The signature does not hold: with a consumer's key (`None`), or with
    /// provider `index`'s keys of a `generation`.
    fn bad_signature(keys: Option<(usize, u64)>) -> Self {
        Verification {
            result: Err(AuthError::BadSignature),
            verdict: Some(Verdict::BadSignature { keys }),
        }
    }
}

impl From<AuthError> for Verification {
    fn from(refused: AuthError) -> Self {
        Verification {
            result: Err(refused),
            verdict: None,
        }
    }
}

/// For a cached principal: `Some(keys)` when the verification still holds
/// (a consumer's always does within a config version; a provider's while
/// its key set is the generation it was verified with), with the
/// provider's current keys.
fn current_generation_keys(
    ctx: &AuthContext<'_>,
    principal: &Principal,
) -> Option<Option<Arc<ProviderKeys>>> {
    match principal {
        Principal::Consumer(_) | Principal::Anonymous(_) => Some(None),
        Principal::Provider {
            provider,
            generation,
            ..
        } => {
            let keys = ctx.keys.current(provider.index)?;
            (keys.generation == *generation).then_some(Some(keys))
        }
    }
}

/// What a verified token must still pass on this route, at `now`: the
/// route takes its kind of token, its key set is still usable, the time
/// claims, and a provider token's audience.
fn route_checks(
    policy: &JwtPolicy,
    principal: &Principal,
    keys: Option<&ProviderKeys>,
    claims: &Claims,
    now: i64,
) -> Result<(), AuthError> {
    match principal {
        Principal::Consumer(_) | Principal::Anonymous(_) => {
            if !policy.consumers {
                return Err(not_a_provider_token(claims));
            }
        }
        Principal::Provider { provider, .. } => {
            if policy.providers.binary_search(&provider.index).is_err() {
                return Err(unlisted(provider));
            }
            if let Some(keys) = keys {
                usable(provider, keys, now)?;
            }
        }
    }
    claims_hold(policy, claims, now)?;
    if let Principal::Provider { provider, .. } = principal {
        check_audience(expected_audiences(policy, provider), claims)?;
    }
    Ok(())
}

/// The verification itself.
fn verify(
    policy: &JwtPolicy,
    ctx: &AuthContext<'_>,
    raw: &str,
    clock: &dyn Clock,
    observe: &mut dyn FnMut(Step<'_>),
) -> Verification {
    let token = match Token::parse(raw) {
        Ok(t) => t,
        Err(e) => return AuthError::from(e).into(),
    };
    observe(Step::Parsed(&token));
    let provider = match issuer(policy, ctx, &token, observe) {
        Ok(p) => p,
        Err(e) => return e.into(),
    };
    match provider {
        None => consumer_way(policy, ctx, token, clock, observe),
        Some(p) => provider_way(policy, ctx, token, p, clock, observe),
    }
}

/// The provider whose keys check this token, or `None` for the consumer
/// way; a refusal when the route takes neither.
fn issuer<'c>(
    policy: &JwtPolicy,
    ctx: &AuthContext<'c>,
    token: &Token<'_>,
    observe: &mut dyn FnMut(Step<'_>),
) -> Result<Option<&'c Arc<IdentityProvider>>, AuthError> {
    if ctx.providers.is_empty() && policy.consumers {
        return Ok(None);
    }
    let iss = token.claims().get("iss").and_then(Value::as_str);
    let provider = iss.and_then(|iss| ctx.providers.by_issuer(iss));
    let listed = provider.is_some_and(|p| policy.providers.binary_search(&p.index).is_ok());
    observe(Step::Issuer {
        iss,
        provider: provider.map(|p| &**p),
        listed,
    });
    match provider {
        Some(p) if listed => Ok(Some(p)),
        Some(p) => Err(unlisted(p)),
        None if policy.consumers => Ok(None),
        None => Err(not_a_provider_token(token.claims())),
    }
}

fn unlisted(provider: &IdentityProvider) -> AuthError {
    AuthError::WrongIssuer(format!(
        "token issued by provider {:?}, which this route does not list",
        provider.name
    ))
}

fn not_a_provider_token(claims: &Map<String, Value>) -> AuthError {
    AuthError::WrongIssuer(match claims.get("iss").and_then(Value::as_str) {
        Some(iss) => format!(
            "iss {iss:?} is not the issuer of a provider this route lists, and the route takes no consumer tokens (consumers: false)"
        ),
        None => "the token has no iss, and the route takes only provider tokens (consumers: false)"
            .to_owned(),
    })
}

/// SPEC §3.1: key claim, consumer, pinned algorithm, signature, claims.
fn consumer_way(
    policy: &JwtPolicy,
    ctx: &AuthContext<'_>,
    token: Token<'_>,
    clock: &dyn Clock,
    observe: &mut dyn FnMut(Step<'_>),
) -> Verification {
    let (consumer, credential) = match signer(policy, ctx, &token, observe) {
        Ok(found) => found,
        Err(e) => return e.into(),
    };
    let valid = credential
        .verify_key
        .verify(token.signing_input(), token.signature());
    observe(Step::Signature { valid, twin: None });
    if !valid {
        return Verification::bad_signature(None);
    }

    let (revocation, claims, checked) = judge_claims(policy, token, clock.now_unix(), observe);
    let signed = Authenticated {
        principal: Principal::Consumer(Arc::clone(consumer)),
        claims: Arc::new(claims),
        revocation,
    };
    Verification::signed(checked, signed)
}

/// The consumer whose key must have signed `token` (by the key claim),
/// and its credential, once the token's algorithm is the one pinned.
fn signer<'c>(
    policy: &JwtPolicy,
    ctx: &AuthContext<'c>,
    token: &Token<'_>,
    observe: &mut dyn FnMut(Step<'_>),
) -> Result<(&'c Arc<Consumer>, &'c Credential), AuthError> {
    let claim = policy.key_claim_name.as_str();
    let value = token.claims().get(claim);
    observe(Step::KeyClaim {
        claim,
        value,
        claims: token.claims(),
    });
    let key = match value {
        None => {
            return Err(AuthError::MissingKeyClaim {
                claim: claim.into(),
            })
        }
        Some(Value::String(k)) => k.as_str(),
        Some(_) => {
            return Err(AuthError::KeyClaimNotString {
                claim: claim.into(),
            })
        }
    };

    let found = ctx.consumers.get(key);
    observe(Step::Consumer {
        key,
        consumer: found.map(|(c, credential)| (&**c, credential)),
    });
    let (consumer, credential) =
        found.ok_or_else(|| AuthError::UnknownConsumer { key: key.into() })?;

    let expected = credential.algorithm().as_str();
    observe(Step::Algorithm {
        token: token.alg(),
        expected,
    });
    if token.alg() != expected {
        return Err(AuthError::AlgMismatch {
            token: token.alg().into(),
            expected,
        });
    }
    if token.header().contains_key("crit") {
        return Err(AuthError::CriticalHeader);
    }
    Ok((consumer, credential))
}

/// SPEC §3.6: allowed algorithm, key by `kid`, signature, claims, audience.
fn provider_way(
    policy: &JwtPolicy,
    ctx: &AuthContext<'_>,
    token: Token<'_>,
    provider: &Arc<IdentityProvider>,
    clock: &dyn Clock,
    observe: &mut dyn FnMut(Step<'_>),
) -> Verification {
    let now = clock.now_unix();
    let alg = token
        .alg()
        .parse::<Algorithm>()
        .ok()
        .filter(|a| provider.algorithms.contains(a) && !a.is_hmac());
    observe(Step::ProviderAlgorithm {
        token: token.alg(),
        provider,
        allowed: alg.is_some(),
    });
    let Some(alg) = alg else {
        let allowed: Vec<&str> = provider.algorithms.iter().map(|a| a.as_str()).collect();
        return AuthError::AlgNotAllowed {
            token: token.alg().into(),
            provider: provider.name.clone(),
            allowed: allowed.join(", "),
        }
        .into();
    };
    if token.header().contains_key("crit") {
        return AuthError::CriticalHeader.into();
    }
    if crate::backchannel::is_logout_token(token.header(), token.claims()) {
        return AuthError::LogoutToken.into();
    }

    let keys = ctx.keys.current(provider.index);
    let kid = token.header().get("kid");
    let chosen = match &keys {
        None => Err(AuthError::KeysUnavailable {
            index: provider.index,
            provider: provider.name.clone(),
            why: "no key set fetched yet".into(),
        }),
        Some(k) => usable(provider, k, now).and_then(|()| {
            k.set.select(alg, kid).map_err(|miss| AuthError::NoKey {
                index: provider.index,
                provider: provider.name.clone(),
                miss,
            })
        }),
    };
    observe(Step::Key {
        provider,
        kid,
        keys: keys.as_deref(),
        now,
        result: chosen.as_ref().map(|(jwk, _)| *jwk),
    });
    let (_, verifier) = match chosen {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    // Set when a key was chosen, so `keys` is there.
    let generation = keys.as_ref().map(|k| (provider.index, k.generation));

    let first = verifier.verify(token.signing_input(), token.signature());
    let twin = match (first, &keys) {
        (false, Some(k)) => {
            k.set
                .verifying_twin(alg, kid, token.signing_input(), token.signature())
        }
        _ => None,
    };
    let valid = first || twin.is_some();
    observe(Step::Signature { valid, twin });
    if !valid {
        return Verification::bad_signature(generation);
    }

    let (revocation, claims, checked) = judge_claims(policy, token, now, observe);
    let checked = checked.and_then(|()| {
        let expected = expected_audiences(policy, provider);
        let audience = check_audience(expected, &claims);
        observe(Step::Audience {
            expected,
            aud: claims.get("aud"),
            result: audience.as_ref().map(|_| ()),
        });
        audience
    });

    // Mapped whatever the claims say: the token is remembered either way,
    // and a later hit (once `nbf` has passed, or on a route with another
    // audience) stands for that consumer.
    let mapped = provider.consumer_claim.as_deref().map(|claim| {
        let value = claims.get(claim);
        let consumer = value
            .and_then(Value::as_str)
            .and_then(|name| ctx.consumers.by_username(name));
        (claim, value, consumer)
    });
    if let (Ok(()), Some((claim, value, consumer))) = (&checked, mapped) {
        observe(Step::ProviderConsumer {
            claim,
            value,
            consumer: consumer.map(|c| &**c),
        });
    }
    let consumer = mapped.and_then(|(_, _, consumer)| consumer.cloned());

    let principal = Principal::Provider {
        provider: Arc::clone(provider),
        consumer,
        generation: generation.map_or(0, |(_, g)| g),
    };
    let signed = Authenticated {
        principal,
        claims: Arc::new(claims),
        revocation,
    };
    Verification::signed(checked, signed)
}

/// A key set older than `max_stale_seconds` is not used.
fn usable(provider: &IdentityProvider, keys: &ProviderKeys, now: i64) -> Result<(), AuthError> {
    if keys.usable_at(now) {
        return Ok(());
    }
    Err(AuthError::KeysUnavailable {
        index: provider.index,
        provider: provider.name.clone(),
        why: format!(
            "the last good key set is {}s old, older than max_stale_seconds ({}s)",
            keys.age(now),
            keys.max_stale.unwrap_or_default()
        ),
    })
}

/// The route's audiences when it sets some, else the provider's.
fn expected_audiences<'a>(policy: &'a JwtPolicy, provider: &'a IdentityProvider) -> &'a [String] {
    if policy.audiences.is_empty() {
        &provider.audiences
    } else {
        &policy.audiences
    }
}

/// `aud` (a string, or a list of strings) must contain one of `expected`;
/// nothing is checked when `expected` is empty.
pub fn check_audience(expected: &[String], claims: &Map<String, Value>) -> Result<(), AuthError> {
    if expected.is_empty() {
        return Ok(());
    }
    let wanted = |a: &str| expected.iter().any(|e| e == a);
    let found = match claims.get("aud") {
        None => "the token has no aud".to_owned(),
        Some(Value::String(a)) if wanted(a) => return Ok(()),
        Some(Value::String(a)) => format!("aud {a:?} is not"),
        Some(Value::Array(items)) => {
            if !items.iter().all(Value::is_string) {
                return Err(AuthError::WrongAudience(
                    "aud is a list holding something other than strings".into(),
                ));
            }
            if items.iter().filter_map(Value::as_str).any(wanted) {
                return Ok(());
            }
            format!("aud {} holds none of", Value::Array(items.clone()))
        }
        Some(other) => {
            return Err(AuthError::WrongAudience(format!(
                "aud is {}, not a string or a list of strings",
                match other {
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    Value::Null => "null",
                    _ => "an object",
                }
            )))
        }
    };
    Err(AuthError::WrongAudience(format!(
        "{found} one of the expected audiences {expected:?}"
    )))
}

/// Time and presence checks on a verified payload.
pub fn check_claims(
    policy: &JwtPolicy,
    claims: &Map<String, Value>,
    now: i64,
) -> Result<(), AuthError> {
    let exp = NumericDate::read(claims, "exp");
    let nbf = NumericDate::read(claims, "nbf");
    check_claim_dates(policy, claims, exp, nbf, now)?;
    shaped(crate::claims::malformed_claim(claims))
}

/// A token whose signature held: its blacklist keys, its decoded claims,
/// and what they say at `now` (observed as [`Step::Claims`]).
fn judge_claims(
    policy: &JwtPolicy,
    token: Token<'_>,
    now: i64,
    observe: &mut dyn FnMut(Step<'_>),
) -> (RevocationKey, Claims, Result<(), AuthError>) {
    let revocation = RevocationKey::of(&token);
    let claims = Claims::new(token.into_claims());
    let checked = claims_hold(policy, &claims, now);
    observe(Step::Claims {
        now,
        result: checked.as_ref().map(|_| ()),
    });
    (revocation, claims, checked)
}

/// [`check_claims`] on a decoded payload, whose dates and shape were read
/// once, when it was decoded.
fn claims_hold(policy: &JwtPolicy, claims: &Claims, now: i64) -> Result<(), AuthError> {
    check_claim_dates(policy, claims, claims.exp(), claims.nbf(), now)?;
    shaped(claims.malformed())
}

/// Refuses a payload with a registered claim in the wrong shape (see
/// [`crate::claims::malformed_claim`]).
fn shaped(malformed: Option<&'static str>) -> Result<(), AuthError> {
    match malformed {
        None => Ok(()),
        Some("iat") => Err(AuthError::NotNumericDate("iat".into())),
        Some(name) => Err(AuthError::NotASubject(name.into())),
    }
}

/// [`check_claims`] with `exp` and `nbf` already read from `claims`.
fn check_claim_dates(
    policy: &JwtPolicy,
    claims: &Map<String, Value>,
    exp: NumericDate,
    nbf: NumericDate,
    now: i64,
) -> Result<(), AuthError> {
    for path in &policy.required_claims {
        if path.get(claims).is_none() {
            return Err(AuthError::MissingClaim(path.as_str().to_owned()));
        }
    }
    let leeway = policy.leeway_seconds;
    let exp = date_or_error(exp, "exp")?;
    if let Some(exp) = exp {
        // RFC 7519 §4.1.4: the current time must be before exp.
        if now >= exp.saturating_add(leeway) {
            return Err(AuthError::Expired { exp, now, leeway });
        }
    }
    if let Some(nbf) = date_or_error(nbf, "nbf")? {
        if now.saturating_add(leeway) < nbf {
            return Err(AuthError::NotYetValid { nbf, now, leeway });
        }
    }
    if policy.max_lifetime_seconds > 0 {
        let exp = exp.ok_or_else(|| AuthError::MissingClaim("exp".into()))?;
        let lifetime = exp.saturating_sub(now);
        if lifetime > policy.max_lifetime_seconds {
            return Err(AuthError::LifetimeTooLong {
                lifetime,
                max: policy.max_lifetime_seconds,
            });
        }
    }
    Ok(())
}

/// A NumericDate claim as whole seconds (fractions truncated), if present.
pub fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthError> {
    date_or_error(NumericDate::read(claims, name), name)
}

fn date_or_error(date: NumericDate, name: &str) -> Result<Option<i64>, AuthError> {
    match date {
        NumericDate::Absent => Ok(None),
        NumericDate::At(t) => Ok(Some(t)),
        NumericDate::Invalid => Err(AuthError::NotNumericDate(name.into())),
    }
}
