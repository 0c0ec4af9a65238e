//! The object store, reached through `object_store` (Apache Arrow's client: signing, XML,
//! multipart and its own retries are its business). It runs on a small tokio runtime owned
//! by the calling thread (the CLI's main thread or the follower's), never on a serving core:
//! every method here blocks until the store answered.

use super::{FleetError, StoreConfig};
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::AmazonS3;
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use xxhash_rust::xxh3::Xxh3;

/// Files at least this large go up in parts (S3 allows a single PUT up to 5 GB, but a part
/// that fails is retried alone, and parts go up several at once).
pub const MULTIPART_BYTES_MIN: u64 = 32 << 20;
/// The size of one part of a multipart upload.
pub const PART_BYTES: usize = 16 << 20;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// A small object (pointer, manifest, replica state) larger than this is refused unread.
pub const SMALL_OBJECT_BYTES_MAX: u64 = 16 << 20;

/// A small object read whole, with the e-tag a conditional write needs.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    pub e_tag: Option<String>,
}

/// A file downloaded: its size and xxh3, and how much of it a part left before held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downloaded {
    pub bytes: u64,
    pub xxh3: u64,
    pub resumed_bytes: u64,
}

/// How a put may replace what is there.
#[derive(Debug, Clone)]
pub enum Put {
    Overwrite,
    /// Only if nothing is there (If-None-Match: *).
    Create,
    /// Only if what is there still has this e-tag (If-Match).
    IfMatch(String),
}

/// A conditional put that found the object changed (or already there).
#[derive(Debug)]
pub struct Conflict;

/// An object listed: its key below the prefix and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub bytes: u64,
    pub modified_ms: u64,
}

/// What a LIST found: the objects, and the keys it had to skip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<Listed>,
    /// Full keys (prefix included) the client cannot name as an object path: a `.` or `..`
    /// segment, an empty one (`//`), a control character. S3 accepts them; the client refuses
    /// a whole page of a listing that holds one, so they are stepped over and named here.
    pub unnamable: Vec<String>,
}

/// Keys a LIST asks for at once (S3's largest page).
const LIST_PAGE_KEYS: usize = 1000;

/// The store operations a replica uses, apart from how they reach the store: `Remote` is the
/// real one; a test gives a model that returns every fault a store can.
pub trait Bucket: Send {
    /// A small object, or `None` when there is none.
    fn get(&self, key: &str) -> Result<Option<Fetched>, FleetError>;
    /// Writes a small object; `Err(Conflict)` inside when a condition did not hold.
    fn put(
        &self,
        key: &str,
        bytes: Bytes,
        how: Put,
    ) -> Result<Result<Option<String>, Conflict>, FleetError>;
    /// Every object under `dir` (no trailing `/`).
    fn list(&self, dir: &str) -> Result<Listing, FleetError>;
    /// Downloads an object into `dest` (fsynced), refusing one longer than `bytes_max`,
    /// keeping what `dest` holds of it already; `meanwhile` runs between pieces.
    fn download_file(
        &self,
        key: &str,
        dest: &Path,
        bytes_max: u64,
        meanwhile: &mut dyn FnMut(),
    ) -> Result<Downloaded, FleetError>;
}

impl Bucket for Remote {
    fn get(&self, key: &str) -> Result<Option<Fetched>, FleetError> {
        Remote::get(self, key)
    }

    fn put(
        &self,
        key: &str,
        bytes: Bytes,
        how: Put,
    ) -> Result<Result<Option<String>, Conflict>, FleetError> {
        Remote::put(self, key, bytes, how)
    }

    fn list(&self, dir: &str) -> Result<Listing, FleetError> {
        Remote::list(self, dir)
    }

    fn download_file(
        &self,
        key: &str,
        dest: &Path,
        bytes_max: u64,
        meanwhile: &mut dyn FnMut(),
    ) -> Result<Downloaded, FleetError> {
        Remote::download_file(self, key, dest, bytes_max, meanwhile)
    }
}

pub struct Remote {
    runtime: tokio::runtime::Runtime,
    store: Arc<AmazonS3>,
    prefix: String,
    /// Tries of one operation against transient failures, beyond the client's own.
    attempts: u32,
    url: String,
}

