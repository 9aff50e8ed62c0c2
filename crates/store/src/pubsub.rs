//! Cross-replica events over PostgreSQL LISTEN/NOTIFY.

use sqlx::postgres::PgListener;

use crate::{Error, Store};

/// A connection listening on some channels.
pub struct Listener(PgListener);

/// One event.
#[derive(Clone, Debug)]
pub struct Notification {
    pub channel: String,
    pub payload: String,
}

impl Store {
    /// Listens on `channels`. The listener reconnects by itself after a connection loss; events
    /// sent meanwhile are lost, so callers re-read state after waking.
    pub async fn listen(&self, channels: &[&str]) -> Result<Listener, Error> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(Error::Connect)?;
        listener.listen_all(channels.iter().copied()).await?;
        Ok(Listener(listener))
    }
}

impl Listener {
    /// The next event. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Notification, Error> {
        let notification = self.0.recv().await?;
        Ok(Notification {
            channel: notification.channel().to_owned(),
            payload: notification.payload().to_owned(),
        })
    }
}
