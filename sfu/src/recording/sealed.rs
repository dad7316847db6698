//! Recording files on disk: plain WebM, or sealed with AES-256-GCM when the
//! hub configured a key. A sealed file is a magic number and a run of chunks,
//! each `[length u32][nonce 12][ciphertext][tag 16]`; the chunk's index and a
//! last-chunk flag are authenticated with it, so chunks cannot be reordered,
//! dropped or cut off unnoticed. Chunk 0 is the WebM header region, sealed
//! again (with a fresh nonce) when the recording ends.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use super::webm::RecordingSink;

/// The first bytes of a sealed recording.
pub const SEALED_MAGIC: &[u8; 8] = b"CCREC\x00\x00\x01";

/// Plaintext bytes per chunk after the header chunk.
const CHUNK: usize = 64 * 1024;

const TAG_LEN: usize = 16;

/// A 256-bit key for recordings at rest. Never logged.
#[derive(Clone)]
pub struct RecordingKey([u8; 32]);

impl std::fmt::Debug for RecordingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordingKey(..)")
    }
}

impl RecordingKey {
    /// A key from its 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        RecordingKey(bytes)
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("32-byte key"))
    }
}

fn aad(index: u64, last: bool) -> [u8; 9] {
    let mut aad = [0u8; 9];
    aad[..8].copy_from_slice(&index.to_be_bytes());
    aad[8] = u8::from(last);
    aad
}

/// A plain WebM file.
pub struct PlainFile(BufWriter<File>);

impl PlainFile {
    /// Creates the file (it must not exist).
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = File::options().write(true).create_new(true).open(path)?;
        Ok(PlainFile(BufWriter::new(file)))
    }
}

impl RecordingSink for PlainFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn finish(self, header: &[u8]) -> io::Result<()> {
        let mut file = self.0.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(header)?;
        file.sync_all()
    }
}

/// A sealed file being written.
pub struct SealedFile {
    out: BufWriter<File>,
    key: LessSafeKey,
    rng: SystemRandom,
    header_len: usize,
    pending: Vec<u8>,
    index: u64,
}

impl SealedFile {
    /// Creates the file (it must not exist); the first `header_len` bytes
    /// appended form chunk 0, the one rewritten at the end.
    pub fn create(path: &Path, key: &RecordingKey, header_len: usize) -> io::Result<Self> {
        let file = File::options().write(true).create_new(true).open(path)?;
        let mut out = BufWriter::new(file);
        out.write_all(SEALED_MAGIC)?;
        Ok(SealedFile {
            out,
            key: key.aead(),
            rng: SystemRandom::new(),
            header_len,
            pending: Vec::with_capacity(CHUNK),
            index: 0,
        })
    }

    fn chunk_limit(&self) -> usize {
        if self.index == 0 {
            self.header_len
        } else {
            CHUNK
        }
    }

    fn seal(&mut self, plain: &[u8], index: u64, last: bool) -> io::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| io::Error::other("no randomness for a nonce"))?;
        let mut data = plain.to_vec();
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(index, last)),
                &mut data,
            )
            .map_err(|_| io::Error::other("sealing failed"))?;
        let mut chunk = Vec::with_capacity(4 + NONCE_LEN + data.len() + TAG_LEN);
        chunk.extend_from_slice(&(plain.len() as u32).to_be_bytes());
        chunk.extend_from_slice(&nonce);
        chunk.extend_from_slice(&data);
        chunk.extend_from_slice(tag.as_ref());
        Ok(chunk)
    }

    fn flush_chunk(&mut self, last: bool) -> io::Result<()> {
        let plain = std::mem::take(&mut self.pending);
        let chunk = self.seal(&plain, self.index, last)?;
        self.out.write_all(&chunk)?;
        self.index += 1;
        self.pending = plain;
        self.pending.clear();
        Ok(())
    }
}

impl RecordingSink for SealedFile {
    fn append(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let room = self.chunk_limit() - self.pending.len();
            let take = room.min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() == self.chunk_limit() {
                self.flush_chunk(false)?;
            }
        }
        Ok(())
    }

    fn finish(mut self, header: &[u8]) -> io::Result<()> {
        if header.len() != self.header_len || self.index == 0 {
            return Err(io::Error::other("header rewrite does not match chunk 0"));
        }
        self.flush_chunk(true)?;
        let chunk0 = self.seal(header, 0, false)?;
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(SEALED_MAGIC.len() as u64))?;
        file.write_all(&chunk0)?;
        file.sync_all()
    }
}

/// Writes `bytes` (a whole file, known at once: a clinical image) sealed
/// as a recording is, to `path` (which must not exist), so [`export`]
/// reads it back with the same key and nothing else can.
pub fn seal_bytes(path: &Path, key: &RecordingKey, bytes: &[u8]) -> io::Result<()> {
    let first = bytes.len().clamp(1, CHUNK);
    if bytes.is_empty() {
        return Err(io::Error::other("nothing to seal"));
    }
    let mut sealed = SealedFile::create(path, key, first)?;
    sealed.append(bytes)?;
    sealed.finish(&bytes[..first])
}

