//! Function references as the two front doors spell them: FunctionGraph URNs with their short
//! forms (functiongraph-facts §5.3) and Lambda function names, partial ARNs and ARNs.
//!
//! Pure parsing: whether the function exists is the registry's business.

use fnbox_wire::front::{lambda_values, values};

/// A function version as a FunctionGraph URN names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    /// `latest` (also when the URN gives no version).
    Latest,
    /// Any other version, e.g. `v1`.
    Other(String),
    /// An alias, written `!name`.
    Alias(String),
}

/// A function as a FunctionGraph URN (or short form) names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FgRef {
    /// Project id when given (not checked: fnbox serves one local project).
    pub project: Option<String>,
    /// Package (application); `None` means `default`.
    pub package: Option<String>,
    /// Function name.
    pub name: String,
    /// Version or alias.
    pub version: Version,
}

/// `^[A-Za-z][A-Za-z0-9_-]{0,59}$`, the name rule of functions and packages.
fn valid_fg_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && s.len() <= 60
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Parses a FunctionGraph URN or one of its short forms:
///
/// | fields | form |
/// |---|---|
/// | 1 | `name` |
/// | 2 | `package:name` |
/// | 3 | `project:package:name` |
/// | 4 | `project:package:name:version` (or `:!alias`) |
/// | 7 | `urn:fss:region:project:function:package:name` |
/// | 8 | `urn:fss:region:project:function:package:name:version` (or `:!alias`) |
///
/// The error says what is wrong, for `FSS.1309`.
pub fn parse_fg_urn(urn: &str) -> Result<FgRef, String> {
    const FULL: &str = "urn:fss:<region>:<project>:function:<package>:<name>[:<version>|:!<alias>]";
    let fields: Vec<&str> = urn.split(':').collect();
    if let Some(i) = fields.iter().position(|f| f.is_empty()) {
        return Err(format!("field {} is empty (full form: {FULL})", i + 1));
    }
    let (project, package, name, version) = match fields.as_slice() {
        [name] => (None, None, *name, None),
        [package, name] => (None, Some(*package), *name, None),
        [project, package, name] => (Some(*project), Some(*package), *name, None),
        [project, package, name, version] => {
            (Some(*project), Some(*package), *name, Some(*version))
        }
        [urn_, fss, _region, project, function, package, name, rest @ ..] if rest.len() <= 1 => {
            if *urn_ != "urn" || *fss != "fss" || *function != "function" {
                return Err(format!(
                    "a {}-field URN must read {FULL}",
                    fields.len()
                ));
            }
            (Some(*project), Some(*package), *name, rest.first().copied())
        }
        _ => {
            return Err(format!(
                "a function URN has 1, 2, 3, 4, 7 or 8 colon-separated fields ({FULL}, or the short forms name, package:name, project:package:name, project:package:name:version), this one has {}",
                fields.len()
            ))
        }
    };
    if !valid_fg_name(name) {
        return Err(format!(
            "function name {name:?} does not match ^[A-Za-z][A-Za-z0-9_-]{{0,59}}$"
        ));
    }
    if let Some(p) = package {
        if !valid_fg_name(p) {
            return Err(format!(
                "package {p:?} does not match ^[A-Za-z][A-Za-z0-9_-]{{0,59}}$"
            ));
        }
    }
    let version = match version {
        None | Some(values::LATEST) => Version::Latest,
        Some(v) => match v.strip_prefix('!') {
            Some("") => return Err("the alias after '!' is empty".into()),
            Some(alias) => Version::Alias(alias.to_string()),
            None => Version::Other(v.to_string()),
        },
    };
    Ok(FgRef {
        project: project.map(String::from),
        package: package.map(String::from),
        name: name.to_string(),
        version,
    })
}

/// A function as Lambda's Invoke API names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LambdaRef {
    /// Function name.
    pub name: String,
    /// Version or alias, when given (in the name/ARN or as `?Qualifier=`).
    pub qualifier: Option<String>,
}

impl LambdaRef {
    /// Whether the qualifier is absent or `$LATEST`, the only version fnbox serves.
    pub fn is_latest(&self) -> bool {
        self.qualifier
            .as_deref()
            .is_none_or(|q| q == lambda_values::LATEST)
    }
}

