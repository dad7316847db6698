//! A streaming WebM (Matroska) writer. Frames go in with their time; the file
//! is written front to back with no seeking, except one rewrite of a fixed
//! header region at the end (duration, tracks that joined late, where the
//! index is). That keeps it usable over an encrypted, append-only sink.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;

use super::ebml::{self, id};

/// Bytes kept at the front for the header (EBML header, Segment start, seek
/// index, info, tracks). Room for about 80 tracks; more are refused.
pub const HEADER_SPACE: usize = 16 * 1024;

/// Frames are held this long (in media time) so tracks that arrive slightly
/// out of step still land in time order.
const INTERLEAVE_MS: u64 = 1000;

/// A cluster is closed after this long, or at a video keyframe after a second.
const CLUSTER_MS: u64 = 5000;

/// Opus' recommended seek pre-roll (Matroska's Opus mapping).
const OPUS_SEEK_PRE_ROLL_NS: u64 = 80_000_000;

/// Where the file's bytes go: append-only, plus one final rewrite of the header.
pub trait RecordingSink {
    /// Appends bytes after everything written so far.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Replaces the first `header.len()` bytes (first written as a placeholder
    /// of the same length) and makes the file durable.
    fn finish(self, header: &[u8]) -> io::Result<()>;
}

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrackKind {
    /// VP8 video; the size is the largest frame seen.
    Video {
        /// Pixels across.
        width: u16,
        /// Pixels down.
        height: u16,
    },
    /// Opus audio at 48 kHz.
    Audio {
        /// 1 for mono.
        channels: u8,
        /// Samples the decoder drops at the start (the encoder's look-ahead).
        pre_skip: u16,
    },
}

#[derive(Debug)]
struct Track {
    name: String,
    kind: TrackKind,
    /// The time of the track's last written frame.
    last_ms: Option<u64>,
}

/// A frame waiting to be written: time, arrival order, track, keyframe, data.
type Held = Reverse<(u64, u64, usize, bool, Vec<u8>)>;

struct Cluster {
    start_ms: u64,
    body: Vec<u8>,
}

/// Writes one WebM file to a [`RecordingSink`].
pub struct WebmWriter<S: RecordingSink> {
    sink: S,
    tracks: Vec<Track>,
    held: BinaryHeap<Held>,
    next_seq: u64,
    newest_ms: u64,
    written_ms: u64,
    cluster: Option<Cluster>,
    /// Bytes written after the header region.
    position: u64,
    cues: Vec<(u64, u64)>,
    duration_ms: u64,
    date_utc_ns: i64,
}

impl<S: RecordingSink> WebmWriter<S> {
    /// Starts a file; `date_utc_ns` is when the recording began, in
    /// nanoseconds since 2001-01-01 (Matroska's epoch).
    pub fn new(mut sink: S, date_utc_ns: i64) -> io::Result<Self> {
        let placeholder = header(&[], 0.0, None, 0, date_utc_ns)?;
        sink.append(&placeholder)?;
        Ok(WebmWriter {
            sink,
            tracks: Vec::new(),
            held: BinaryHeap::new(),
            next_seq: 0,
            newest_ms: 0,
            written_ms: 0,
            cluster: None,
            position: 0,
            cues: Vec::new(),
            duration_ms: 0,
            date_utc_ns,
        })
    }

    /// Adds a track and returns its index for [`WebmWriter::push`].
    pub fn add_track(&mut self, name: &str, kind: TrackKind) -> usize {
        self.tracks.push(Track {
            name: name.to_owned(),
            kind,
            last_ms: None,
        });
        self.tracks.len() - 1
    }

    /// Grows a video track's declared size to the largest frame seen.
    pub fn saw_video_size(&mut self, track: usize, w: u16, h: u16) {
        if let Some(TrackKind::Video { width, height }) =
            self.tracks.get_mut(track).map(|t| &mut t.kind)
        {
            *width = (*width).max(w);
            *height = (*height).max(h);
        }
    }

    /// Queues one frame at `time_ms` after the recording began; frames up to
    /// [`INTERLEAVE_MS`] older than the newest are written in time order.
    pub fn push(
        &mut self,
        track: usize,
        time_ms: u64,
        keyframe: bool,
        data: Vec<u8>,
    ) -> io::Result<()> {
        self.held
            .push(Reverse((time_ms, self.next_seq, track, keyframe, data)));
        self.next_seq += 1;
        self.newest_ms = self.newest_ms.max(time_ms);
        while let Some(Reverse((t, ..))) = self.held.peek() {
            if *t + INTERLEAVE_MS > self.newest_ms {
                break;
            }
            self.write_next()?;
        }
        Ok(())
    }

