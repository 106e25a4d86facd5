//! Snapshots: JPEG bytes stored content-addressed by SHA-256, apart from the records naming them.
//!
//! A kiosk uploads a snapshot before the record that names it; `sync.rs` refuses a record whose
//! snapshot is not stored yet, so a stored record never points at missing bytes. Snapshots are
//! never deleted, which is what makes checking for one before the record's transaction sound.

use crate::{ApiError, AppState, auth::Station, hex};
use axum::{
    Json,
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::{
    future::Future,
    io::{self, Write},
    path::{Path as FsPath, PathBuf},
    pin::Pin,
};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where snapshot bytes (and, in a store of their own, model files) live. The local folder now;
/// an S3-compatible bucket can implement it later. Callers have verified that `sha256` is the
/// lower-case hex SHA-256 of `bytes`.
pub trait SnapshotStore: Send + Sync {
    /// Stores the bytes durably under their hash, unless they are there already. Returns whether
    /// this call stored them.
    fn put<'a>(&'a self, sha256: &'a str, bytes: Bytes) -> BoxFuture<'a, io::Result<bool>>;

    /// The length of the stored snapshot, or `None` if it is not stored.
    fn stored_len<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, io::Result<Option<u64>>>;

    /// The first `len` stored bytes (all of them when fewer), or `None` if they are not stored.
    fn read_head<'a>(
        &'a self,
        sha256: &'a str,
        len: usize,
    ) -> BoxFuture<'a, io::Result<Option<Bytes>>>;

    /// The stored bytes, or `None` if they are not stored.
    fn get<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, io::Result<Option<Bytes>>>;
}

/// Snapshots as files `<root>/<first two hex digits>/<sha256>`, so no folder grows too large.
pub struct LocalSnapshotStore {
    root: PathBuf,
}

impl LocalSnapshotStore {
    pub fn new(root: PathBuf) -> Self {
        LocalSnapshotStore { root }
    }

    fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2]).join(sha256)
    }
}

