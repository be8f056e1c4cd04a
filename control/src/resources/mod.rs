//! Mesh resources from YAML files: read, checked, all errors at once.
//!
//! A file holds one or more documents separated by `---`. Each document's
//! `kind` says what it is; it is then read strictly (unknown fields are
//! errors) and checked: names, references between resources, durations,
//! addresses. Every problem is reported with file, line, column and field
//! path (`HTTPRoute/checkout.spec.rules[0].backendRefs[1].name`), and a
//! set with any problem is rejected as a whole.

pub mod certs;
pub mod model;
pub mod raw;
mod validate;

use std::fmt;
use std::path::Path;

pub use model::Resources;

/// One problem in a resource file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// e.g. `Service/checkout.spec.endpoints[1]`; empty for syntax errors.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: ", self.file)?,
            line => write!(f, "{}:{}:{}: ", self.file, line, self.column)?,
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// `text` with anything that could be key material taken out: PEM blocks
/// (`-----BEGIN ...` to its `-----END ...-----`) and quoted values longer
/// than any name or host name. Every error message about resources goes
/// through it, so a key pasted into the wrong field (a name, a reference)
/// is not echoed back into logs, `ringmeshctl` output or `status`.
pub fn redact(text: &str) -> String {
    /// Longer than a host name (253): only pasted material is this long.
    const LONGEST_SHOWN: usize = 256;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN") {
        out.push_str(&rest[..start]);
        out.push_str("[PEM redacted]");
        let after = &rest[start + "-----BEGIN".len()..];
        rest = match after.find("-----END") {
            Some(end) => {
                let tail = &after[end + "-----END".len()..];
                match tail.find("-----") {
                    Some(close) => tail[close + "-----".len()..].trim_start_matches(['\r', '\n']),
                    None => "",
                }
            }
            None => "",
        };
    }
    out.push_str(rest);
    // Backtick-quoted values, as the messages write them.
    let mut shown = String::with_capacity(out.len());
    let mut parts = out.split('`');
    if let Some(first) = parts.next() {
        shown.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        shown.push('`');
        if i % 2 == 0 && part.len() > LONGEST_SHOWN {
            shown.push_str(&format!("[{} characters, not shown]", part.chars().count()));
        } else {
            shown.push_str(part);
        }
    }
    shown
}

/// Every problem in a set of resource files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceErrors(pub Vec<ResourceError>);

impl fmt::Display for ResourceErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ResourceErrors {}

/// Read every `*.yaml` / `*.yml` file in `dir` (not recursive), in name
/// order.
pub fn load_dir(dir: &Path) -> Result<Resources, ResourceErrors> {
    let unreadable = |e: std::io::Error| {
        ResourceErrors(vec![ResourceError {
            file: dir.display().to_string(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }])
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for p in paths {
        files.push((
            p.display().to_string(),
            std::fs::read_to_string(&p).map_err(unreadable)?,
        ));
    }
    parse(&files)
}

/// The example mesh the unit tests share.
#[cfg(test)]
pub(crate) fn validate_tests_mesh() -> &'static str {
    validate::tests::MESH
}

/// The Gateway API set the unit tests share.
#[cfg(test)]
pub(crate) fn validate_api_mesh() -> &'static str {
    validate::api_tests::API
}

/// The AuthorizationPolicy set the unit tests share.
#[cfg(test)]
pub(crate) fn validate_authz_mesh() -> &'static str {
    validate::authz_tests::AUTHZ
}

/// The TrafficPolicy set the unit tests share.
#[cfg(test)]
pub(crate) fn validate_traffic_policy_mesh() -> &'static str {
    validate::traffic_policy_tests::POLICY
}

/// The PeerAuthentication set the unit tests share.
#[cfg(test)]
pub(crate) fn validate_peer_authn_mesh() -> &'static str {
    validate::peer_authn_tests::PEER_AUTHN
}

/// The Telemetry set the unit tests share.
#[cfg(test)]
pub(crate) fn validate_telemetry_mesh() -> &'static str {
    validate::telemetry_tests::TELEMETRY
}

/// One resource document of a file, identified but not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub kind: String,
    /// Qualified: `name`, or `name.namespace` outside the default one.
    pub name: String,
    /// The document's own text (what `apply` stores).
    pub text: String,
    /// Its first line in the file.
    pub line: u64,
}

/// Split a file into its resource documents, each with kind and name.
pub fn documents(file: &str, text: &str) -> Result<Vec<Document>, ResourceErrors> {
    #[derive(serde::Deserialize)]
    struct Meta {
        name: Option<String>,
        namespace: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Ident {
        kind: Option<String>,
        metadata: Option<Meta>,
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (offset, doc) in validate::split_documents(text) {
        let err = |message: String| ResourceError {
            file: file.to_string(),
            line: offset + 1,
            column: 1,
            path: String::new(),
            message: redact(&message),
        };
        match serde_saphyr::from_str::<Ident>(doc) {
            Ok(Ident {
                kind: Some(kind),
                metadata:
                    Some(Meta {
                        name: Some(name),
                        namespace,
                    }),
            }) => out.push(Document {
                kind,
                name: model::qualified(
                    &name,
                    namespace.as_deref().unwrap_or(model::DEFAULT_NAMESPACE),
                ),
                text: doc.to_string(),
                line: offset + 1,
            }),
            Ok(_) => errors.push(err("a resource needs `kind` and `metadata.name`".into())),
            Err(e) => errors.push(err(e
                .without_snippet()
                .to_string()
                .lines()
                .next()
                .unwrap_or("invalid YAML")
                .to_string())),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ResourceErrors(errors))
    }
}

/// Parse and check a set of (file name, text) pairs as one whole.
pub fn parse(files: &[(String, String)]) -> Result<Resources, ResourceErrors> {
    validate::parse(files)
}
