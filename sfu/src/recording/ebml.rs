//! EBML, the binary layout Matroska and WebM are made of: every element is an
//! ID, a variable-length size and a body. Only what the recording writer
//! needs: unsigned integers, floats, strings, binary, and masters built in
//! memory (their size must be known before they are written).

/// Matroska element IDs used by the writer (the Matroska specification's names).
pub mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const SEEK: u32 = 0x4DBB;
    pub const SEEK_ID: u32 = 0x53AB;
    pub const SEEK_POSITION: u32 = 0x53AC;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const DURATION: u32 = 0x4489;
    pub const DATE_UTC: u32 = 0x4461;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const FLAG_LACING: u32 = 0x9C;
    pub const FLAG_DEFAULT: u32 = 0x88;
    pub const NAME: u32 = 0x536E;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const CODEC_DELAY: u32 = 0x56AA;
    pub const SEEK_PRE_ROLL: u32 = 0x56BB;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMESTAMP: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const CUES: u32 = 0x1C53_BB6B;
    pub const CUE_POINT: u32 = 0xBB;
    pub const CUE_TIME: u32 = 0xB3;
    pub const CUE_TRACK_POSITIONS: u32 = 0xB7;
    pub const CUE_TRACK: u32 = 0xF7;
    pub const CUE_CLUSTER_POSITION: u32 = 0xF1;
    pub const VOID: u32 = 0xEC;
}

/// A size field that says "unknown", or a size written in a fixed 8 bytes so
/// it can be patched later without moving anything.
pub const SIZE_WIDTH_FIXED: usize = 8;

/// Appends an element ID (its bytes already carry their length marker).
pub fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends `size` as an EBML variable-length integer of the fewest bytes.
pub fn put_size(out: &mut Vec<u8>, size: u64) {
    let width = (1..=8).find(|w| size < (1u64 << (7 * w)) - 1).unwrap_or(8);
    put_size_width(out, size, width);
}

/// Appends `size` as an EBML variable-length integer of exactly `width` bytes.
pub fn put_size_width(out: &mut Vec<u8>, size: u64, width: usize) {
    let marked = size | 1u64 << (7 * width);
    out.extend_from_slice(&marked.to_be_bytes()[8 - width..]);
}

/// Appends an element whose body is `body`.
pub fn put_bytes(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// Appends an unsigned integer element in the fewest bytes.
pub fn put_uint(out: &mut Vec<u8>, id: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    put_bytes(out, id, &bytes[skip..]);
}

/// Appends an 8-byte float element.
pub fn put_float(out: &mut Vec<u8>, id: u32, value: f64) {
    put_bytes(out, id, &value.to_be_bytes());
}

/// Appends a UTF-8 string element.
pub fn put_str(out: &mut Vec<u8>, id: u32, value: &str) {
    put_bytes(out, id, value.as_bytes());
}

/// Appends a master element whose children `fill` writes.
pub fn put_master(out: &mut Vec<u8>, id: u32, fill: impl FnOnce(&mut Vec<u8>)) {
    let mut body = Vec::new();
    fill(&mut body);
    put_bytes(out, id, &body);
}

/// Appends a Void element that takes exactly `len` bytes in all (at least 9:
/// one ID byte and an 8-byte size, so any length from 9 up can be filled).
pub fn put_void(out: &mut Vec<u8>, len: usize) {
    assert!(len > SIZE_WIDTH_FIXED, "a void needs at least 9 bytes");
    put_id(out, id::VOID);
    let body = len - 1 - SIZE_WIDTH_FIXED;
    put_size_width(out, body as u64, SIZE_WIDTH_FIXED);
    out.resize(out.len() + body, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_the_fewest_bytes_and_never_the_reserved_all_ones() {
        let encode = |n| {
            let mut v = Vec::new();
            put_size(&mut v, n);
            v
        };
        assert_eq!(encode(0), [0x80]);
        assert_eq!(encode(126), [0xFE]);
        // 127 in one byte would be all ones, which means "unknown size".
        assert_eq!(encode(127), [0x40, 0x7F]);
        assert_eq!(encode(300), [0x41, 0x2C]);
    }

    #[test]
    fn ids_keep_their_own_length_and_voids_fill_exactly() {
        let mut v = Vec::new();
        put_uint(&mut v, id::TIMESTAMP_SCALE, 1_000_000);
        assert_eq!(v, [0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40]);
        let mut v = Vec::new();
        put_void(&mut v, 40);
        assert_eq!(v.len(), 40);
        assert_eq!(v[0], 0xEC);
    }
}
