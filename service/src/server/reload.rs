//! Values read from files and read again when the files change on disk (a rotated Kubernetes
//! secret swaps a symlink; a renewed certificate rewrites the file). A watcher task polls the
//! files' modification times and sizes; a reload that fails keeps the previous value and logs why,
//! so a half-written rotation never takes the server down.

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

/// The current value of something loaded from `paths`.
#[derive(Debug)]
pub(super) struct Reloading<T> {
    current: RwLock<Arc<T>>,
}

impl<T> Reloading<T> {
    /// The value now.
    pub(super) fn get(&self) -> Arc<T> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set(&self, value: T) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(value);
    }
}

/// What identifies a version of a file: modification time and length (None: unreadable).
type Stamp = Option<(SystemTime, u64)>;

fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    paths
        .iter()
        .map(|path| std::fs::metadata(path).ok().and_then(|meta| Some((meta.modified().ok()?, meta.len()))))
        .collect()
}

/// Loads a value from `paths` with `load` (failing now if it cannot), and re-loads it every
/// `interval` in which one of the files changed, until the returned value is dropped.
pub(super) fn watch<T, E>(
    what: &'static str,
    paths: Vec<PathBuf>,
    interval: Duration,
    load: impl Fn() -> Result<T, E> + Send + Sync + 'static,
) -> Result<Arc<Reloading<T>>, E>
where
    T: Send + Sync + 'static,
    E: std::fmt::Display,
{
    let mut seen = stamps(&paths);
    let value = Arc::new(Reloading { current: RwLock::new(Arc::new(load()?)) });
    let weak = Arc::downgrade(&value);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(value) = weak.upgrade() else { return };
            let now = stamps(&paths);
            if now == seen {
                continue;
            }
            match load() {
                Ok(loaded) => {
                    value.set(loaded);
                    seen = now;
                    tracing::info!(what, "reloaded after a change on disk");
                }
                // Retried at the next tick: `seen` is left as it was.
                Err(error) => tracing::error!(what, %error, "reload failed; keeping the previous version"),
            }
        }
    });
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_changed_file_is_read_again_and_a_broken_one_is_not() {
        let path = std::env::temp_dir().join(format!("explain-reload-{}.txt", std::process::id()));
        std::fs::write(&path, "1").expect("write");
        let read = {
            let path = path.clone();
            move || {
                std::fs::read_to_string(&path)
                    .map_err(|e| e.to_string())?
                    .trim()
                    .parse::<u32>()
                    .map_err(|e| e.to_string())
            }
        };
        let value = watch("number", vec![path.clone()], Duration::from_millis(20), read).expect("loads");
        assert_eq!(*value.get(), 1);
        std::fs::write(&path, "22").expect("rewrite");
        for _ in 0..200 {
            if *value.get() == 22 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*value.get(), 22, "the new contents were picked up");
        std::fs::write(&path, "not a number").expect("break it");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*value.get(), 22, "a broken file keeps the previous value");
        std::fs::remove_file(&path).expect("remove");
    }
}
