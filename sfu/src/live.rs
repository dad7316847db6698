//! Settings that a configuration reload changes while the server runs.

use std::sync::{Arc, RwLock};

/// A value that a reload replaces and every reader sees from its next read
/// (limits, service hours). Reads are rare next to packets: a connection,
/// a request, an allocation. Cheap to clone; clones share the value.
#[derive(Debug, Default)]
pub struct Live<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live(self.0.clone())
    }
}

impl<T> Live<T> {
    /// Starts with `value`.
    pub fn new(value: T) -> Self {
        Live(Arc::new(RwLock::new(Arc::new(value))))
    }

    /// The value now.
    pub fn get(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `value` in force for every later read.
    pub fn replace(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}

#[cfg(test)]
mod tests {
    use super::Live;

    #[test]
    fn clones_see_a_replacement() {
        let a = Live::new(1);
        let b = a.clone();
        let before = a.get();
        b.replace(2);
        assert_eq!((*before, *a.get()), (1, 2));
    }
}