    /// Writes everything held, the index and the final header.
    pub fn finish(mut self) -> io::Result<u64> {
        while !self.held.is_empty() {
            self.write_next()?;
        }
        self.close_cluster()?;
        let cues_position = self.position;
        let cue_track = self
            .tracks
            .iter()
            .position(|t| matches!(t.kind, TrackKind::Video { .. }))
            .unwrap_or(0) as u64
            + 1;
        let mut cues = Vec::new();
        if !self.cues.is_empty() {
            ebml::put_master(&mut cues, id::CUES, |c| {
                for &(time, position) in &self.cues {
                    ebml::put_master(c, id::CUE_POINT, |p| {
                        ebml::put_uint(p, id::CUE_TIME, time);
                        ebml::put_master(p, id::CUE_TRACK_POSITIONS, |tp| {
                            ebml::put_uint(tp, id::CUE_TRACK, cue_track);
                            ebml::put_uint(
                                tp,
                                id::CUE_CLUSTER_POSITION,
                                position + segment_relative_clusters(),
                            );
                        });
                    });
                }
            });
            self.sink.append(&cues)?;
        }
        let segment_size =
            (HEADER_SPACE - segment_data_start()) as u64 + self.position + cues.len() as u64;
        let cues_at = (!cues.is_empty()).then_some(cues_position + segment_relative_clusters());
        let head = header(
            &self.tracks,
            self.duration_ms as f64,
            cues_at,
            segment_size,
            self.date_utc_ns,
        )?;
        self.sink.finish(&head)?;
        Ok(self.duration_ms)
    }

    fn write_next(&mut self) -> io::Result<()> {
        let Some(Reverse((time, _, track, keyframe, data))) = self.held.pop() else {
            return Ok(());
        };
        // A frame that arrived later than the interleave window is written at
        // the time reached so far, so the file's times never go backwards;
        // within a track they always go forwards (two frames never share a
        // time, which players and muxers refuse).
        let last_of_track = self.tracks[track].last_ms.map_or(0, |t| t + 1);
        let time = time.max(self.written_ms).max(last_of_track);
        self.written_ms = time;
        self.tracks[track].last_ms = Some(time);
        let is_video = matches!(self.tracks[track].kind, TrackKind::Video { .. });
        let frame_ms = if is_video { 0 } else { 20 };
        self.duration_ms = self.duration_ms.max(time + frame_ms);
        let new_cluster = match &self.cluster {
            None => true,
            Some(c) => {
                time - c.start_ms >= CLUSTER_MS
                    || (is_video && keyframe && time - c.start_ms >= 1000)
            }
        };
        if new_cluster {
            self.close_cluster()?;
            let mut body = Vec::with_capacity(64 * 1024);
            ebml::put_uint(&mut body, id::TIMESTAMP, time);
            self.cluster = Some(Cluster {
                start_ms: time,
                body,
            });
        }
        let cluster = self.cluster.as_mut().expect("opened above");
        let relative = (time - cluster.start_ms) as i16;
        let number = track as u64 + 1;
        ebml::put_id(&mut cluster.body, id::SIMPLE_BLOCK);
        ebml::put_size(&mut cluster.body, (1 + 2 + 1 + data.len()) as u64);
        cluster.body.push(0x80 | number as u8);
        cluster.body.extend_from_slice(&relative.to_be_bytes());
        cluster
            .body
            .push(if keyframe || !is_video { 0x80 } else { 0 });
        cluster.body.extend_from_slice(&data);
        Ok(())
    }

    fn close_cluster(&mut self) -> io::Result<()> {
        let Some(cluster) = self.cluster.take() else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(cluster.body.len() + 12);
        ebml::put_bytes(&mut bytes, id::CLUSTER, &cluster.body);
        self.sink.append(&bytes)?;
        self.cues.push((cluster.start_ms, self.position));
        self.position += bytes.len() as u64;
        Ok(())
    }
}

fn ebml_header() -> Vec<u8> {
    let mut out = Vec::new();
    ebml::put_master(&mut out, id::EBML, |e| {
        ebml::put_uint(e, id::EBML_VERSION, 1);
        ebml::put_uint(e, id::EBML_READ_VERSION, 1);
        ebml::put_uint(e, id::EBML_MAX_ID_LENGTH, 4);
        ebml::put_uint(e, id::EBML_MAX_SIZE_LENGTH, 8);
        ebml::put_str(e, id::DOC_TYPE, "webm");
        ebml::put_uint(e, id::DOC_TYPE_VERSION, 4);
        ebml::put_uint(e, id::DOC_TYPE_READ_VERSION, 2);
    });
    out
}

/// Where the Segment's body starts in the file: positions in the seek index
/// and cues count from here.
fn segment_data_start() -> usize {
    ebml_header().len() + 4 + ebml::SIZE_WIDTH_FIXED
}

