//! Installs the CustomResourceDefinitions from a manifest read at run time (the operator's
//! `crdgen` output), by server-side apply, and waits until the API server serves them.

use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde::Deserialize;

use crate::{
    E2eError,
    env::api_timeout,
    wait::{Check, until},
};

/// Field manager of everything the suite applies.
pub const FIELD_MANAGER: &str = "proglog-e2e";

/// Reads every CustomResourceDefinition in the (possibly multi-document) YAML file.
pub fn read_manifest(path: &Path) -> Result<Vec<CustomResourceDefinition>, E2eError> {
    let text = std::fs::read_to_string(path).map_err(|source| E2eError::CrdRead {
        path: path.to_owned(),
        source,
    })?;
    let mut crds = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value =
            serde_yaml::Value::deserialize(document).map_err(|source| E2eError::CrdParse {
                path: path.to_owned(),
                source,
            })?;
        if value.is_null() {
            continue; // an empty document between `---` separators
        }
        let crd: CustomResourceDefinition =
            serde_yaml::from_value(value).map_err(|source| E2eError::CrdParse {
                path: path.to_owned(),
                source,
            })?;
        crds.push(crd);
    }
    if crds.is_empty() {
        return Err(E2eError::CrdEmpty(path.to_owned()));
    }
    Ok(crds)
}

/// Applies the manifest's CRDs and waits until each is `Established`. Returns their names.
pub async fn install(client: &Client, path: &Path) -> Result<Vec<String>, E2eError> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let mut names = Vec::new();
    for mut crd in read_manifest(path)? {
        let name = crd.metadata.name.clone().ok_or_else(|| {
            E2eError::Unexpected(format!("a CRD in {} has no metadata.name", path.display()))
        })?;
        // Server-side apply takes the desired state only.
        crd.status = None;
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        until(
            &format!("CRD {name} to be Established"),
            api_timeout(),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await?;
                    let established = crd
                        .status
                        .as_ref()
                        .and_then(|status| status.conditions.as_ref())
                        .is_some_and(|conditions| {
                            conditions
                                .iter()
                                .any(|c| c.type_ == "Established" && c.status == "True")
                        });
                    Ok(if established {
                        Check::Done(())
                    } else {
                        Check::NotYet(format!(
                            "conditions: {:?}",
                            crd.status.map(|s| s.conditions)
                        ))
                    })
                }
            },
        )
        .await?;
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn manifest(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.dev}
spec:
  group: example.dev
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object}}
";

    #[test]
    fn reads_every_crd_of_a_multi_document_manifest() {
        let file = manifest(&format!(
            "---\n{CRD}---\n{}",
            CRD.replace("widgets", "gadgets")
        ));
        let names: Vec<_> = read_manifest(file.path())
            .unwrap()
            .into_iter()
            .map(|crd| crd.metadata.name.unwrap())
            .collect();
        assert_eq!(names, ["widgets.example.dev", "gadgets.example.dev"]);
    }

    #[test]
    fn a_missing_manifest_names_the_path() {
        let err = read_manifest(Path::new("/nonexistent/crd.yaml")).unwrap_err();
        assert!(matches!(err, E2eError::CrdRead { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/crd.yaml"), "{err}");
    }

    #[test]
    fn an_empty_manifest_is_an_error() {
        let file = manifest("---\n");
        assert!(matches!(
            read_manifest(file.path()),
            Err(E2eError::CrdEmpty(_))
        ));
    }

    #[test]
    fn a_document_that_is_not_a_crd_is_an_error() {
        let file = manifest("kind: CustomResourceDefinition\nspec: [not, a, spec]\n");
        assert!(matches!(
            read_manifest(file.path()),
            Err(E2eError::CrdParse { .. })
        ));
    }
}
