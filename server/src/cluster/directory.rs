//! The stream directory in Redis, shared by an origin cluster: which origin carries which
//! stream, as a key with a lease (PX) that its origin renews while the stream is live, so a
//! crashed origin frees its names within the lease. Keys and values:
//!
//! - key `onair:stream:{app}/{name}`, value `{node_id} {rtmp_base_url}`
//!   (`a1b2c3 rtmp://10.0.0.5:1935`), TTL `directory_lease_ms`.
//!
//! Every command has a deadline; a directory that is down is an error the caller logs and
//! works around (edges fall back to the origin list, origins keep serving and retry). It
//! never blocks a publish or play for longer than `directory_timeout_ms`.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::hub::StreamKey;

/// The key prefix, documented in the README.
pub const PREFIX: &str = "onair:stream:";

#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("directory URL: {0}")]
    Url(#[source] redis::RedisError),
    #[error("directory did not answer within {0:?}")]
    Timeout(Duration),
    #[error("directory: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Who holds a name, after a claim.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// This origin holds it now.
    Ours,
    /// Another origin does (its entry's value).
    Held(String),
}

pub struct Directory {
    client: redis::Client,
    con: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
    lease_ms: u64,
}

/// Renews our entry, or writes it again when it expired (a directory restart, an outage
/// longer than the lease); 0 when another origin holds the name.
const RENEW: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0";

/// Deletes our entry only (never another origin's).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

pub fn key_of(key: &StreamKey) -> String {
    format!("{PREFIX}{key}")
}

impl Directory {
    pub fn new(url: &str, timeout: Duration, lease: Duration) -> Result<Self, DirError> {
        Ok(Self {
            client: redis::Client::open(url).map_err(DirError::Url)?,
            con: tokio::sync::Mutex::new(None),
            timeout,
            lease_ms: lease.as_millis().max(1) as u64,
        })
    }

    /// Runs one command on the shared connection, connecting first if needed; an error
    /// drops the connection so the next command reconnects.
    async fn run<T: redis::FromRedisValue>(
        &self,
        build: impl FnOnce(&mut MultiplexedConnection) -> redis::RedisFuture<'_, T> + Send,
    ) -> Result<T, DirError> {
        let work = async {
            let mut guard = self.con.lock().await;
            if guard.is_none() {
                *guard = Some(self.client.get_multiplexed_async_connection().await?);
            }
            let con = guard.as_mut().expect("connected above");
            let r = build(con).await;
            if r.is_err() {
                *guard = None;
            }
            r.map_err(DirError::from)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => {
                // A stuck connection is dropped too.
                if let Ok(mut g) = self.con.try_lock() {
                    *g = None;
                }
                Err(DirError::Timeout(self.timeout))
            }
        }
    }

    /// The value of `key`'s entry (`{node_id} {rtmp_base_url}`), if any.
    pub async fn lookup(&self, key: &StreamKey) -> Result<Option<String>, DirError> {
        let k = key_of(key);
        self.run(move |c| Box::pin(async move { redis::cmd("GET").arg(&k).query_async(c).await }))
            .await
    }

    /// Takes `key` for `value` if nobody holds it (SET NX PX).
    pub async fn claim(&self, key: &StreamKey, value: &str) -> Result<Claim, DirError> {
        let k = key_of(key);
        let (v, lease) = (value.to_string(), self.lease_ms);
        let set: Option<String> = self
            .run(move |c| {
                Box::pin(async move {
                    redis::cmd("SET")
                        .arg(&k)
                        .arg(&v)
                        .arg("NX")
                        .arg("PX")
                        .arg(lease)
                        .query_async(c)
                        .await
                })
            })
            .await?;
        if set.is_some() {
            return Ok(Claim::Ours);
        }
        match self.lookup(key).await? {
            Some(held) if held == value => Ok(Claim::Ours),
            Some(held) => Ok(Claim::Held(held)),
            // Expired between the two commands: try once more next time.
            None => Ok(Claim::Held(String::new())),
        }
    }

    /// Takes `key` whoever holds it (takeover).
    pub async fn take(&self, key: &StreamKey, value: &str) -> Result<(), DirError> {
        let k = key_of(key);
        let (v, lease) = (value.to_string(), self.lease_ms);
        self.run(move |c| {
            Box::pin(async move {
                redis::cmd("SET")
                    .arg(&k)
                    .arg(&v)
                    .arg("PX")
                    .arg(lease)
                    .query_async::<()>(c)
                    .await
            })
        })
        .await
    }

    /// Renews (or rewrites) our entry; `false` when another origin holds the name.
    pub async fn renew(&self, key: &StreamKey, value: &str) -> Result<bool, DirError> {
        let k = key_of(key);
        let (v, lease) = (value.to_string(), self.lease_ms);
        let r: i64 = self
            .run(move |c| {
                Box::pin(async move {
                    redis::Script::new(RENEW)
                        .key(&k)
                        .arg(&v)
                        .arg(lease)
                        .invoke_async(c)
                        .await
                })
            })
            .await?;
        Ok(r != 0)
    }

    /// Deletes our entry (the stream ended here).
    pub async fn release(&self, key: &StreamKey, value: &str) -> Result<(), DirError> {
        let k = key_of(key);
        let v = value.to_string();
        self.run(move |c| {
            Box::pin(async move {
                redis::Script::new(RELEASE)
                    .key(&k)
                    .arg(&v)
                    .invoke_async::<i64>(c)
                    .await
            })
        })
        .await
        .map(|_| ())
    }
}

/// The origin base URL in a directory value.
pub fn origin_of(value: &str) -> Option<&str> {
    let (_, url) = value.split_once(' ')?;
    url.starts_with("rtmp://").then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        assert_eq!(key_of(&StreamKey::new("live", "x")), "onair:stream:live/x");
        assert_eq!(
            origin_of("a1 rtmp://127.0.0.1:1935"),
            Some("rtmp://127.0.0.1:1935")
        );
        assert_eq!(origin_of("garbage"), None);
        assert_eq!(origin_of("a1 http://x"), None);
    }
}
