//! The background task of a fake server, and how it stops: on `shutdown` (waiting for it to
//! close every connection) or, when the fake is dropped, at once.

use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct ServerHandle {
    shutdown_tx: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// `task` serves until `shutdown_tx` says `true` (or is dropped).
    pub fn new(shutdown_tx: watch::Sender<bool>, task: JoinHandle<()>) -> ServerHandle {
        ServerHandle {
            shutdown_tx,
            task: Some(task),
        }
    }

    /// Stops accepting, closes every connection (hanging ones included) and waits (at most
    /// 5 s) for the server task to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            // Aborting drops the connection set, which aborts every connection task.
            task.abort();
        }
    }
}