impl Remote {
    pub fn connect(config: &StoreConfig) -> Result<Remote, FleetError> {
        let store = config.build()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(FleetError::io(Path::new("tokio runtime")))?;
        Ok(Remote {
            runtime,
            store: Arc::new(store),
            prefix: config.url.prefix.clone(),
            attempts: 4,
            url: config.url.to_string(),
        })
    }

    /// How many times each operation is tried against transient failures (at least 1).
    pub fn with_attempts(mut self, attempts: u32) -> Remote {
        self.attempts = attempts.max(1);
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Runs `op` until it succeeds, fails for good, or the attempts are spent, sleeping
    /// 0.5 s, 1 s, 2 s... between tries.
    fn retrying<T>(
        &self,
        mut op: impl FnMut(&Self) -> Result<T, FleetError>,
    ) -> Result<T, FleetError> {
        let mut pause = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match op(self) {
                Err(e) if e.is_transient() && attempt < self.attempts => {
                    tracing::warn!(
                        attempt,
                        "store request failed, trying again in {pause:?}: {e}"
                    );
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(8));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// A small object, or `None` when there is none.
    pub fn get(&self, key: &str) -> Result<Option<Fetched>, FleetError> {
        self.retrying(|me| {
            let path = me.path(key);
            me.runtime.block_on(async {
                let got = match me.store.get(&path).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(FleetError::request("GET", key)(e)),
                };
                if got.meta.size > SMALL_OBJECT_BYTES_MAX {
                    return Err(FleetError::BadObject {
                        key: key.to_owned(),
                        why: format!(
                            "{} bytes, more than the {SMALL_OBJECT_BYTES_MAX} allowed",
                            got.meta.size
                        ),
                    });
                }
                let e_tag = got.meta.e_tag.clone();
                let bytes = got.bytes().await.map_err(FleetError::request("GET", key))?;
                Ok(Some(Fetched { bytes, e_tag }))
            })
        })
    }

    /// The size of an object, or `None` when there is none.
    pub fn head(&self, key: &str) -> Result<Option<u64>, FleetError> {
        self.retrying(|me| {
            let path = me.path(key);
            me.runtime.block_on(async {
                match me.store.head(&path).await {
                    Ok(meta) => Ok(Some(meta.size)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(FleetError::request("HEAD", key)(e)),
                }
            })
        })
    }

    /// Writes a small object; `Err(Conflict)` inside when a condition did not hold.
    pub fn put(
        &self,
        key: &str,
        bytes: Bytes,
        how: Put,
    ) -> Result<Result<Option<String>, Conflict>, FleetError> {
        self.retrying(|me| {
            let path = me.path(key);
            let mode = match &how {
                Put::Overwrite => PutMode::Overwrite,
                Put::Create => PutMode::Create,
                Put::IfMatch(e_tag) => PutMode::Update(UpdateVersion {
                    e_tag: Some(e_tag.clone()),
                    version: None,
                }),
            };
            let payload = PutPayload::from_bytes(bytes.clone());
            me.runtime.block_on(async {
                match me
                    .store
                    .put_opts(&path, payload, PutOptions::from(mode))
                    .await
                {
                    Ok(done) => Ok(Ok(done.e_tag)),
                    Err(
                        object_store::Error::Precondition { .. }
                        | object_store::Error::AlreadyExists { .. },
                    ) => Ok(Err(Conflict)),
                    Err(e) => Err(FleetError::request("PUT", key)(e)),
                }
            })
        })
    }

    /// Uploads a local file whole (in parts when large); returns the bytes sent.
    pub fn upload_file(&self, key: &str, file: &Path) -> Result<u64, FleetError> {
        self.retrying(|me| me.upload_once(key, file))
    }

    fn upload_once(&self, key: &str, file: &Path) -> Result<u64, FleetError> {
        let bytes = std::fs::metadata(file).map_err(FleetError::io(file))?.len();
        let path = self.path(key);
        if bytes < MULTIPART_BYTES_MIN {
            let data = std::fs::read(file).map_err(FleetError::io(file))?;
            self.runtime
                .block_on(self.store.put(&path, PutPayload::from(data)))
                .map_err(FleetError::request("PUT", key))?;
            return Ok(bytes);
        }
        self.runtime.block_on(async {
            let upload = self
                .store
                .put_multipart(&path)
                .await
                .map_err(FleetError::request("CreateMultipartUpload", key))?;
            let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut f = std::fs::File::open(file).map_err(FleetError::io(file))?;
            let mut buf = vec![0u8; PART_BYTES];
            let sent = loop {
                let n = match read_full(&mut f, &mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(FleetError::io(file)(e));
                    }
                };
                if n == 0 {
                    break writer.finish().await;
                }
                if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    let _ = writer.abort().await;
                    break Err(e);
                }
                writer.write(&buf[..n]);
            };
            sent.map_err(FleetError::request("UploadPart", key))?;
            Ok(bytes)
        })
    }

    /// Downloads an object into `dest` (fsynced), refusing one longer than `bytes_max`.
    /// What `dest` already holds (a download killed part way) is kept and only the rest
    /// asked for (a ranged GET). `meanwhile` runs between pieces of the body, outside the
    /// runtime, so the caller can read the pointer while a large file comes.
    pub fn download_file(
        &self,
        key: &str,
        dest: &Path,
        bytes_max: u64,
        meanwhile: &mut dyn FnMut(),
    ) -> Result<Downloaded, FleetError> {
        self.retrying(|me| me.download_once(key, dest, bytes_max, meanwhile))
    }

    fn download_once(
        &self,
        key: &str,
        dest: &Path,
        bytes_max: u64,
        meanwhile: &mut dyn FnMut(),
    ) -> Result<Downloaded, FleetError> {
        let path = self.path(key);
        let (file, mut hash, resumed_bytes) = open_part(dest, bytes_max)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut total = resumed_bytes;
        if resumed_bytes == 0 || resumed_bytes < bytes_max {
            let got = self
                .runtime
                .block_on(me_get(&*self.store, &path, key, resumed_bytes));
            if got.is_err() && resumed_bytes > 0 {
                // The store may hold a shorter object now (416): the next try starts over.
                let _ = std::fs::remove_file(dest);
            }
            let got = got?;
            let mut stream = got.into_stream();
            while let Some(chunk) = self.runtime.block_on(stream.next()) {
                let chunk = chunk.map_err(FleetError::request("GET", key))?;
                total += chunk.len() as u64;
                if total > bytes_max {
                    return Err(FleetError::BadObject {
                        key: key.to_owned(),
                        why: format!("longer than the {bytes_max} bytes its manifest gives"),
                    });
                }
                hash.update(&chunk);
                out.write_all(&chunk).map_err(FleetError::io(dest))?;
                meanwhile();
            }
        }
        let f = out
            .into_inner()
            .map_err(|e| FleetError::io(dest)(e.into_error()))?;
        f.sync_all().map_err(FleetError::io(dest))?;
        Ok(Downloaded {
            bytes: total,
            xxh3: hash.digest(),
            resumed_bytes,
        })
    }

    /// Every object under `dir` (a key prefix below the store's prefix, no trailing `/`).
    /// The client refuses a whole page of a listing over one key it cannot name as a path
    /// (see `Listing::unnamable`); then the page is asked for again from the last key had
    /// (`start-after`), halving its size until the key is the very next one, which is stepped
    /// over and named: one bad key costs about 20 requests, not the listing.
    pub fn list(&self, dir: &str) -> Result<Listing, FleetError> {
        self.retrying(|me| me.list_once(dir))
    }

    fn list_once(&self, dir: &str) -> Result<Listing, FleetError> {
        let base = format!("{}/", self.path(dir));
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut out = Listing::default();
        let mut page = Page::default();
        loop {
            let opts = PaginatedListOptions {
                offset: page.token.is_none().then(|| page.after.clone()).flatten(),
                page_token: page.token.clone(),
                max_keys: Some(page.keys),
                ..PaginatedListOptions::default()
            };
            let got = self
                .runtime
                .block_on(self.store.list_paginated(Some(&base), opts));
            let got = match got {
                Ok(got) => got,
                Err(object_store::Error::InvalidPath { source }) => {
                    let Some(key) = unnamable_key(&source) else {
                        let e = object_store::Error::InvalidPath { source };
                        return Err(FleetError::request("LIST", dir)(e));
                    };
                    if let Some(key) = page.narrow(key) {
                        out.unnamable.push(key);
                    }
                    continue;
                }
                Err(e) => return Err(FleetError::request("LIST", dir)(e)),
            };
            for meta in got.result.objects {
                let full = meta.location.to_string();
                if !page.take(&full) {
                    continue;
                }
                out.objects.push(Listed {
                    key: full.strip_prefix(&strip).unwrap_or(&full).to_owned(),
                    bytes: meta.size,
                    modified_ms: meta.last_modified.timestamp_millis().max(0) as u64,
                });
            }
            page.token = got.page_token;
            if page.token.is_none() {
                return Ok(out);
            }
        }
    }

    pub fn delete(&self, key: &str) -> Result<(), FleetError> {
        self.retrying(|me| {
            let path = me.path(key);
            me.runtime.block_on(async {
                match me.store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(FleetError::request("DELETE", key)(e)),
                }
            })
        })
    }
}

