//! An on-disk cache of derived graphs, keyed by content: a file per key, written atomically.
//! A cache that cannot be created or written (a read-only root filesystem) is skipped with a
//! warning; the service then derives graphs at every start.

use std::path::PathBuf;

/// A folder of cached graphs, or none.
#[derive(Clone, Debug)]
pub struct GraphCache {
    dir: Option<PathBuf>,
}

impl GraphCache {
    /// A cache in `dir` (created if missing); disabled when `dir` is `None` or unusable.
    pub fn new(dir: Option<PathBuf>) -> Self {
        let dir = dir.filter(|dir| match std::fs::create_dir_all(dir) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "graph cache disabled: cannot create its folder");
                false
            }
        });
        Self { dir }
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join(format!("{key}.onnx")))
    }

    /// The bytes cached under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.path(key)?).ok()?;
        tracing::info!(key, "graph cache hit");
        Some(bytes)
    }

    /// Caches `bytes` under `key`; failures are logged, not returned.
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let Some(path) = self.path(key) else { return };
        let partial = path.with_extension(format!("{}.partial", std::process::id()));
        let written = std::fs::write(&partial, bytes).and_then(|()| std::fs::rename(&partial, &path));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&partial);
            tracing::warn!(path = %path.display(), %error, "cannot write to the graph cache");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_returns_by_key() {
        let dir = std::env::temp_dir().join(format!("explain-cache-test-{}", std::process::id()));
        let cache = GraphCache::new(Some(dir.clone()));
        assert_eq!(cache.get("k"), None);
        cache.put("k", b"graph");
        assert_eq!(cache.get("k").as_deref(), Some(&b"graph"[..]));
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[test]
    fn an_unusable_folder_disables_the_cache() {
        let cache = GraphCache::new(Some(PathBuf::from("/proc/explain-cannot-create-this")));
        cache.put("k", b"graph");
        assert_eq!(cache.get("k"), None);
        assert_eq!(GraphCache::new(None).get("k"), None);
    }
}