/// The first cluster's position relative to the Segment's body.
fn segment_relative_clusters() -> u64 {
    (HEADER_SPACE - segment_data_start()) as u64
}

/// The header region, exactly [`HEADER_SPACE`] bytes.
fn header(
    tracks: &[Track],
    duration_ms: f64,
    cues_at: Option<u64>,
    segment_size: u64,
    date_utc_ns: i64,
) -> io::Result<Vec<u8>> {
    let mut out = ebml_header();
    ebml::put_id(&mut out, id::SEGMENT);
    if segment_size == 0 {
        // Unknown size while recording: a reader of a cut-off file still
        // finds every complete cluster.
        out.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    } else {
        ebml::put_size_width(&mut out, segment_size, ebml::SIZE_WIDTH_FIXED);
    }
    let start = out.len();
    let mut info = Vec::new();
    ebml::put_master(&mut info, id::INFO, |i| {
        ebml::put_uint(i, id::TIMESTAMP_SCALE, 1_000_000);
        ebml::put_str(i, id::MUXING_APP, "carecall");
        ebml::put_str(
            i,
            id::WRITING_APP,
            concat!("carecall ", env!("CARGO_PKG_VERSION")),
        );
        ebml::put_float(i, id::DURATION, duration_ms);
        ebml::put_bytes(i, id::DATE_UTC, &date_utc_ns.to_be_bytes());
    });
    let mut track_bytes = Vec::new();
    ebml::put_master(&mut track_bytes, id::TRACKS, |ts| {
        for (i, t) in tracks.iter().enumerate() {
            ebml::put_master(ts, id::TRACK_ENTRY, |e| track_entry(e, i as u64 + 1, t));
        }
    });
    // A seek index of fixed shape: its size must not depend on the values.
    let seek = |out: &mut Vec<u8>, target: u32, position: u64| {
        ebml::put_master(out, id::SEEK, |s| {
            ebml::put_bytes(s, id::SEEK_ID, &target.to_be_bytes());
            ebml::put_bytes(s, id::SEEK_POSITION, &position.to_be_bytes());
        });
    };
    let mut seek_head = Vec::new();
    let probe_len = {
        let mut probe = Vec::new();
        ebml::put_master(&mut probe, id::SEEK_HEAD, |s| {
            seek(s, id::INFO, 0);
            seek(s, id::TRACKS, 0);
            if cues_at.is_some() {
                seek(s, id::CUES, 0);
            }
        });
        probe.len() as u64
    };
    ebml::put_master(&mut seek_head, id::SEEK_HEAD, |s| {
        seek(s, id::INFO, probe_len);
        seek(s, id::TRACKS, probe_len + info.len() as u64);
        if let Some(cues) = cues_at {
            seek(s, id::CUES, cues);
        }
    });
    out.extend_from_slice(&seek_head);
    out.extend_from_slice(&info);
    out.extend_from_slice(&track_bytes);
    debug_assert_eq!(
        out.len() - start,
        seek_head.len() + info.len() + track_bytes.len()
    );
    let used = out.len();
    if used + 1 + ebml::SIZE_WIDTH_FIXED > HEADER_SPACE {
        return Err(io::Error::other(format!(
            "{} tracks do not fit a recording's header",
            tracks.len()
        )));
    }
    ebml::put_void(&mut out, HEADER_SPACE - used);
    Ok(out)
}

fn track_entry(e: &mut Vec<u8>, number: u64, track: &Track) {
    ebml::put_uint(e, id::TRACK_NUMBER, number);
    ebml::put_uint(e, id::TRACK_UID, number);
    ebml::put_uint(e, id::FLAG_LACING, 0);
    ebml::put_str(e, id::NAME, &track.name);
    // Players pick the mixed consultation (track 1) and every camera.
    let default = number == 1 || matches!(track.kind, TrackKind::Video { .. });
    ebml::put_uint(e, id::FLAG_DEFAULT, u64::from(default));
    match track.kind {
        TrackKind::Video { width, height } => {
            ebml::put_uint(e, id::TRACK_TYPE, 1);
            ebml::put_str(e, id::CODEC_ID, "V_VP8");
            ebml::put_master(e, id::VIDEO, |v| {
                ebml::put_uint(v, id::PIXEL_WIDTH, u64::from(width.max(1)));
                ebml::put_uint(v, id::PIXEL_HEIGHT, u64::from(height.max(1)));
            });
        }
        TrackKind::Audio { channels, pre_skip } => {
            ebml::put_uint(e, id::TRACK_TYPE, 2);
            ebml::put_str(e, id::CODEC_ID, "A_OPUS");
            ebml::put_bytes(e, id::CODEC_PRIVATE, &opus_head(channels, pre_skip));
            ebml::put_uint(
                e,
                id::CODEC_DELAY,
                u64::from(pre_skip) * 1_000_000_000 / 48_000,
            );
            ebml::put_uint(e, id::SEEK_PRE_ROLL, OPUS_SEEK_PRE_ROLL_NS);
            ebml::put_master(e, id::AUDIO, |a| {
                ebml::put_float(a, id::SAMPLING_FREQUENCY, 48_000.0);
                ebml::put_uint(a, id::CHANNELS, u64::from(channels));
            });
        }
    }
}

