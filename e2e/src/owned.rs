//! Finds the objects a ProgLogCluster owns, by owner reference rather than by name, so the
//! suite checks the operator's contract (everything it creates is owned by the cluster and
//! garbage-collected with it) without depending on its naming scheme.

use std::fmt::Debug;

use kube::{Api, Resource, api::ListParams};
use serde::de::DeserializeOwned;

use crate::E2eError;

/// True if `object` has an owner reference to the object with `owner_uid`.
pub fn is_owned_by<K: Resource>(object: &K, owner_uid: &str) -> bool {
    object
        .meta()
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == owner_uid))
}

/// Every object in `api` owned by `owner_uid`.
pub async fn list_owned<K>(api: &Api<K>, owner_uid: &str) -> Result<Vec<K>, E2eError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|object| is_owned_by(object, owner_uid))
        .collect())
}
