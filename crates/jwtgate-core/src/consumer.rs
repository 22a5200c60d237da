//! Consumers and the lookup from a token's key claim to a consumer.
//!
//! Built once per config load; a lookup on the request path is one hash probe.

use std::collections::HashMap;
use std::sync::Arc;

use crate::jwt::{Algorithm, VerifyKey};

/// One consumer, and its JWT credential when it has one.
///
/// A consumer without a credential cannot sign tokens of its own: it is
/// only a name a request can run as, the anonymous consumer (SPEC §3.8) or
/// the one an identity provider's `consumer_claim` names (§3.6), as Kong's
/// consumers exist apart from their credentials.
#[derive(Debug)]
pub struct Consumer {
    pub username: String,
    pub custom_id: Option<String>,
    pub credential: Option<Credential>,
}

/// A consumer's JWT credential, with the key material already parsed.
#[derive(Debug)]
pub struct Credential {
    /// The value the token's key claim must hold (`jwt.key`).
    pub key: String,
    pub verify_key: VerifyKey,
}

impl Credential {
    pub fn algorithm(&self) -> Algorithm {
        self.verify_key.algorithm()
    }
}

/// Consumers by username, and those with a credential by its key.
#[derive(Debug, Default)]
pub struct ConsumerRegistry {
    by_key: HashMap<String, Arc<Consumer>>,
    /// For the anonymous consumer and identity providers' `consumer_claim`.
    by_username: HashMap<String, Arc<Consumer>>,
}

/// Two consumers claim the same credential key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("jwt key {key:?} is already used by consumer {existing:?}")]
pub struct DuplicateKey {
    pub key: String,
    pub existing: String,
}

impl ConsumerRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a consumer; refused when another one holds its credential key.
    /// Usernames are the caller's to keep unique (a later one replaces the
    /// earlier in [`by_username`](Self::by_username)).
    pub fn insert(&mut self, consumer: Consumer) -> Result<(), DuplicateKey> {
        if let Some(credential) = &consumer.credential {
            if let Some(existing) = self.by_key.get(&credential.key) {
                return Err(DuplicateKey {
                    key: credential.key.clone(),
                    existing: existing.username.clone(),
                });
            }
        }
        let consumer = Arc::new(consumer);
        if let Some(credential) = &consumer.credential {
            self.by_key
                .insert(credential.key.clone(), Arc::clone(&consumer));
        }
        self.by_username.insert(consumer.username.clone(), consumer);
        Ok(())
    }

    /// The consumer whose credential has this key, with that credential.
    pub fn get(&self, key: &str) -> Option<(&Arc<Consumer>, &Credential)> {
        let consumer = self.by_key.get(key)?;
        Some((consumer, consumer.credential.as_ref()?))
    }

    /// The consumer with this username, with or without a credential.
    pub fn by_username(&self, username: &str) -> Option<&Arc<Consumer>> {
        self.by_username.get(username)
    }

    /// How many consumers there are, with or without a credential.
    pub fn len(&self) -> usize {
        self.by_username.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_username.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Consumer>> {
        self.by_username.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(name: &str, key: Option<&str>) -> Consumer {
        Consumer {
            username: name.into(),
            custom_id: None,
            credential: key.map(|k| Credential {
                key: k.into(),
                verify_key: VerifyKey::from_secret(Algorithm::HS256, &[7u8; 32]).expect("key"),
            }),
        }
    }

    #[test]
    fn consumers_without_a_credential_are_found_by_name_only() {
        let mut r = ConsumerRegistry::new();
        r.insert(consumer("alice", Some("user123"))).expect("alice");
        r.insert(consumer("guest", None)).expect("guest");
        r.insert(consumer("carol", None))
            .expect("two without a key");
        assert_eq!(r.len(), 3);
        assert_eq!(r.iter().count(), 3);
        let (alice, credential) = r.get("user123").expect("by key");
        assert_eq!(
            (alice.username.as_str(), credential.key.as_str()),
            ("alice", "user123")
        );
        assert!(r
            .by_username("guest")
            .is_some_and(|g| g.credential.is_none()));
        // No key reaches a consumer without a credential, not even its name
        // or an empty one.
        for key in ["guest", "", "carol"] {
            assert!(r.get(key).is_none(), "{key:?}");
        }
        let clash = r
            .insert(consumer("bob", Some("user123")))
            .expect_err("same key");
        assert_eq!(clash.existing, "alice");
        assert!(r.by_username("bob").is_none());
    }
}
