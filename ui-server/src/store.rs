//! The flow store, opened for queries only (the engine keeps the connection read-only, as for
//! `observe query`) and lazily: the server starts before the relay has created the store, and
//! answers 502 naming the store until it can open it. Maps storage errors to API errors.

use tokio::sync::OnceCell;
use vigil_storage::{AnyStore, Dialect, QueryResult, Store as _};

use crate::error::ApiError;

/// The store named by `--store`.
#[derive(Debug)]
pub struct StoreHandle {
    url: String,
    store: OnceCell<AnyStore>,
}

impl StoreHandle {
    pub fn new(url: &str) -> StoreHandle {
        StoreHandle {
            url: url.to_owned(),
            store: OnceCell::new(),
        }
    }

    /// The URL given.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> ApiError {
        ApiError::Store {
            url: self.url.clone(),
            message: e.to_string(),
        }
    }

    /// The store, opened on first use.
    pub async fn get(&self) -> Result<&AnyStore, ApiError> {
        self.store
            .get_or_try_init(|| vigil_storage::open_for_query(&self.url))
            .await
            .map_err(|e| match e {
                vigil_storage::Error::Url { message, .. } => self.unavailable(message),
                other => self.unavailable(other),
            })
    }

    /// The store's dialect (opens it).
    pub async fn dialect(&self) -> Result<Dialect, ApiError> {
        Ok(self.get().await?.dialect())
    }

    /// Runs a statement this server built; `what` names it in errors.
    pub async fn query(&self, what: &str, sql: &str) -> Result<QueryResult, ApiError> {
        let store = self.get().await?;
        tracing::debug!(what, sql, "store query");
        store.query(sql).await.map_err(|e| match e {
            vigil_storage::Error::Backend { .. } | vigil_storage::Error::Url { .. } => {
                self.unavailable(e)
            }
            other => ApiError::internal(format!("store {}: {what}", self.url), other),
        })
    }

    /// Runs a statement a user typed: refused writes and engine errors are the user's (400).
    pub async fn user_query(&self, sql: &str) -> Result<QueryResult, ApiError> {
        let store = self.get().await?;
        store.query(sql).await.map_err(|e| match e {
            vigil_storage::Error::ReadOnly(_) | vigil_storage::Error::Engine(_) => {
                ApiError::Sql(e.to_string())
            }
            other => self.unavailable(other),
        })
    }
}
