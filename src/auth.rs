//! API keys, roles and groups: who may do what.
//!
//! Keys are 256-bit random secrets shown once; only their SHA-256 digest is kept, in
//! memory and in `<data-dir>/keys.json`. Because the secret is uniformly random, a fast
//! hash is enough (no KDF) and the map lookup by digest leaks nothing usable through
//! timing; the final comparison still uses `subtle`. The bootstrap admin key comes from
//! the settings or is generated into `<data-dir>/admin.key` (mode 0600) at first start.
//! Called by the HTTP extractors; thread-safe (a read lock per request, writes rare).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::persist::replace_file;
use utoipa::ToSchema;

use crate::error::{ErrorCode, Problem};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, on every database.
    Admin,
    /// Read and write the databases of its groups, their fields and settings.
    Editor,
    /// Look up and query the databases of its groups.
    Reader,
    /// Upload plugins.
    PluginPublisher,
}

/// What a request needs on a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Look up, list, query.
    Read,
    /// Write profiles; change fields and settings.
    Write,
}

/// What a request does to suppression lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListAccess {
    /// See lists, their descriptions and counts.
    Read,
    /// See the entries themselves (addresses and numbers).
    Entries,
    /// Create a list, describe it, add entries.
    Add,
    /// Remove entries, delete a list.
    Remove,
}

/// A stored key (`keys.json`): never the secret, only its digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public id, used to delete the key.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Groups whose databases the key reaches (admins reach all).
    pub groups: Vec<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// Hex SHA-256 of the secret.
    pub digest: String,
}

impl KeyRecord {
    /// Whether this key may `access` a database of `group`.
    pub fn can(&self, access: Access, group: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Editor => self.in_group(group),
            Role::Reader => access == Access::Read && self.in_group(group),
            Role::PluginPublisher => false,
        }
    }

    /// Whether the key's groups include `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Fails with `forbidden` unless the key may `access` a database of `group`.
    pub fn require(&self, access: Access, database: &str, group: &str) -> Result<(), Problem> {
        if self.can(access, group) {
            return Ok(());
        }
        let what = match access {
            Access::Read => "read",
            Access::Write => "write",
        };
        Err(Problem::new(
            ErrorCode::Forbidden,
            format!(
                "key `{}` ({:?}, groups {:?}) may not {what} database `{database}` of group `{group}`",
                self.name, self.role, self.groups
            ),
        ))
    }

    /// Fails with `forbidden` unless the key may upload and delete plugins (admins and
    /// plugin publishers).
    pub fn require_publish(&self) -> Result<(), Problem> {
        if matches!(self.role, Role::Admin | Role::PluginPublisher) {
            return Ok(());
        }
        Err(Problem::new(
            ErrorCode::Forbidden,
            format!(
                "key `{}` ({:?}) may not upload or delete plugins: that takes role `plugin_publisher` or `admin`",
                self.name, self.role
            ),
        ))
    }

    /// Fails with `forbidden` unless the key may create or move databases into `group`:
    /// admins anywhere, editors within their groups.
    pub fn require_manage(&self, group: &str) -> Result<(), Problem> {
        if self.role == Role::Admin || (self.role == Role::Editor && self.in_group(group)) {
            return Ok(());
        }
        Err(Problem::new(
            ErrorCode::Forbidden,
            format!(
                "key `{}` ({:?}, groups {:?}) may not place databases in group `{group}`",
                self.name, self.role, self.groups
            ),
        ))
    }

    /// Fails with `forbidden` unless the key may do `access` to suppression lists.
    ///
    /// Lists are the server's, shared by every group: adding entries only protects
    /// more people, so editors may; taking entries out or deleting a list re-opens
    /// sending to people who opted out in any group, so only admins may; reading
    /// entries (addresses) takes an editor or admin, reading a list's counts any role
    /// that reads databases.
    pub fn require_lists(&self, access: ListAccess) -> Result<(), Problem> {
        let ok = matches!(
            (self.role, access),
            (Role::Admin, _)
                | (
                    Role::Editor,
                    ListAccess::Read | ListAccess::Entries | ListAccess::Add
                )
                | (Role::Reader, ListAccess::Read)
        );
        if ok {
            return Ok(());
        }
        let what = match access {
            ListAccess::Read => "read suppression lists",
            ListAccess::Entries => "read suppression list entries (an editor or admin may)",
            ListAccess::Add => "create suppression lists or add entries (an editor or admin may)",
            ListAccess::Remove => "remove suppression list entries or delete lists (an admin may)",
        };
        Err(Problem::new(
            ErrorCode::Forbidden,
            format!("key `{}` ({:?}) may not {what}", self.name, self.role),
        ))
    }

    /// Fails with `forbidden` unless the key is an admin.
    pub fn require_admin(&self) -> Result<(), Problem> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(Problem::new(
                ErrorCode::Forbidden,
                format!("key `{}` is not an admin key", self.name),
            ))
        }
    }
}

