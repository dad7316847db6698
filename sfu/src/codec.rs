//! Just enough payload parsing to know where a video keyframe starts, and where
//! a redundant-audio (RED) packet's newest block is. The SFU never decodes
//! media; it needs this to start a new subscriber on a keyframe instead of a
//! stream of undecodable delta frames, and to unwrap RED for a subscriber
//! that did not negotiate it.

/// True when an RTP payload carries the first packet of a VP8 keyframe.
///
/// RFC 7741 §4.2: the payload descriptor's S bit marks the start of a partition and
/// PID 0 the first partition; bit 0 of the VP8 frame header's first byte (P) is 0
/// for a key frame (RFC 6386 §9.1).
pub fn vp8_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x07;
    if !start_of_partition || partition_id != 0 {
        return false;
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        // X: an extension byte follows, naming which optional fields are present.
        let Some(&ext) = payload.get(at) else {
            return false;
        };
        at += 1;
        if ext & 0x80 != 0 {
            // I: PictureID, one or two bytes (M bit set means two).
            let Some(&pic) = payload.get(at) else {
                return false;
            };
            at += if pic & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1; // L: TL0PICIDX
        }
        if ext & 0x30 != 0 {
            at += 1; // T or K: TID/Y/KEYIDX
        }
    }
    payload.get(at).is_some_and(|header| header & 0x01 == 0)
}

/// True when an RTP payload starts an H.264 IDR picture or carries the SPS that
/// precedes one (RFC 6184: single NAL, STAP-A aggregates, FU-A start fragments).
pub fn h264_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let is_key_nal = |nal_type: u8| nal_type == 5 || nal_type == 7;
    match first & 0x1f {
        24 => {
            // STAP-A: 16-bit size, then a NAL unit, repeated.
            let mut at = 1;
            while let (Some(&hi), Some(&lo)) = (payload.get(at), payload.get(at + 1)) {
                let size = usize::from(hi) << 8 | usize::from(lo);
                match payload.get(at + 2) {
                    Some(&nal) if is_key_nal(nal & 0x1f) => return true,
                    Some(_) => at += 2 + size,
                    None => return false,
                }
            }
            false
        }
        28 => payload
            .get(1)
            .is_some_and(|&fu| fu & 0x80 != 0 && is_key_nal(fu & 0x1f)),
        nal_type => is_key_nal(nal_type),
    }
}

/// Where the primary (newest) block of an RFC 2198 RED payload starts, and its
/// payload type: what a subscriber without RED gets instead of the whole
/// packet. `None` for a malformed payload.
///
/// Layout: redundant block headers (4 bytes, F bit set: PT, timestamp offset,
/// 10-bit length), one primary header (1 byte, F clear: PT), then the blocks'
/// data in the same order, the primary's last.
pub fn red_primary(payload: &[u8]) -> Option<(u8, usize)> {
    let mut at = 0;
    let mut redundant = 0usize;
    loop {
        let header = *payload.get(at)?;
        if header & 0x80 == 0 {
            let start = at + 1 + redundant;
            return (start <= payload.len()).then_some((header & 0x7f, start));
        }
        let bytes = payload.get(at + 2..at + 4)?;
        redundant += (usize::from(bytes[0] & 0x03) << 8) | usize::from(bytes[1]);
        at += 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_plain_descriptor_keyframe_and_delta() {
        assert!(vp8_keyframe_start(&[0x10, 0x00, 0x9d, 0x01, 0x2a]));
        assert!(!vp8_keyframe_start(&[0x10, 0x01, 0x00]));
    }

    #[test]
    fn vp8_extended_descriptor_with_two_byte_picture_id() {
        // X=1, S=1; I=1; PictureID with M bit (two bytes); then keyframe header.
        assert!(vp8_keyframe_start(&[0x90, 0x80, 0x81, 0x23, 0x00]));
        assert!(!vp8_keyframe_start(&[0x90, 0x80, 0x81, 0x23, 0x01]));
    }

    #[test]
    fn vp8_continuation_packet_is_not_a_start() {
        assert!(!vp8_keyframe_start(&[0x00, 0x00]));
        assert!(!vp8_keyframe_start(&[]));
        assert!(!vp8_keyframe_start(&[0x90]));
    }

    #[test]
    fn h264_idr_sps_stap_and_fu() {
        assert!(h264_keyframe_start(&[0x65]));
        assert!(h264_keyframe_start(&[0x67]));
        assert!(!h264_keyframe_start(&[0x41]));
        assert!(h264_keyframe_start(&[0x78, 0x00, 0x02, 0x67, 0x42]));
        assert!(h264_keyframe_start(&[0x7c, 0x85]));
        assert!(!h264_keyframe_start(&[0x7c, 0x05]));
        assert!(!h264_keyframe_start(&[0x78, 0x00]));
    }

    #[test]
    fn red_primary_block_is_found_after_the_redundant_ones() {
        // One redundant block of 3 bytes (PT 111), then primary PT 111 with 2 bytes.
        let red = [0x80 | 111, 0x00, 0x50, 0x03, 111, 9, 9, 9, 7, 7];
        assert_eq!(red_primary(&red), Some((111, 8)));
        // No redundancy: the primary header alone.
        assert_eq!(red_primary(&[111, 5, 5]), Some((111, 1)));
        // Lengths past the end, a truncated header, nothing at all: refused.
        assert_eq!(red_primary(&[0x80 | 111, 0x00, 0x53, 0xff, 111, 1]), None);
        assert_eq!(red_primary(&[0x80 | 111, 0x00]), None);
        assert_eq!(red_primary(&[]), None);
    }
}
