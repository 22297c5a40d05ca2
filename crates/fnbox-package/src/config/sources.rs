//! `layers:` (Lambda) and `dependencies:` (FunctionGraph) in function.yaml: lists of
//! directories or `.zip` files, relative to the package, that extensions and libraries are
//! shipped in.
//!
//! ```yaml
//! dialect: lambda
//! layers: [layers/telemetry-ext.zip, layers/shared-lib]   # merged in order, later ones win
//! ```
//!
//! ```yaml
//! dependencies: [deps/extension.zip]   # merged into the code directory, dependency wins
//! ```
//!
//! Only the list itself is checked here (strings, count, dialect); the files are checked and
//! merged by `crate::sources` when the package is loaded.

use serde_yaml_ng::Value;

use super::{describe, Dialect, Fields};
use crate::PackageError;

/// Most layers a Lambda function may use (Lambda's quota).
pub const MAX_LAYERS: usize = 5;
/// Most dependencies a FunctionGraph function may use (functiongraph-facts §1.2).
pub const MAX_DEPENDENCIES: usize = 20;

impl Fields<'_> {
    /// `(layers, dependencies)`.
    pub(super) fn sources(
        &self,
        dialect: Dialect,
    ) -> Result<(Vec<String>, Vec<String>), PackageError> {
        let layers = self.path_list(
            "layers",
            MAX_LAYERS,
            "Lambda's limit of 5 layers per function",
        )?;
        let dependencies = self.path_list(
            "dependencies",
            MAX_DEPENDENCIES,
            "FunctionGraph's limit of 20 dependencies per function",
        )?;
        if !layers.is_empty() && dialect != Dialect::Lambda {
            return Err(self.error(
                "layers",
                "layers are a Lambda feature (set dialect: lambda); FunctionGraph packages \
                 ship extensions and libraries as dependencies:",
            ));
        }
        if !dependencies.is_empty() && dialect != Dialect::FunctionGraph {
            return Err(self.error(
                "dependencies",
                "dependencies are a FunctionGraph feature; Lambda packages ship extensions \
                 and libraries as layers:",
            ));
        }
        Ok((layers, dependencies))
    }

    fn path_list(&self, field: &str, max: usize, rule: &str) -> Result<Vec<String>, PackageError> {
        let items = match self.values.get(field) {
            None => return Ok(Vec::new()),
            Some(Value::Sequence(items)) => items,
            Some(other) => {
                return Err(self.error(
                    field,
                    format!(
                        "expected a list of paths (directories or .zip files, relative to the \
                         package), found {}",
                        describe(other)
                    ),
                ))
            }
        };
        if items.len() > max {
            return Err(self.error(
                field,
                format!(
                    "lists {} entries; at most {max} are allowed ({rule})",
                    items.len()
                ),
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Value::String(path) = item else {
                return Err(self.error(
                    field,
                    format!(
                        "entry {} must be a path string, found {}",
                        i + 1,
                        describe(item)
                    ),
                ));
            };
            if path.trim().is_empty() {
                return Err(self.error(field, format!("entry {} is empty", i + 1)));
            }
            if out.contains(path) {
                return Err(self.error(field, format!("'{path}' is listed twice")));
            }
            out.push(path.clone());
        }
        Ok(out)
    }
}