/// Why a recording could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file could not be read.
    #[error("cannot read the recording: {0}")]
    Io(#[from] io::Error),
    /// The file is sealed and no key was given.
    #[error("the recording is encrypted and no recording key is configured")]
    NoKey,
    /// A chunk failed authentication: wrong key, or the file was changed.
    #[error("chunk {0} does not decrypt: wrong key, or the file was altered")]
    Forged(u64),
    /// The file ends before its last chunk: it was cut off.
    #[error("the recording ends early (cut off after chunk {0})")]
    Truncated(u64),
}

/// Copies a recording's WebM bytes to `out`, decrypting a sealed file with
/// `key`; returns how many bytes were copied.
pub fn export(
    path: &Path,
    key: Option<&RecordingKey>,
    out: &mut impl Write,
) -> Result<u64, OpenError> {
    let mut input = BufReader::new(File::open(path)?);
    let mut magic = [0u8; 8];
    let n = read_full(&mut input, &mut magic)?;
    if n < magic.len() || &magic != SEALED_MAGIC {
        out.write_all(&magic[..n])?;
        return Ok(n as u64 + io::copy(&mut input, out)?);
    }
    let key = key.ok_or(OpenError::NoKey)?.aead();
    let mut total = 0u64;
    for index in 0.. {
        let mut len = [0u8; 4];
        if read_full(&mut input, &mut len)? < 4 {
            return Err(OpenError::Truncated(index));
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > CHUNK.max(1 << 20) {
            return Err(OpenError::Forged(index));
        }
        let mut nonce = [0u8; NONCE_LEN];
        let mut data = vec![0u8; len + TAG_LEN];
        if read_full(&mut input, &mut nonce)? < NONCE_LEN
            || read_full(&mut input, &mut data)? < data.len()
        {
            return Err(OpenError::Truncated(index));
        }
        // The last chunk says so; try it as not-last first, the usual case.
        let mut opened = None;
        for last in [false, true] {
            let mut attempt = data.clone();
            if let Ok(plain) = key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(index, last)),
                &mut attempt,
            ) {
                opened = Some((plain.to_vec(), last));
                break;
            }
        }
        let (plain, last) = opened.ok_or(OpenError::Forged(index))?;
        out.write_all(&plain)?;
        total += plain.len() as u64;
        if last {
            return Ok(total);
        }
    }
    unreachable!("the loop returns")
}

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_read_back_with_the_key_only() {
        let dir = std::env::temp_dir().join(format!("carecall-sealed-img-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = RecordingKey::new([7; 32]);
        for len in [1, 1000, CHUNK, CHUNK + 1, 3 * CHUNK + 5] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.join(format!("{len}.img"));
            let _ = std::fs::remove_file(&path);
            seal_bytes(&path, &key, &bytes).unwrap();
            let mut back = Vec::new();
            export(&path, Some(&key), &mut back).unwrap();
            assert_eq!(back, bytes, "{len} bytes");
            let wrong = export(&path, Some(&RecordingKey::new([8; 32])), &mut Vec::new());
            assert!(matches!(wrong, Err(OpenError::Forged(0))));
            assert!(matches!(
                export(&path, None, &mut Vec::new()),
                Err(OpenError::NoKey)
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn sample(path: &Path, key: &RecordingKey) -> Vec<u8> {
        let mut sealed = SealedFile::create(path, key, 100).unwrap();
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        sealed.append(&[0u8; 100]).unwrap();
        sealed.append(&body).unwrap();
        let header = [7u8; 100];
        sealed.finish(&header).unwrap();
        [header.to_vec(), body].concat()
    }

    #[test]
    fn a_sealed_file_is_not_its_plaintext_and_exports_back_exactly() {
        let dir = std::env::temp_dir().join(format!("carecall-sealed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.rec");
        let _ = std::fs::remove_file(&path);
        let key = RecordingKey::new([9; 32]);
        let plain = sample(&path, &key);
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[..8], SEALED_MAGIC);
        assert!(!on_disk.windows(64).any(|w| w == &plain[1000..1064]));
        let mut out = Vec::new();
        assert_eq!(
            export(&path, Some(&key), &mut out).unwrap(),
            plain.len() as u64
        );
        assert_eq!(out, plain);

        // Wrong key, no key, a flipped byte, a cut-off tail: each refused.
        let other = RecordingKey::new([8; 32]);
        assert!(matches!(
            export(&path, Some(&other), &mut Vec::new()),
            Err(OpenError::Forged(0))
        ));
        assert!(matches!(
            export(&path, None, &mut Vec::new()),
            Err(OpenError::NoKey)
        ));
        let mut flipped = on_disk.clone();
        flipped[5000] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(
            export(&path, Some(&key), &mut Vec::new()),
            Err(OpenError::Forged(1))
        ));
        let last_chunk_at = on_disk.len() - (200_000 % CHUNK + 4 + NONCE_LEN + TAG_LEN);
        std::fs::write(&path, &on_disk[..last_chunk_at]).unwrap();
        assert!(matches!(
            export(&path, Some(&key), &mut Vec::new()),
            Err(OpenError::Truncated(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