/// The Opus identification header (RFC 7845 §5.1), Matroska's CodecPrivate.
fn opus_head(channels: u8, pre_skip: u16) -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(channels);
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink in memory, to look at what the writer made.
    #[derive(Default)]
    pub struct Memory(pub Vec<u8>);

    impl RecordingSink for &mut Memory {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
        fn finish(self, header: &[u8]) -> io::Result<()> {
            self.0[..header.len()].copy_from_slice(header);
            Ok(())
        }
    }

    #[test]
    fn the_header_keeps_its_size_and_frames_come_out_in_time_order() {
        let mut memory = Memory::default();
        let mut w = WebmWriter::new(&mut memory, 0).unwrap();
        let audio = w.add_track(
            "audio",
            TrackKind::Audio {
                channels: 1,
                pre_skip: 312,
            },
        );
        // Out of order by 40 ms: held and written in order.
        for t in [0u64, 40, 20, 60, 2000, 1980] {
            w.push(audio, t, true, vec![0xF8; 3]).unwrap();
        }
        assert_eq!(w.finish().unwrap(), 2020);
        let bytes = &memory.0;
        assert!(bytes.len() > HEADER_SPACE);
        assert_eq!(&bytes[..4], &[0x1A, 0x45, 0xDF, 0xA3]);
        // The cluster starts right after the header region.
        assert_eq!(
            &bytes[HEADER_SPACE..HEADER_SPACE + 4],
            &[0x1F, 0x43, 0xB6, 0x75]
        );
        // Held frames came out in time order: the six blocks' relative
        // times, read back in file order, never go down.
        let mut times = Vec::new();
        let mut at = HEADER_SPACE;
        while let Some(i) = bytes[at..].iter().position(|&b| b == 0xA3) {
            let block = at + i;
            // SimpleBlock: ID, one-byte size (7 bytes: 0x87), track 0x81, time.
            if bytes.get(block + 1) == Some(&0x87) && bytes.get(block + 2) == Some(&0x81) {
                times.push(i16::from_be_bytes([bytes[block + 3], bytes[block + 4]]));
            }
            at = block + 1;
        }
        assert_eq!(times, [0, 20, 40, 60, 1980, 2000]);
    }

    #[test]
    fn frames_of_one_track_never_share_a_time() {
        let mut memory = Memory::default();
        let mut w = WebmWriter::new(&mut memory, 0).unwrap();
        let opus = TrackKind::Audio {
            channels: 1,
            pre_skip: 0,
        };
        let a = w.add_track("a", opus);
        let b = w.add_track("b", opus);
        // Two frames of `a` placed at one time, and one far too late.
        let frames = [
            (a, 100u64),
            (a, 100),
            (b, 100),
            (a, 1500),
            (a, 2600),
            (a, 200),
        ];
        for (track, t) in frames {
            w.push(track, t, true, vec![0xF8; 3]).unwrap();
        }
        w.finish().unwrap();
        let bytes = &memory.0;
        let mut times: [Vec<i16>; 2] = Default::default();
        let mut at = HEADER_SPACE;
        while let Some(i) = bytes[at..].iter().position(|&b| b == 0xA3) {
            let block = at + i;
            if bytes.get(block + 1) == Some(&0x87) {
                if let Some(n @ (0x81 | 0x82)) = bytes.get(block + 2) {
                    let t = i16::from_be_bytes([bytes[block + 3], bytes[block + 4]]);
                    times[usize::from(n - 0x81)].push(t);
                }
            }
            at = block + 1;
        }
        // One cluster from 100 ms: `a` at 0 and 1, `b` after it at 1; the
        // late frame at the time reached (1400 ms after the cluster start)
        // plus one.
        assert_eq!(times[0], [0, 1, 1400, 1401, 2500]);
        assert_eq!(times[1], [1]);
    }

    #[test]
    fn too_many_tracks_are_refused_not_written_over_the_clusters() {
        let mut memory = Memory::default();
        let mut w = WebmWriter::new(&mut memory, 0).unwrap();
        for i in 0..400 {
            w.add_track(
                &format!("participant {i} with a long name"),
                TrackKind::Audio {
                    channels: 1,
                    pre_skip: 312,
                },
            );
        }
        assert!(w.finish().is_err());
    }
}
