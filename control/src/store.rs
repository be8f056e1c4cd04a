//! `apply` and `delete`: resources stored as files in the watched
//! directory, one file per resource (`<kind>-<name>.yaml`), written only
//! after the whole resulting set validates, so a bad apply changes nothing.
//! Resources defined in files people wrote by hand are left to them:
//! applying or deleting one of those is refused with where it lives.
//! A Secret's file holds a private key: it is written readable by the
//! control plane's user only (0600).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::resources::{self, Resources};

pub struct Store {
    dir: PathBuf,
}

/// Why an operation was refused: one message per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    Invalid(Vec<String>),
    NotFound(String),
    Io(String),
}

type Files = BTreeMap<String, String>;

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    /// The file `apply` keeps a resource in.
    pub fn managed_path(&self, kind: &str, name: &str) -> PathBuf {
        self.dir
            .join(format!("{}-{name}.yaml", kind.to_ascii_lowercase()))
    }

    fn read(&self) -> Result<Files, StoreError> {
        let mut files = Files::new();
        let rd = std::fs::read_dir(&self.dir)
            .map_err(|e| StoreError::Io(format!("{}: {e}", self.dir.display())))?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file() && matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
            {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| StoreError::Io(format!("{}: {e}", p.display())))?;
                files.insert(p.display().to_string(), text);
            }
        }
        Ok(files)
    }

    /// Where each resource (kind, name) is defined now.
    fn locate(files: &Files) -> BTreeMap<(String, String), String> {
        let mut at = BTreeMap::new();
        for (file, text) in files {
            for d in resources::documents(file, text).unwrap_or_default() {
                at.insert((d.kind, d.name), file.clone());
            }
        }
        at
    }

    fn check(candidate: &Files) -> Result<Resources, StoreError> {
        let pairs: Vec<(String, String)> = candidate
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        resources::parse(&pairs)
            .map_err(|e| StoreError::Invalid(e.0.iter().map(|x| x.to_string()).collect()))
    }

    /// Validate `files` with everything in force; unless `dry_run`, store
    /// them. Returns one line per resource and the resulting set.
    pub fn apply(
        &self,
        files: &[(String, String)],
        dry_run: bool,
    ) -> Result<(Vec<String>, Resources), StoreError> {
        let mut docs = Vec::new();
        let mut errors = Vec::new();
        for (name, text) in files {
            match resources::documents(name, text) {
                Ok(d) => docs.extend(d),
                Err(e) => errors.extend(e.0.iter().map(|x| x.to_string())),
            }
        }
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        let existing = self.read()?;
        let at = Self::locate(&existing);
        let mut candidate = existing.clone();
        for d in &docs {
            let managed = self.managed_path(&d.kind, &d.name).display().to_string();
            match at.get(&(d.kind.clone(), d.name.clone())) {
                Some(file) if *file != managed => errors.push(format!(
                    "{}/{} is defined in {file}, which ringmeshctl does not manage: change it there",
                    d.kind, d.name
                )),
                _ => {
                    candidate.remove(&managed);
                }
            }
        }
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        // Checked with the files as the user wrote them, so errors carry
        // their names and lines.
        candidate.extend(files.iter().cloned());
        let resources = Self::check(&candidate)?;
        let mut results = Vec::new();
        for d in &docs {
            let path = self.managed_path(&d.kind, &d.name);
            let before = existing.get(&path.display().to_string());
            let what = match before {
                None => "created",
                Some(t) if *t == d.text => "unchanged",
                Some(_) => "configured",
            };
            if !dry_run && what != "unchanged" {
                write_atomically(&path, &d.text, d.kind == "Secret")?;
            }
            results.push(format!(
                "{}/{} {what}{}",
                d.kind,
                d.name,
                if dry_run { " (dry run)" } else { "" }
            ));
        }
        if dry_run {
            return Ok((results, resources));
        }
        // What is on disk now is what is in force.
        let stored = resources::load_dir(&self.dir)
            .map_err(|e| StoreError::Invalid(e.0.iter().map(|x| x.to_string()).collect()))?;
        Ok((results, stored))
    }

    /// Remove a resource `apply` stored, if nothing in force still needs it.
    pub fn delete(&self, kind: &str, name: &str) -> Result<(String, Resources), StoreError> {
        let existing = self.read()?;
        let at = Self::locate(&existing);
        let file = at
            .get(&(kind.to_string(), name.to_string()))
            .ok_or_else(|| StoreError::NotFound(format!("no {kind} named `{name}`")))?;
        let managed = self.managed_path(kind, name).display().to_string();
        if *file != managed {
            return Err(StoreError::Invalid(vec![format!(
                "{kind}/{name} is defined in {file}, which ringmeshctl does not manage: remove it there"
            )]));
        }
        let mut candidate = existing.clone();
        candidate.remove(&managed);
        Self::check(&candidate)?;
        std::fs::remove_file(&managed).map_err(|e| StoreError::Io(format!("{managed}: {e}")))?;
        let stored = resources::load_dir(&self.dir)
            .map_err(|e| StoreError::Invalid(e.0.iter().map(|x| x.to_string()).collect()))?;
        Ok((format!("{kind}/{name} deleted"), stored))
    }
}

