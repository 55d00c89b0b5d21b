//! A real async-nats client for the tests: creds held only in memory, the
//! user's own reply inbox `_INBOX_<user>` (the documented `custom_inbox_prefix`
//! setting, the only inbox its permissions allow), and the server's errors
//! (permission violations, limits) on a channel.

use std::time::Duration;

use async_nats::{ConnectOptions, Event, ServerError};
use tokio::sync::mpsc;

pub type Errors = mpsc::UnboundedReceiver<String>;

/// Connect with `inbox` as the reply-inbox prefix.
pub async fn try_connect(
    url: &str,
    creds: &str,
    inbox: &str,
) -> Result<(async_nats::Client, Errors), async_nats::ConnectError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = ConnectOptions::with_credentials(creds)
        .expect("creds parse")
        .custom_inbox_prefix(inbox)
        .max_reconnects(1)
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                if let Event::ServerError(err) = e {
                    let _ = tx.send(match err {
                        ServerError::Other(s) => s,
                        other => other.to_string(),
                    });
                }
            }
        })
        .connect(url)
        .await?;
    Ok((client, rx))
}

/// The first server error containing `needle` (case-insensitive) within 5 s;
/// panics without one.
pub async fn expect_error(rx: &mut Errors, needle: &str) -> String {
    let want = needle.to_lowercase();
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = rx.recv().await {
            if e.to_lowercase().contains(&want) {
                return e;
            }
        }
        panic!("error channel closed without {needle:?}")
    })
    .await
    .unwrap_or_else(|_| panic!("no server error containing {needle:?} within 5 s"))
}
