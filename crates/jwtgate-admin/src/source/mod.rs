//! Where the routes, consumers and providers live, behind one trait: the
//! node's file ([`file`]: watched, written back) or etcd ([`etcd`]: shared
//! by every node, watched, written in transactions). Both feed the one path
//! by which a change goes live ([`Running`]); requests never see the
//! difference.

pub mod etcd;
pub mod file;
pub mod protected;

use std::future::Future;
use std::pin::Pin;

use jwtgate_config::{ConfigError, ObjectId, RawConfig};
use serde_json::Value;

use crate::error::AdminError;
use crate::live::{ReloadOutcome, Running, Trigger};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An admin edit as a source sees it (the reply stays with the caller).
pub struct SourceEdit {
    pub source: RawConfig,
    /// The object the edit is about.
    pub object: ObjectId,
    pub at: String,
    pub what: String,
    pub problems: Vec<ConfigError>,
    /// Asked only of a version ([`crate::live::Edit::versioned`]).
    pub versioned: bool,
    /// The whole object ([`crate::live::Edit::whole`]).
    pub whole: bool,
}

/// Builds an edit from the running source; may be called more than once.
pub type MakeEdit<'a> = &'a mut (dyn FnMut(&RawConfig) -> Result<SourceEdit, AdminError> + Send);

pub trait ConfigSource: Send + Sync {
    /// Makes an admin edit durable in the source and live on this node:
    /// compile, protection check, persist, install. Answers once both
    /// are done, with the config warnings the edit brings
    /// ([`Running::new_warnings`]), or with why not (nothing changed then).
    fn update<'a>(
        &'a self,
        running: &'a Running,
        edit: MakeEdit<'a>,
    ) -> BoxFuture<'a, Result<Vec<String>, AdminError>>;

    /// Re-reads the node's own file (watcher, SIGHUP).
    fn reload<'a>(&'a self, running: &'a Running, trigger: Trigger)
        -> BoxFuture<'a, ReloadOutcome>;

    /// The source's state for `/status`; `None` for the file.
    fn status(&self) -> Option<Value>;
}
