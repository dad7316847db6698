//! Images on their way from a care home's tablet: each asked-for image is
//! an upload the hub holds in memory, filled piece by piece at the offset
//! the page says, so a page whose network dropped asks how much arrived
//! and goes on from there instead of starting over. Plain state, time
//! passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use carecall_sfu::ParticipantId;

/// The largest image taken (a 12-megapixel JPEG is 3-6 MiB).
pub const MAX_IMAGE_BYTES: usize = 16 << 20;
/// The largest piece of one request.
pub const MAX_PIECE_BYTES: usize = 256 << 10;
/// Bytes held for every upload in progress together.
const HELD_BYTES: usize = 128 << 20;
/// Uploads waiting per call: an ask is one upload.
const UPLOADS_PER_ROOM: usize = 4;
/// An upload with no piece for this long is given up (the page asks again).
const IDLE: Duration = Duration::from_secs(10 * 60);

/// Who asked whom, in which call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Asked {
    /// The call.
    pub room: String,
    /// Hub staff who asked, and sees the image.
    pub by: ParticipantId,
    /// Their display name.
    pub by_name: String,
    /// Who takes it.
    pub from: ParticipantId,
    /// When.
    pub at: SystemTime,
}

struct Upload {
    asked: Asked,
    total: Option<usize>,
    sha256: Option<String>,
    bytes: Vec<u8>,
    first_piece: Option<Instant>,
    touched: Instant,
}

impl Upload {
    /// Nothing arrived yet: the size and hash come with the first piece.
    fn new(asked: Asked, now: Instant) -> Self {
        Upload {
            asked,
            total: None,
            sha256: None,
            bytes: Vec::new(),
            first_piece: None,
            touched: now,
        }
    }
}

/// One piece as a page sends it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece<'a> {
    /// Where it starts in the image.
    pub offset: usize,
    /// The whole image's size.
    pub total: usize,
    /// The whole image's SHA-256 (hex), checked when it is complete.
    pub sha256: &'a str,
    /// The bytes.
    pub data: &'a [u8],
}

/// What a piece did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Stored; `received` of `total` so far.
    More {
        /// Bytes held.
        received: usize,
        /// Bytes expected.
        total: usize,
        /// Who asked.
        asked: Asked,
    },
    /// The image is complete and matches its SHA-256.
    Done(Complete),
}

/// A whole image, checked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Complete {
    /// Who asked whom.
    pub asked: Asked,
    /// The image.
    pub bytes: Vec<u8>,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// From the first piece to the last.
    pub upload_time: Duration,
}

/// Why a piece was not taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PieceError {
    /// No such upload: never asked, finished, or given up.
    #[error("no upload with that ticket: it finished or ran out of time")]
    Unknown,
    /// Not where the upload stands: send from `received`.
    #[error("the upload holds {received} bytes: send from there")]
    Gap {
        /// Bytes held.
        received: usize,
    },
    /// Larger than an image may be, or its total changed midway.
    #[error("{0}")]
    Refused(&'static str),
    /// The whole image does not match its SHA-256: it starts over.
    #[error("the image does not match its SHA-256; send it again from the start")]
    Corrupted,
    /// The hub holds as much as it may for uploads now.
    #[error("the hub is busy receiving other images; try again shortly")]
    Busy,
}

/// Every upload in progress, by ticket.
#[derive(Default)]
pub(crate) struct Uploads {
    by_ticket: HashMap<String, Upload>,
}

impl Uploads {
    /// Opens an upload for `asked` under `ticket` (random, handed only to
    /// the page that takes the image).
    pub(crate) fn open(
        &mut self,
        ticket: String,
        asked: Asked,
        now: Instant,
    ) -> Result<(), PieceError> {
        self.forget_idle(now);
        let in_room = self
            .by_ticket
            .values()
            .filter(|u| u.asked.room == asked.room)
            .count();
        if in_room >= UPLOADS_PER_ROOM {
            return Err(PieceError::Refused(
                "this call already has images on their way; wait for them",
            ));
        }
        self.by_ticket.insert(ticket, Upload::new(asked, now));
        Ok(())
    }

    /// Forgets `ticket`: whoever it was for is not in the call.
    pub(crate) fn cancel(&mut self, ticket: &str) {
        self.by_ticket.remove(ticket);
    }

    /// How much of `ticket`'s image has arrived, and of how much.
    pub(crate) fn status(&self, ticket: &str) -> Option<(usize, Option<usize>)> {
        let u = self.by_ticket.get(ticket)?;
        Some((u.bytes.len(), u.total))
    }

