//! What an uploaded image is: JPEG or PNG, and its size in pixels, read
//! from its header. Anything else is refused before it is stored.

/// An image's type and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFormat {
    /// `image/jpeg` or `image/png`.
    pub mime: &'static str,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// The type and size of `bytes`, if they are a JPEG or a PNG.
pub fn read(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return png(bytes);
    }
    if bytes.starts_with(&[0xff, 0xd8]) {
        return jpeg(bytes);
    }
    None
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn png(bytes: &[u8]) -> Option<ImageFormat> {
    // Signature, then the IHDR chunk: length, "IHDR", width, height.
    let ihdr = bytes.get(8..24)?;
    if &ihdr[4..8] != b"IHDR" {
        return None;
    }
    let (width, height) = (be32(&ihdr[8..12]), be32(&ihdr[12..16]));
    (width > 0 && height > 0).then_some(ImageFormat {
        mime: "image/png",
        width,
        height,
    })
}

fn jpeg(bytes: &[u8]) -> Option<ImageFormat> {
    let mut at = 2;
    loop {
        // Markers may be padded with 0xff bytes.
        while *bytes.get(at)? == 0xff && *bytes.get(at + 1)? == 0xff {
            at += 1;
        }
        if *bytes.get(at)? != 0xff {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        let len = usize::from(u16::from_be_bytes([
            *bytes.get(at + 2)?,
            *bytes.get(at + 3)?,
        ]));
        // Start of frame (baseline, progressive, …), not DHT, JPG or DAC.
        if (0xc0..=0xcf).contains(&marker) && ![0xc4, 0xc8, 0xcc].contains(&marker) {
            let frame = bytes.get(at + 4..at + 9)?;
            let height = u32::from(u16::from_be_bytes([frame[1], frame[2]]));
            let width = u32::from(u16::from_be_bytes([frame[3], frame[4]]));
            return (width > 0 && height > 0).then_some(ImageFormat {
                mime: "image/jpeg",
                width,
                height,
            });
        }
        if marker == 0xda || len < 2 {
            return None;
        }
        at += 2 + len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_jpeg_frame_header_after_other_segments() {
        let mut jpeg = vec![0xff, 0xd8];
        jpeg.extend([0xff, 0xe0, 0, 4, 1, 2]); // APP0
        jpeg.extend([0xff, 0xc4, 0, 3, 9]); // DHT
        jpeg.extend([0xff, 0xc2, 0, 11, 8, 0x02, 0xd0, 0x05, 0x00, 3, 0, 0, 0]);
        assert_eq!(
            read(&jpeg),
            Some(ImageFormat {
                mime: "image/jpeg",
                width: 1280,
                height: 720
            })
        );
    }

    #[test]
    fn reads_a_png_header() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(640u32.to_be_bytes());
        png.extend(480u32.to_be_bytes());
        assert_eq!(read(&png).map(|f| (f.width, f.height)), Some((640, 480)));
    }

    #[test]
    fn anything_else_or_cut_short_is_not_an_image() {
        assert_eq!(read(b"GIF89a"), None);
        assert_eq!(read(&[0xff, 0xd8, 0xff]), None);
        assert_eq!(read(&[0xff, 0xd8, 0xff, 0xe0, 0, 0]), None);
        assert_eq!(read(&[0xff, 0xd8, 0xff, 0xda, 0, 4, 0, 0]), None);
        assert_eq!(read(b"\x89PNG\r\n\x1a\n"), None);
    }
}
