//! A throwaway namespace per test, so tests never see each other's objects and a failed run
//! leaves its objects behind in one place for inspection.

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, PostParams},
};

use crate::E2eError;

/// Label on every namespace the suite creates (`kubectl delete ns -l proglog.dev/e2e` cleans up
/// after interrupted runs).
pub const E2E_LABEL: &str = "proglog.dev/e2e";

/// Connects with the ambient configuration (`KUBECONFIG`, else in-cluster).
pub async fn client() -> Result<Client, E2eError> {
    Client::try_default().await.map_err(E2eError::Kubeconfig)
}

/// A namespace created for one test.
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
    client: Client,
}

impl std::fmt::Debug for TestNamespace {
    // `kube::Client` is not `Debug`; the name identifies the namespace.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish()
    }
}

impl TestNamespace {
    /// Creates `proglog-e2e-<prefix>-<random>`.
    pub async fn create(client: &Client, prefix: &str) -> Result<Self, E2eError> {
        let name = format!("proglog-e2e-{prefix}-{:08x}", rand::random::<u32>());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(E2E_LABEL.to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
        Ok(Self {
            name,
            client: client.clone(),
        })
    }

    /// Starts deleting the namespace and everything in it (the namespace controller finishes).
    pub async fn delete(self) -> Result<(), E2eError> {
        Api::<Namespace>::all(self.client)
            .delete(&self.name, &DeleteParams::background())
            .await?;
        Ok(())
    }
}