/// The id of the bootstrap admin key, which lives in the settings or `admin.key`.
pub const BOOTSTRAP_ID: &str = "admin";

/// All keys, by digest.
#[derive(Debug)]
pub struct KeyRing {
    file: Option<PathBuf>,
    by_digest: RwLock<HashMap<[u8; 32], Arc<KeyRecord>>>,
    // Serializes changes: each one saves a new map to disk before it is swapped in, so a
    // failed save changes nothing and readers never wait on the file.
    changes: parking_lot::Mutex<()>,
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new random key secret: `pk_` and 64 hex digits.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    format!("pk_{}", hex::encode(bytes))
}

/// Where the bootstrap admin key came from, for the start-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminKeySource {
    /// The `admin_key` setting (`PERSONA_ADMIN_KEY`).
    Setting,
    /// An existing key file.
    File(PathBuf),
    /// Generated now into this file.
    Generated(PathBuf),
}

/// Why the key ring could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The keys file is not what we wrote.
    #[error("{path} is not a valid keys file: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The admin key is too short to be a secret.
    #[error("{0} holds an admin key of {1} bytes; use at least {MIN_ADMIN_KEY} random bytes")]
    WeakAdminKey(String, usize),
    /// The admin key file is readable by others.
    #[error("{0} may be read by other users (mode {1:o}); run `chmod 600 {0}`")]
    Exposed(PathBuf, u32),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyRingError + '_ {
    move |source| KeyRingError::Io {
        path: path.to_owned(),
        source,
    }
}

impl KeyRing {
    /// Opens the keys of `data_dir` (or memory only when `None`) with the bootstrap admin
    /// key from `admin_key`, the key file, or a new one.
    pub fn open(
        data_dir: Option<&Path>,
        admin_key: Option<&str>,
    ) -> Result<(Self, AdminKeySource), KeyRingError> {
        let ring = KeyRing {
            file: data_dir.map(|d| d.join("keys.json")),
            by_digest: RwLock::new(HashMap::new()),
            changes: parking_lot::Mutex::new(()),
        };
        if let Some(file) = &ring.file
            && file.exists()
        {
            let text = fs::read_to_string(file).map_err(io(file))?;
            let records: Vec<KeyRecord> =
                serde_json::from_str(&text).map_err(|e| KeyRingError::Corrupt {
                    path: file.clone(),
                    detail: e.to_string(),
                })?;
            let mut map = ring.by_digest.write();
            for r in records {
                let mut d = [0u8; 32];
                hex::decode_to_slice(&r.digest, &mut d).map_err(|e| KeyRingError::Corrupt {
                    path: file.clone(),
                    detail: format!("key `{}`: {e}", r.id),
                })?;
                map.insert(d, Arc::new(r));
            }
        }
        let (secret, source) = match (admin_key, data_dir) {
            (Some(k), _) => {
                check_admin_key(k, "the admin_key setting")?;
                (k.to_owned(), AdminKeySource::Setting)
            }
            (None, Some(dir)) => {
                let path = dir.join("admin.key");
                if path.exists() {
                    check_private(&path)?;
                    let k = fs::read_to_string(&path).map_err(io(&path))?;
                    check_admin_key(k.trim(), &path.display().to_string())?;
                    (k.trim().to_owned(), AdminKeySource::File(path))
                } else {
                    let k = new_secret();
                    replace_file(&path, k.as_bytes(), 0o600).map_err(io(&path))?;
                    (k, AdminKeySource::Generated(path))
                }
            }
            (None, None) => (new_secret(), AdminKeySource::Setting),
        };
        ring.by_digest.write().insert(
            digest(&secret),
            Arc::new(KeyRecord {
                id: BOOTSTRAP_ID.into(),
                name: "bootstrap admin".into(),
                role: Role::Admin,
                groups: Vec::new(),
                created_at: Timestamp::now(),
                digest: String::new(),
            }),
        );
        Ok((ring, source))
    }

    /// The key a bearer secret belongs to.
    pub fn authenticate(&self, secret: &str) -> Option<Arc<KeyRecord>> {
        let d = digest(secret);
        let map = self.by_digest.read();
        let (stored, record) = map.get_key_value(&d)?;
        bool::from(stored.ct_eq(&d)).then(|| Arc::clone(record))
    }

    /// Creates a key; returns its record and the secret (shown once).
    pub fn create(
        &self,
        name: String,
        role: Role,
        groups: Vec<String>,
    ) -> Result<(KeyRecord, String), Problem> {
        if name.is_empty() || name.len() > 128 {
            return Err(Problem::new(
                ErrorCode::InvalidBody,
                "a key name is 1 to 128 bytes",
            ));
        }
        if let Some(bad) = groups.iter().find(|g| !crate::schema::database::is_name(g)) {
            return Err(Problem::new(
                ErrorCode::InvalidBody,
                format!("`{bad}` is not a group name: 1 to 64 of a-z, 0-9, `_`, `-`"),
            ));
        }
        let secret = new_secret();
        let d = digest(&secret);
        let record = KeyRecord {
            id: ulid::Ulid::new().to_string().to_lowercase(),
            name,
            role,
            groups,
            created_at: Timestamp::now(),
            digest: hex::encode(d),
        };
        self.change(|map| {
            map.insert(d, Arc::new(record.clone()));
            Ok(())
        })?;
        Ok((record, secret))
    }

