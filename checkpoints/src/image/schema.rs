//! Schema fingerprints recorded in an image, and the comparison with the
//! running build's. The fingerprints themselves are computed by
//! [`crate::state`]; to the image they are plain values.

use serde::{Deserialize, Serialize};

/// One type's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeFingerprint {
    /// Fully qualified type name.
    pub name: String,
    /// Fingerprint of its saved fields, recursively.
    pub fingerprint: u64,
}

/// The schema of the build that wrote an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaInfo {
    /// Fingerprint of the root type (covers the whole graph).
    pub root: u64,
    /// Per-type fingerprints, in the state encoder's order.
    pub types: Vec<TypeFingerprint>,
}

/// The image's schema differs from the running build's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaMismatch {
    /// A type's saved fields differ (or the type is gone from this build).
    #[error("type {type_name} changed since the image was written (image fingerprint {image:#018x}, this build {current}); restore with the build that wrote it")]
    Type {
        /// The first type, in the image's table order, that differs.
        type_name: String,
        /// Its fingerprint in the image.
        image: u64,
        /// Its fingerprint in this build, or "absent".
        current: CurrentFingerprint,
    },
    /// Every type in the image matches but the root does (a type was added).
    #[error("root schema fingerprint differs (image {image:#018x}, this build {current:#018x}) although every recorded type matches")]
    Root {
        /// Root fingerprint in the image.
        image: u64,
        /// Root fingerprint of this build.
        current: u64,
    },
}

/// A type's fingerprint in the running build, if it has the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentFingerprint(pub Option<u64>);

impl std::fmt::Display for CurrentFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(fp) => write!(f, "{fp:#018x}"),
            None => f.write_str("absent"),
        }
    }
}

impl SchemaInfo {
    /// Builds the record from the state encoder's plain values.
    pub fn new(root: u64, types: &[(String, u64)]) -> Self {
        SchemaInfo {
            root,
            types: types
                .iter()
                .map(|(name, fingerprint)| TypeFingerprint {
                    name: name.clone(),
                    fingerprint: *fingerprint,
                })
                .collect(),
        }
    }

    /// Compares this (the image's) schema with the running build's and
    /// names the first differing type in the image's table order.
    pub fn check_against(&self, root: u64, types: &[(String, u64)]) -> Result<(), SchemaMismatch> {
        let current: std::collections::HashMap<&str, u64> =
            types.iter().map(|(n, f)| (n.as_str(), *f)).collect();
        for t in &self.types {
            let now = current.get(t.name.as_str()).copied();
            if now != Some(t.fingerprint) {
                return Err(SchemaMismatch::Type {
                    type_name: t.name.clone(),
                    image: t.fingerprint,
                    current: CurrentFingerprint(now),
                });
            }
        }
        if self.root != root {
            return Err(SchemaMismatch::Root {
                image: self.root,
                current: root,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<(String, u64)> {
        vec![("kernel::Task".into(), 1), ("kernel::Fd".into(), 2)]
    }

    #[test]
    fn identical_schema_matches() {
        let image = SchemaInfo::new(7, &table());
        assert_eq!(image.check_against(7, &table()), Ok(()));
    }

    #[test]
    fn changed_type_is_named() {
        let image = SchemaInfo::new(7, &table());
        let mut now = table();
        now[1].1 = 3;
        let err = image.check_against(8, &now).unwrap_err();
        assert!(
            matches!(err, SchemaMismatch::Type { ref type_name, image: 2, current: CurrentFingerprint(Some(3)) } if type_name == "kernel::Fd")
        );
    }

    #[test]
    fn removed_type_is_named_absent() {
        let image = SchemaInfo::new(7, &table());
        let err = image.check_against(7, &table()[..1]).unwrap_err();
        assert!(matches!(
            err,
            SchemaMismatch::Type {
                current: CurrentFingerprint(None),
                ..
            }
        ));
    }

    #[test]
    fn root_only_difference_is_reported() {
        let image = SchemaInfo::new(7, &table());
        assert_eq!(
            image.check_against(9, &table()),
            Err(SchemaMismatch::Root {
                image: 7,
                current: 9
            })
        );
    }
}