fn valid_lambda_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_qualifier(s: &str) -> bool {
    s == lambda_values::LATEST
        || (!s.is_empty()
            && s.len() <= 128
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
}

/// Parses Lambda's `FunctionName` (`name`, `name:qualifier`, `account:function:name[:qualifier]`,
/// `arn:<partition>:lambda:<region>:<account>:function:name[:qualifier]`) and the optional
/// `Qualifier` query parameter. The error is a `ValidationException` message.
pub fn parse_lambda_name(raw: &str, query_qualifier: Option<&str>) -> Result<LambdaRef, String> {
    let fields: Vec<&str> = raw.split(':').collect();
    let shape = || {
        format!(
            "1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy constraint: Member must be a function name ([a-zA-Z0-9-_]{{1,64}}), name:qualifier, <account>:function:<name>[:qualifier] or arn:aws:lambda:<region>:<account>:function:<name>[:qualifier]"
        )
    };
    let (name, qualifier) = match fields.as_slice() {
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        [_account, "function", name] => (*name, None),
        [_account, "function", name, q] => (*name, Some(*q)),
        ["arn", _partition, "lambda", _region, _account, "function", name, rest @ ..]
            if rest.len() <= 1 =>
        {
            (*name, rest.first().copied())
        }
        _ => return Err(shape()),
    };
    if !valid_lambda_name(name) || !qualifier.is_none_or(valid_qualifier) {
        return Err(shape());
    }
    let qualifier = match (qualifier, query_qualifier) {
        (Some(a), Some(b)) if a != b => return Err(
            "The derived qualifier from the function name does not match the specified qualifier."
                .into(),
        ),
        (Some(a), _) => Some(a.to_string()),
        (None, Some(b)) if !valid_qualifier(b) => return Err(shape()),
        (None, b) => b.map(String::from),
    };
    Ok(LambdaRef {
        name: name.to_string(),
        qualifier,
    })
}

/// The ARN fnbox reports for a function (`arn:aws:lambda:us-east-1:012345678912:function:<name>`,
/// the account Lambda's emulator uses).
pub fn lambda_arn(name: &str) -> String {
    format!(
        "arn:aws:lambda:{}:{}:function:{name}",
        lambda_values::REGION,
        lambda_values::ACCOUNT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fg(urn: &str) -> FgRef {
        parse_fg_urn(urn).unwrap_or_else(|e| panic!("{urn}: {e}"))
    }

    #[test]
    fn every_short_form() {
        let r = fg("hello");
        assert_eq!(
            (r.project, r.package, r.name.as_str(), r.version),
            (None, None, "hello", Version::Latest)
        );
        let r = fg("pkg:hello");
        assert_eq!(
            (r.package.as_deref(), r.name.as_str()),
            (Some("pkg"), "hello")
        );
        let r = fg("proj:default:hello");
        assert_eq!(
            (r.project.as_deref(), r.package.as_deref()),
            (Some("proj"), Some("default"))
        );
        assert_eq!(fg("proj:default:hello:latest").version, Version::Latest);
        assert_eq!(
            fg("proj:default:hello:v2").version,
            Version::Other("v2".into())
        );
        assert_eq!(
            fg("proj:default:hello:!prod").version,
            Version::Alias("prod".into())
        );
        let r = fg("urn:fss:eu-de:abc:function:default:hello");
        assert_eq!(
            (r.project.as_deref(), r.name.as_str(), r.version),
            (Some("abc"), "hello", Version::Latest)
        );
        assert_eq!(
            fg("urn:fss:local:local:function:default:hello:latest").version,
            Version::Latest
        );
        assert_eq!(
            fg("urn:fss:local:local:function:default:hello:!a").version,
            Version::Alias("a".into())
        );
    }

    #[test]
    fn malformed_urns() {
        for bad in [
            "",
            "a:b:c:d:e",
            "a:b:c:d:e:f",
            "urn:fss:r:p:function:pkg:name:v:extra",
            "urn:xxx:r:p:function:pkg:name",
            "urn:fss:r:p:functions:pkg:name:latest",
            "a::b",
            "1abc",
            "pkg:bad name",
            "p:default:hello:!",
        ] {
            assert!(parse_fg_urn(bad).is_err(), "{bad:?} should be refused");
        }
        let e = parse_fg_urn("a:b:c:d:e").unwrap_err();
        assert!(e.contains("this one has 5"), "{e}");
    }

    #[test]
    fn lambda_names_and_arns() {
        let r = parse_lambda_name("my-fn", None).unwrap();
        assert_eq!((r.name.as_str(), r.qualifier), ("my-fn", None));
        assert!(parse_lambda_name("my-fn:$LATEST", None)
            .unwrap()
            .is_latest());
        assert!(!parse_lambda_name("my-fn:prod", None).unwrap().is_latest());
        let r = parse_lambda_name("arn:aws:lambda:us-east-1:123456789012:function:my-fn", None)
            .unwrap();
        assert_eq!(r.name, "my-fn");
        let r = parse_lambda_name(
            "arn:aws:lambda:eu-west-1:123456789012:function:my-fn:$LATEST",
            None,
        )
        .unwrap();
        assert!(r.is_latest());
        let r = parse_lambda_name("123456789012:function:my-fn:v1", None).unwrap();
        assert_eq!(r.qualifier.as_deref(), Some("v1"));
        let r = parse_lambda_name("my-fn", Some("7")).unwrap();
        assert_eq!(r.qualifier.as_deref(), Some("7"));
        assert!(parse_lambda_name("my-fn:1", Some("2")).is_err());
        for bad in [
            "",
            "a b",
            "arn:aws:lambda:r:a:layer:x",
            "a:b:c",
            &"x".repeat(65),
        ] {
            assert!(parse_lambda_name(bad, None).is_err(), "{bad:?}");
        }
    }
}
