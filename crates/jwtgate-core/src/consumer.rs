//! Consumers and the lookup from a token's key claim to a consumer.
//!
//! Built once per config load; a lookup on the request path is one hash probe.

use std::collections::HashMap;
use std::sync::Arc;

use crate::jwt::{Algorithm, VerifyKey};

/// One consumer and its JWT credential, with the key material already parsed.
#[derive(Debug)]
pub struct Consumer {
    pub username: String,
    pub custom_id: Option<String>,
    /// The value the token's key claim must hold (`jwt.key`).
    pub key: String,
    pub verify_key: VerifyKey,
}

impl Consumer {
    pub fn algorithm(&self) -> Algorithm {
        self.verify_key.algorithm()
    }
}

/// Consumers indexed by their credential key.
#[derive(Debug, Default)]
pub struct ConsumerRegistry {
    by_key: HashMap<String, Arc<Consumer>>,
    /// username -> key, for identity providers' `consumer_claim`.
    by_username: HashMap<String, String>,
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

    pub fn insert(&mut self, consumer: Consumer) -> Result<(), DuplicateKey> {
        if let Some(existing) = self.by_key.get(&consumer.key) {
            return Err(DuplicateKey {
                key: consumer.key,
                existing: existing.username.clone(),
            });
        }
        self.by_username
            .insert(consumer.username.clone(), consumer.key.clone());
        self.by_key.insert(consumer.key.clone(), Arc::new(consumer));
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&Arc<Consumer>> {
        self.by_key.get(key)
    }

    /// The consumer with this username.
    pub fn by_username(&self, username: &str) -> Option<&Arc<Consumer>> {
        self.by_key.get(self.by_username.get(username)?)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Consumer>> {
        self.by_key.values()
    }
}