    /// Every key, oldest first.
    pub fn list(&self) -> Vec<Arc<KeyRecord>> {
        let mut all: Vec<Arc<KeyRecord>> = self.by_digest.read().values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        all
    }

    /// Deletes a key by id; it stops working at once.
    pub fn delete(&self, id: &str) -> Result<(), Problem> {
        if id == BOOTSTRAP_ID {
            return Err(Problem::new(
                ErrorCode::Forbidden,
                "the bootstrap admin key cannot be deleted; change PERSONA_ADMIN_KEY or admin.key instead",
            ));
        }
        self.change(|map| {
            let before = map.len();
            map.retain(|_, r| r.id != id);
            if map.len() == before {
                return Err(Problem::new(
                    ErrorCode::KeyNotFound,
                    format!("no key `{id}`"),
                ));
            }
            Ok(())
        })
    }

    /// Applies `edit` to a copy of the keys, saves the copy, then publishes it.
    fn change(
        &self,
        edit: impl FnOnce(&mut HashMap<[u8; 32], Arc<KeyRecord>>) -> Result<(), Problem>,
    ) -> Result<(), Problem> {
        let _one_at_a_time = self.changes.lock();
        let mut next = self.by_digest.read().clone();
        edit(&mut next)?;
        self.save(&next)?;
        *self.by_digest.write() = next;
        Ok(())
    }

    fn save(&self, map: &HashMap<[u8; 32], Arc<KeyRecord>>) -> Result<(), Problem> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let records: Vec<&KeyRecord> = map
            .values()
            .filter(|r| r.id != BOOTSTRAP_ID)
            .map(|r| &**r)
            .collect();
        let json = serde_json::to_vec_pretty(&records).expect("key records serialize");
        replace_file(file, &json, 0o600)
            .map_err(|e| Problem::new(ErrorCode::Internal, format!("could not save keys: {e}")))
    }
}

/// The shortest admin key accepted: a guessable admin key would be worse than none.
pub const MIN_ADMIN_KEY: usize = 16;

fn check_admin_key(key: &str, from: &str) -> Result<(), KeyRingError> {
    if key.len() < MIN_ADMIN_KEY {
        return Err(KeyRingError::WeakAdminKey(from.to_owned(), key.len()));
    }
    Ok(())
}

fn check_private(path: &Path) -> Result<(), KeyRingError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyRingError::Exposed(path.to_owned(), mode));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_groups_gate_access() {
        let key = |role, groups: &[&str]| KeyRecord {
            id: "k".into(),
            name: "k".into(),
            role,
            groups: groups.iter().map(|s| s.to_string()).collect(),
            created_at: Timestamp::UNIX_EPOCH,
            digest: String::new(),
        };
        assert!(key(Role::Admin, &[]).can(Access::Write, "x"));
        assert!(key(Role::Editor, &["a"]).can(Access::Write, "a"));
        assert!(!key(Role::Editor, &["a"]).can(Access::Read, "b"));
        assert!(key(Role::Reader, &["a"]).can(Access::Read, "a"));
        assert!(!key(Role::Reader, &["a"]).can(Access::Write, "a"));
        assert!(!key(Role::PluginPublisher, &["a"]).can(Access::Read, "a"));
    }

    #[test]
    fn keys_persist_hashed_and_admin_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let (ring, source) = KeyRing::open(Some(dir.path()), None).unwrap();
        let AdminKeySource::Generated(path) = source else {
            panic!("{source:?}")
        };
        let admin = fs::read_to_string(&path).unwrap();
        assert_eq!(ring.authenticate(admin.trim()).unwrap().role, Role::Admin);
        let (rec, secret) = ring
            .create("web".into(), Role::Reader, vec!["m".into()])
            .unwrap();
        let stored = fs::read_to_string(dir.path().join("keys.json")).unwrap();
        assert!(!stored.contains(&secret) && stored.contains(&rec.digest));

        let (again, source) = KeyRing::open(Some(dir.path()), None).unwrap();
        assert!(matches!(source, AdminKeySource::File(_)));
        assert_eq!(again.authenticate(&secret).unwrap().id, rec.id);
        assert!(again.authenticate("pk_wrong").is_none());
        again.delete(&rec.id).unwrap();
        assert!(again.authenticate(&secret).is_none());

        assert!(matches!(
            KeyRing::open(Some(dir.path()), Some("short")),
            Err(KeyRingError::WeakAdminKey(..))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                KeyRing::open(Some(dir.path()), None),
                Err(KeyRingError::Exposed(..))
            ));
        }
    }
}