/// Where a listing is: continuation token, else the last key had; and the page size.
struct Page {
    token: Option<String>,
    after: Option<String>,
    keys: usize,
}

impl Default for Page {
    fn default() -> Page {
        Page {
            token: None,
            after: None,
            keys: LIST_PAGE_KEYS,
        }
    }
}

impl Page {
    /// After a page refused over unnamable `key`: ask again from the last key had, for half
    /// as many; when it is the very next key, step over it (returned, to be named).
    fn narrow(&mut self, key: String) -> Option<String> {
        self.token = None;
        if self.keys > 1 {
            self.keys /= 2;
            return None;
        }
        self.after = Some(key.clone());
        self.keys = LIST_PAGE_KEYS;
        Some(key)
    }

    /// Whether object path `full` is new. The client drops a key's trailing `/`, so asked
    /// from `a`, a store holding `a/` gives it again as `a`: skipped, and the listing goes on
    /// from `a/`, which is where it really is.
    fn take(&mut self, full: &str) -> bool {
        if self.after.as_deref() == Some(full) {
            self.after = Some(format!("{full}/"));
            return false;
        }
        self.after = Some(full.to_owned());
        true
    }
}

/// The key an object path error names, when the error is about a key's segments.
fn unnamable_key(e: &object_store::path::Error) -> Option<String> {
    match e {
        object_store::path::Error::EmptySegment { path }
        | object_store::path::Error::BadSegment { path, .. }
        | object_store::path::Error::NonUnicode { path, .. } => Some(path.clone()),
        _ => None,
    }
}