    /// Takes `piece` of `ticket`'s image.
    pub(crate) fn piece(
        &mut self,
        ticket: &str,
        piece: Piece<'_>,
        now: Instant,
    ) -> Result<Progress, PieceError> {
        self.forget_idle(now);
        let held: usize = self.by_ticket.values().map(|u| u.bytes.len()).sum();
        let u = self.by_ticket.get_mut(ticket).ok_or(PieceError::Unknown)?;
        if piece.total == 0 || piece.total > MAX_IMAGE_BYTES {
            return Err(PieceError::Refused("an image is at most 16 MiB"));
        }
        if piece.data.len() > MAX_PIECE_BYTES || piece.offset + piece.data.len() > piece.total {
            return Err(PieceError::Refused(
                "a piece is at most 256 KiB and within the image",
            ));
        }
        let sha256 = piece.sha256.to_ascii_lowercase();
        let same_image = u.total.is_none_or(|t| t == piece.total)
            && u.sha256.as_deref().is_none_or(|h| h == sha256);
        if !same_image {
            return Err(PieceError::Refused(
                "the image's size or SHA-256 changed midway",
            ));
        }
        if piece.offset != u.bytes.len() {
            return Err(PieceError::Gap {
                received: u.bytes.len(),
            });
        }
        if held + piece.data.len() > HELD_BYTES {
            return Err(PieceError::Busy);
        }
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PieceError::Refused("sha256 must be 64 hex digits"));
        }
        u.total = Some(piece.total);
        u.sha256 = Some(sha256);
        u.bytes.extend_from_slice(piece.data);
        u.touched = now;
        let first = *u.first_piece.get_or_insert(now);
        if u.bytes.len() < piece.total {
            return Ok(Progress::More {
                received: u.bytes.len(),
                total: piece.total,
                asked: u.asked.clone(),
            });
        }
        let u = self.by_ticket.remove(ticket).ok_or(PieceError::Unknown)?;
        let actual = carecall_sfu::recording::hex(
            ring::digest::digest(&ring::digest::SHA256, &u.bytes).as_ref(),
        );
        let expected = u.sha256.unwrap_or_default();
        if actual != expected {
            // Start over from nothing, under the same ticket.
            self.by_ticket
                .insert(ticket.to_owned(), Upload::new(u.asked, now));
            return Err(PieceError::Corrupted);
        }
        Ok(Progress::Done(Complete {
            asked: u.asked,
            bytes: u.bytes,
            sha256: actual,
            upload_time: now.saturating_duration_since(first),
        }))
    }

    fn forget_idle(&mut self, now: Instant) {
        self.by_ticket
            .retain(|_, u| now.saturating_duration_since(u.touched) < IDLE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(room: &str) -> Asked {
        Asked {
            room: room.into(),
            by: ParticipantId(2),
            by_name: "Clinician".into(),
            from: ParticipantId(1),
            at: SystemTime::UNIX_EPOCH,
        }
    }

    fn sha(bytes: &[u8]) -> String {
        carecall_sfu::recording::hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
    }

    #[test]
    fn pieces_resume_where_the_upload_stands_and_complete_once() {
        let t0 = Instant::now();
        let image: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
        let hash = sha(&image);
        let mut up = Uploads::default();
        up.open("t".into(), asked("ward"), t0).unwrap();
        let piece = |offset: usize, len: usize| Piece {
            offset,
            total: image.len(),
            sha256: &hash,
            data: &image[offset..offset + len],
        };
        assert!(matches!(
            up.piece("t", piece(0, 400), t0),
            Ok(Progress::More {
                received: 400,
                total: 1000,
                ..
            })
        ));
        // A piece the page thinks was lost is not taken twice.
        assert_eq!(
            up.piece("t", piece(0, 400), t0),
            Err(PieceError::Gap { received: 400 })
        );
        assert_eq!(up.status("t"), Some((400, Some(1000))));
        let later = t0 + Duration::from_secs(5);
        match up.piece("t", piece(400, 600), later) {
            Ok(Progress::Done(c)) => {
                assert_eq!(c.bytes, image);
                assert_eq!(c.sha256, hash);
                assert_eq!(c.upload_time, Duration::from_secs(5));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(up.status("t"), None, "finished");
        assert_eq!(up.piece("t", piece(0, 1), later), Err(PieceError::Unknown));
    }

    #[test]
    fn a_wrong_hash_starts_over_and_bad_pieces_are_refused() {
        let t0 = Instant::now();
        let mut up = Uploads::default();
        up.open("t".into(), asked("ward"), t0).unwrap();
        let wrong = sha(b"something else");
        let whole = Piece {
            offset: 0,
            total: 4,
            sha256: &wrong,
            data: b"abcd",
        };
        assert_eq!(up.piece("t", whole, t0), Err(PieceError::Corrupted));
        assert_eq!(up.status("t"), Some((0, None)));
        let too_big = Piece {
            total: MAX_IMAGE_BYTES + 1,
            ..whole
        };
        assert!(matches!(
            up.piece("t", too_big, t0),
            Err(PieceError::Refused(_))
        ));
        let past_end = Piece { total: 2, ..whole };
        assert!(matches!(
            up.piece("t", past_end, t0),
            Err(PieceError::Refused(_))
        ));
        let bad_hash = Piece {
            sha256: "xyz",
            ..whole
        };
        assert!(matches!(
            up.piece("t", bad_hash, t0),
            Err(PieceError::Refused(_))
        ));
    }

    #[test]
    fn uploads_per_call_are_capped_and_idle_ones_forgotten() {
        let t0 = Instant::now();
        let mut up = Uploads::default();
        for i in 0..UPLOADS_PER_ROOM {
            up.open(format!("t{i}"), asked("ward"), t0).unwrap();
        }
        assert!(up.open("x".into(), asked("ward"), t0).is_err());
        assert!(up.open("y".into(), asked("other"), t0).is_ok());
        // A ticket for someone not in the call gives its place back.
        up.cancel("t1");
        assert_eq!(up.status("t1"), None);
        assert!(up.open("z".into(), asked("ward"), t0).is_ok());
        assert!(up.open("x".into(), asked("ward"), t0).is_err());
        let later = t0 + IDLE;
        assert!(up.open("x".into(), asked("ward"), later).is_ok());
        assert_eq!(up.status("t0"), None);
    }
}