/// Write to a temporary file and rename it over the target: the watcher
/// never reads half a file. A `private` file is created 0600, before any
/// byte is written to it.
fn write_atomically(path: &Path, text: &str, private: bool) -> Result<(), StoreError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("yaml.tmp");
    // A leftover from an interrupted write may have other permissions.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(|e| io_error(&tmp, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| io_error(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
}

fn io_error(p: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC: &str = "kind: Service\nmetadata: { name: s }\n";
    const ROUTE: &str = "kind: HTTPRoute\nmetadata: { name: r }\nspec: { parentRefs: [ { name: s } ], rules: [ { backendRefs: [ { name: s } ] } ] }\n";

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        (dir, store)
    }

    #[test]
    fn apply_creates_configures_and_leaves_unchanged() {
        let (dir, store) = store();
        let both = format!("{SVC}---\n{ROUTE}");
        let (results, res) = store
            .apply(&[("mine.yaml".into(), both.clone())], false)
            .unwrap();
        assert_eq!(results, ["Service/s created", "HTTPRoute/r created"]);
        assert_eq!(res.routes.len(), 1);
        assert!(
            dir.path().join("service-s.yaml").is_file()
                && dir.path().join("httproute-r.yaml").is_file()
        );
        let (results, _) = store.apply(&[("mine.yaml".into(), both)], false).unwrap();
        assert_eq!(results, ["Service/s unchanged", "HTTPRoute/r unchanged"]);
        let changed = ROUTE.replace("rules:", "hostnames: [], rules:");
        let (results, _) = store.apply(&[("r.yaml".into(), changed)], true).unwrap();
        assert_eq!(results, ["HTTPRoute/r configured (dry run)"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("httproute-r.yaml")).unwrap(),
            ROUTE,
            "dry run wrote nothing"
        );
    }

    #[test]
    fn namespaces_keep_same_named_resources_apart() {
        let (dir, store) = store();
        let shop = "apiVersion: v1\nkind: Service\nmetadata: { name: s, namespace: shop }\n";
        let (results, res) = store
            .apply(&[("a.yaml".into(), format!("{SVC}---\n{shop}"))], false)
            .unwrap();
        assert_eq!(results, ["Service/s created", "Service/s.shop created"]);
        assert_eq!(res.services.keys().collect::<Vec<_>>(), ["s", "s.shop"]);
        assert!(dir.path().join("service-s.shop.yaml").is_file());
        let (said, res) = store.delete("Service", "s.shop").unwrap();
        assert_eq!(said, "Service/s.shop deleted");
        assert_eq!(res.services.keys().collect::<Vec<_>>(), ["s"]);
        assert!(dir.path().join("service-s.yaml").is_file());
    }

    #[test]
    fn a_secrets_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, store) = store();
        let leaf = crate::resources::certs::testing::TestCa::new("ca")
            .unwrap()
            .leaf(&["a.test"])
            .unwrap();
        let block = |pem: &str| {
            pem.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        };
        let secret = format!(
            "kind: Secret\nmetadata: {{ name: a }}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
            block(&leaf.cert_pem),
            block(&leaf.key_pem)
        );
        let (results, _) = store
            .apply(&[("a.yaml".into(), format!("{SVC}---\n{secret}"))], false)
            .unwrap();
        assert_eq!(results, ["Service/s created", "Secret/a created"]);
        let mode = |f: &str| {
            std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("secret-a.yaml"), 0o600);
    }

    #[test]
    fn a_bad_apply_changes_nothing_and_names_the_users_file() {
        let (dir, store) = store();
        store
            .apply(&[("a.yaml".into(), SVC.into())], false)
            .unwrap();
        let bad = ROUTE.replace(
            "backendRefs: [ { name: s } ]",
            "backendRefs: [ { name: t } ]",
        );
        let err = store
            .apply(&[("new-route.yaml".into(), bad)], false)
            .unwrap_err();
        let StoreError::Invalid(lines) = err else {
            panic!("{err:?}")
        };
        assert_eq!(lines, ["new-route.yaml:3:72: HTTPRoute/r.spec.rules[0].backendRefs[0].name: no Service named `t`"]);
        assert!(!dir.path().join("httproute-r.yaml").exists());
    }

    #[test]
    fn delete_refuses_what_is_still_needed_or_hand_written() {
        let (dir, store) = store();
        store
            .apply(&[("a.yaml".into(), format!("{SVC}---\n{ROUTE}"))], false)
            .unwrap();
        let err = store.delete("Service", "s").unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid(l) if l[0].contains("no Service named `s`")),
            "{err:?}"
        );
        let (msg, res) = store.delete("HTTPRoute", "r").unwrap();
        assert_eq!(msg, "HTTPRoute/r deleted");
        assert!(res.routes.is_empty());
        assert_eq!(
            store.delete("HTTPRoute", "r").unwrap_err(),
            StoreError::NotFound("no HTTPRoute named `r`".into())
        );
        std::fs::write(
            dir.path().join("hand.yaml"),
            "kind: Service\nmetadata: { name: h }\n",
        )
        .unwrap();
        let err = store.delete("Service", "h").unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid(l) if l[0].contains("which ringmeshctl does not manage")),
            "{err:?}"
        );
        let err = store
            .apply(
                &[(
                    "x.yaml".into(),
                    "kind: Service\nmetadata: { name: h }\n".into(),
                )],
                false,
            )
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid(l) if l[0].contains("hand.yaml")),
            "{err:?}"
        );
    }
}
