//! `UploadAsset`: a sync's `.c1z` to ConductorOne, as one client stream of a `metadata`
//! message (host and task id), the file in [`CHUNK`]-sized `data` messages, and an `eof`
//! carrying the SHA-256 of the whole file. A failed stream is sent again from the start, up to
//! `attempts` times in all, waiting 0 s, then `backoff`, then 2 × `backoff`, ….

use super::client::{C1Client, CallError};
use baton::c1::service::BatonServiceUploadAssetRequest;
use baton::c1::service::baton_service_upload_asset_request::{
    Msg, UploadData, UploadEof, UploadMetadata,
};
use sha2::{Digest, Sha256};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt as _;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

/// Size of every `data` message but the last.
pub const CHUNK: usize = 512 * 1024;

/// What was uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub bytes: u64,
    pub sha256: [u8; 32],
    pub attempts: u32,
}

/// SHA-256 and size of the file at `path`.
pub async fn checksum(path: &Path) -> std::io::Result<([u8; 32], u64)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n as u64;
        }
        Ok((hasher.finalize().into(), total))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Uploads the file at `path` for `task_id`.
pub async fn upload(
    client: &C1Client,
    host_id: &str,
    task_id: &str,
    path: &Path,
    attempts: u32,
    backoff: Duration,
) -> Result<Uploaded, Status> {
    let (sha256, bytes) = checksum(path).await.map_err(|e| {
        Status::internal(format!("cannot read the sync file {}: {e}", path.display()))
    })?;
    let attempts = attempts.max(1);
    for attempt in 1..=attempts {
        match once(client, host_id, task_id, path, sha256).await {
            Ok(()) => {
                return Ok(Uploaded {
                    bytes,
                    sha256,
                    attempts: attempt,
                });
            }
            Err(e) if attempt < attempts => {
                let wait = backoff * (attempt - 1);
                tracing::warn!(
                    task_id,
                    attempt,
                    attempts,
                    "uploading the sync failed: {e}; trying again in {:.1} s",
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                return Err(Status::new(
                    e.code(),
                    format!("uploading the sync failed after {attempts} attempts: {e}"),
                ));
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// One stream. The file is read as the stream goes, never whole into memory.
async fn once(
    client: &C1Client,
    host_id: &str,
    task_id: &str,
    path: &Path,
    sha256: [u8; 32],
) -> Result<(), CallError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<BatonServiceUploadAssetRequest>(4);
    let producer = tokio::spawn(produce(
        tx,
        host_id.to_string(),
        task_id.to_string(),
        path.to_path_buf(),
        sha256,
    ));
    let sent = client.upload_asset(ReceiverStream::new(rx)).await;
    // The stream is over (either way): stop reading.
    producer.abort();
    let produced = producer.await;
    match (sent, produced) {
        (Ok(_), _) => Ok(()),
        // A read error explains the failure better than the server's "no eof".
        (Err(_), Ok(Err(io))) => Err(CallError::Rpc(Status::new(
            Code::Internal,
            format!("cannot read the sync file {}: {io}", path.display()),
        ))),
        (Err(e), _) => Err(e),
    }
}

async fn produce(
    tx: tokio::sync::mpsc::Sender<BatonServiceUploadAssetRequest>,
    host_id: String,
    task_id: String,
    path: PathBuf,
    sha256: [u8; 32],
) -> std::io::Result<()> {
    let msg = |m: Msg| BatonServiceUploadAssetRequest { msg: Some(m) };
    // A send fails only when the call has ended: then there is nobody to send to.
    let metadata = msg(Msg::Metadata(UploadMetadata {
        host_id,
        task_id,
        annotations: vec![],
    }));
    if tx.send(metadata).await.is_err() {
        return Ok(());
    }
    let mut file = tokio::fs::File::open(&path).await?;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            let n = file.read(&mut buf[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        buf.truncate(filled);
        if tx
            .send(msg(Msg::Data(UploadData { data: buf })))
            .await
            .is_err()
        {
            return Ok(());
        }
        if filled < CHUNK {
            break;
        }
    }
    let eof = msg(Msg::Eof(UploadEof {
        sha256_checksum: sha256.to_vec(),
        annotations: vec![],
    }));
    let _ = tx.send(eof).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checksum_covers_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        let data: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let (sum, len) = checksum(&path).await.unwrap();
        assert_eq!(len, data.len() as u64);
        assert_eq!(sum.as_slice(), Sha256::digest(&data).as_slice());
    }
}