/// The object from byte `from` on (all of it from 0).
async fn me_get(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    key: &str,
    from: u64,
) -> Result<object_store::GetResult, FleetError> {
    let options = object_store::GetOptions {
        range: (from > 0).then_some(object_store::GetRange::Offset(from)),
        ..object_store::GetOptions::default()
    };
    match store.get_opts(path, options).await {
        Ok(got) => Ok(got),
        Err(object_store::Error::NotFound { .. }) => Err(FleetError::BadObject {
            key: key.to_owned(),
            why: "it is missing from the store".into(),
        }),
        Err(e) => Err(FleetError::request("GET", key)(e)),
    }
}

/// `dest` opened to append to, with the xxh3 state and length of what it holds: a part no
/// longer than `bytes_max` is kept (a download killed part way goes on from its end), a
/// longer one is started again.
fn open_part(dest: &Path, bytes_max: u64) -> Result<(std::fs::File, Xxh3, u64), FleetError> {
    let held = std::fs::metadata(dest).map_or(0, |m| m.len());
    if held == 0 || held > bytes_max {
        let f = std::fs::File::create(dest).map_err(FleetError::io(dest))?;
        return Ok((f, Xxh3::new(), 0));
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(dest)
        .map_err(FleetError::io(dest))?;
    let (n, hash) = xxh3_of(&mut f).map_err(FleetError::io(dest))?;
    Ok((f, hash, n))
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The xxh3 of a local file, read in 1 MiB pieces.
pub fn file_xxh3(path: &Path) -> Result<(u64, u64), FleetError> {
    crate::generations::manifest::file_xxh3(path).map_err(FleetError::io(path))
}

/// The length of what `f` holds from where it is, and its xxh3 state.
fn xxh3_of(f: &mut std::fs::File) -> std::io::Result<(u64, Xxh3)> {
    let mut hash = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = read_full(f, &mut buf)?;
        if n == 0 {
            return Ok((total, hash));
        }
        total += n as u64;
        hash.update(&buf[..n]);
    }
}