/// Stores `bytes` at `path` unless a file is there already; returns whether it stored them.
fn store_file(path: &FsPath, bytes: &[u8]) -> io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let dir = path.parent().expect("a snapshot path has a folder");
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)?;
        // A new folder's entry is durable only once its parent is synced, like a file's.
        let root = dir.parent().expect("the fan-out folder is inside the root");
        sync_dir(root)?;
        if let Some(data_dir) = root.parent() {
            sync_dir(data_dir)?;
        }
    }
    // Written under a unique temporary name and renamed: a crash leaves either no snapshot or
    // the whole one, never a torn file under the final name. Two uploads racing write the same
    // bytes (they hash the same), so whichever rename lands last changes nothing.
    let mut suffix = [0u8; 8];
    rand::rng().fill_bytes(&mut suffix);
    let temp = path.with_extension(format!("{}.tmp", hex(&suffix)));
    let written = (|| {
        let mut file = std::fs::File::create_new(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    // The rename is durable only once the folder is synced; a record may commit right after.
    sync_dir(dir)?;
    Ok(true)
}

fn sync_dir(dir: &FsPath) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl SnapshotStore for LocalSnapshotStore {
    fn put<'a>(&'a self, sha256: &'a str, bytes: Bytes) -> BoxFuture<'a, io::Result<bool>> {
        Box::pin(async move {
            let path = self.path_of(sha256);
            tokio::task::spawn_blocking(move || store_file(&path, &bytes)).await?
        })
    }

    fn stored_len<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, io::Result<Option<u64>>> {
        Box::pin(async move {
            match tokio::fs::metadata(self.path_of(sha256)).await {
                Ok(meta) => Ok(Some(meta.len())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn read_head<'a>(
        &'a self,
        sha256: &'a str,
        len: usize,
    ) -> BoxFuture<'a, io::Result<Option<Bytes>>> {
        Box::pin(async move {
            use tokio::io::AsyncReadExt;
            let file = match tokio::fs::File::open(self.path_of(sha256)).await {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut head = Vec::with_capacity(len.min(1 << 20));
            file.take(len as u64).read_to_end(&mut head).await?;
            Ok(Some(head.into()))
        })
    }

    fn get<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, io::Result<Option<Bytes>>> {
        Box::pin(async move {
            match tokio::fs::read(self.path_of(sha256)).await {
                Ok(bytes) => Ok(Some(bytes.into())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
    }
}

/// A JPEG's `(width, height)` from its start-of-frame segment, without decoding it; `None` when
/// the header holds none (or a zero size).
pub(crate) fn jpeg_size(bytes: &[u8]) -> Option<(u16, u16)> {
    let mut at = 2;
    loop {
        // Markers are FF xx, optionally preceded by fill bytes FF.
        while *bytes.get(at)? == 0xFF && *bytes.get(at + 1)? == 0xFF {
            at += 1;
        }
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        let length = usize::from(u16::from_be_bytes([
            *bytes.get(at + 2)?,
            *bytes.get(at + 3)?,
        ]));
        // SOF0..SOF15, less DHT (C4), JPG (C8) and DAC (CC), which share the range.
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let field = |i: usize| Some(u16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]));
            let (height, width) = (field(at + 5)?, field(at + 7)?);
            return (width > 0 && height > 0).then_some((width, height));
        }
        if marker == 0xDA || length < 2 {
            return None;
        }
        at += 2 + length;
    }
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// `PUT /api/v1/snapshots/{sha256}`: the JPEG bytes, checked against the hash in the path.
pub(crate) async fn put_snapshot(
    State(state): State<AppState>,
    _station: Station,
    Path(sha256): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bad_request = |reason: String| ApiError::new(StatusCode::BAD_REQUEST, reason);
    if !is_sha256_hex(&sha256) {
        return Err(bad_request(format!(
            "{sha256:?} is not a SHA-256 in 64 lower-case hex digits"
        )));
    }
    let bytes = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    // Hashing up to 16 MiB takes long enough to stall other requests on this worker thread.
    let actual = tokio::task::spawn_blocking({
        let bytes = bytes.clone();
        move || hex(&Sha256::digest(&bytes))
    })
    .await
    .map_err(|e| ApiError::internal(format!("cannot hash the snapshot: {e}")))?;
    if actual != sha256 {
        return Err(bad_request(format!(
            "the body's SHA-256 is {actual}, not {sha256}"
        )));
    }
    // Every JPEG starts with the start-of-image marker: this catches a kiosk uploading the wrong
    // buffer before it is stored forever.
    if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body is not a JPEG (no FF D8 FF start-of-image marker)",
        ));
    }
    let byte_len = bytes.len();
    let created = state
        .snapshots
        .put(&sha256, bytes)
        .await
        .map_err(|e| ApiError::internal(format!("cannot store the snapshot: {e}")))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "sha256": sha256, "byte_len": byte_len })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::jpeg_size;

    #[test]
    fn the_frame_size_comes_from_the_start_of_frame_segment() {
        // SOI, an APP0 segment to skip, a fill byte, then SOF2 (progressive) of 640x480.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, 0xFF];
        jpeg.extend_from_slice(&[0xFF, 0xC2, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80, 0x03]);
        assert_eq!(jpeg_size(&jpeg), Some((640, 480)));
        // DHT shares the SOF range and is skipped.
        let mut with_dht = vec![0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x03, 0x00];
        with_dht.extend_from_slice(&jpeg[2..]);
        assert_eq!(jpeg_size(&with_dht), Some((640, 480)));
        // Truncated, no frame before the scan, or zero sized: no size.
        assert_eq!(jpeg_size(&jpeg[..12]), None);
        assert_eq!(jpeg_size(&[0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02]), None);
        let mut zero = jpeg.clone();
        zero[16..18].copy_from_slice(&[0, 0]);
        assert_eq!(jpeg_size(&zero), None);
    }
}
