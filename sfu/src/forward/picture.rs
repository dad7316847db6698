//! VP8 picture ids and TL0PICIDX for one subscriber's copy of a stream.
//!
//! Each simulcast layer numbers its pictures on its own. Chromium sends VP8
//! simulcast with temporal layers, and its receiver finds a delta frame's
//! references by those numbers, keeping what it learnt per TL0PICIDX. After a
//! switch to a layer numbered elsewhere, a TL0PICIDX it has seen before (from
//! the old layer) points it at pictures that never come: frames arrive whole
//! but are held back undecoded until a keyframe clears the state, seen as a
//! tile decoding one frame a second after stepping back up to 720p. So the
//! numbers carry on across a switch, as sequence numbers do
//! ([`super::StreamRewriter`]).
//!
//! The first layer a subscriber gets keeps the publisher's numbers: nothing
//! to patch. After a switch, str0m patches the few descriptor bytes while it
//! writes the packet, so the payload is still not copied.

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

/// Picture numbering for one subscriber's stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct PictureRewriter {
    /// Added (wrapping at the field's width) to the current layer's numbers.
    pid_offset: u16,
    tl0_offset: u8,
    /// The newest picture written (by outgoing sequence number): its
    /// sequence number, picture id and TL0PICIDX.
    newest: Option<(u64, u16, Option<u8>)>,
}

/// One packet's VP8 numbering, as the publisher wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureNumbers {
    /// PictureID: one per picture, within one layer.
    pub picture_id: u16,
    /// 15 bits wide (Chromium), or 7.
    pub long: bool,
    /// TL0PICIDX: one per picture of the base temporal layer, when sent.
    pub tl0: Option<u8>,
}

impl PictureNumbers {
    fn mask(&self) -> u16 {
        if self.long {
            0x7fff
        } else {
            0x7f
        }
    }
}

impl PictureRewriter {
    /// The keyframe `first` starts a new layer: its pictures continue from
    /// the newest one written.
    pub fn start_source(&mut self, first: PictureNumbers) {
        let Some((_, pid, tl0)) = self.newest else {
            return;
        };
        self.pid_offset = pid.wrapping_add(1).wrapping_sub(first.picture_id) & first.mask();
        self.tl0_offset = match (tl0, first.tl0) {
            (Some(last), Some(now)) => last.wrapping_add(1).wrapping_sub(now),
            _ => 0,
        };
    }

    /// A layer without picture ids starts: nothing to carry on from.
    pub fn start_unnumbered(&mut self) {
        *self = PictureRewriter::default();
    }

    /// The numbers to write instead for the packet sent as `seq`, or `None`
    /// when they stay as they are.
    pub fn rewrite(&mut self, seq: u64, n: PictureNumbers) -> Option<PictureNumbers> {
        let out = PictureNumbers {
            picture_id: n.picture_id.wrapping_add(self.pid_offset) & n.mask(),
            long: n.long,
            tl0: n.tl0.map(|t| t.wrapping_add(self.tl0_offset)),
        };
        if self.newest.is_none_or(|(newest, _, _)| seq > newest) {
            self.newest = Some((seq, out.picture_id, out.tl0));
        }
        (out != n).then_some(out)
    }
}

/// The picture numbers in a VP8 payload, if it carries a picture id, with
/// the parsed descriptor that [`patch`] needs.
pub fn vp8_picture_numbers(payload: &[u8]) -> Option<(Vp8Descriptor, PictureNumbers)> {
    let d = Vp8Descriptor::parse(payload).ok()?;
    let picture_id = d.picture_id()?;
    // X, then I: the picture id follows at byte 2; its top bit is M.
    let long = payload.get(2).is_some_and(|b| b & 0x80 != 0);
    let numbers = PictureNumbers {
        picture_id,
        long,
        tl0: d.tl0_pic_idx(),
    };
    Some((d, numbers))
}

/// The byte patch that writes `out` into the payload `d` was parsed from.
pub fn patch(d: &Vp8Descriptor, out: PictureNumbers) -> Option<Vp8Patch> {
    let mut builder = d.patch().picture_id(out.picture_id);
    if let Some(tl0) = out.tl0 {
        builder = builder.tl0_pic_idx(tl0);
    }
    builder.build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(picture_id: u16, tl0: u8) -> PictureNumbers {
        PictureNumbers {
            picture_id,
            long: true,
            tl0: Some(tl0),
        }
    }

    #[test]
    fn the_first_layer_keeps_its_numbers() {
        let mut r = PictureRewriter::default();
        r.start_source(n(500, 9));
        assert_eq!(r.rewrite(1_000, n(500, 9)), None);
        assert_eq!(r.rewrite(1_001, n(501, 9)), None);
    }

    #[test]
    fn a_switched_layer_carries_on_from_the_newest_picture() {
        let mut r = PictureRewriter::default();
        r.start_source(n(32_760, 250));
        r.rewrite(1_000, n(32_760, 250));
        r.rewrite(1_002, n(32_767, 255));
        // A late packet of an older picture does not move the newest.
        r.rewrite(1_001, n(32_766, 254));
        // The new layer's keyframe, numbered far away.
        r.start_source(n(40, 7));
        assert_eq!(r.rewrite(1_003, n(40, 7)), Some(n(0, 0)), "wrapped");
        assert_eq!(r.rewrite(1_004, n(41, 7)), Some(n(1, 0)));
        assert_eq!(r.rewrite(1_005, n(42, 8)), Some(n(2, 1)));
        // And back to a layer numbered above.
        r.start_source(n(20_000, 100));
        assert_eq!(r.rewrite(1_006, n(20_000, 100)), Some(n(3, 2)));
    }

    #[test]
    fn seven_bit_picture_ids_wrap_at_seven_bits() {
        let short = |picture_id| PictureNumbers {
            picture_id,
            long: false,
            tl0: None,
        };
        let mut r = PictureRewriter::default();
        r.rewrite(10, short(127));
        r.start_source(short(5));
        assert_eq!(r.rewrite(11, short(5)), Some(short(0)));
        assert_eq!(r.rewrite(12, short(6)), Some(short(1)));
    }

    #[test]
    fn numbers_are_read_from_a_chromium_descriptor() {
        // X=1, S=1; I, L, T; 15-bit picture id 0x1234; TL0PICIDX 0x56; TID.
        let payload = [0x90, 0xe0, 0x92, 0x34, 0x56, 0x40, 0x9d, 0x01, 0x2a];
        let (d, numbers) = vp8_picture_numbers(&payload).expect("numbers");
        assert_eq!(numbers, n(0x1234, 0x56));
        assert!(patch(&d, n(7, 1)).is_some());
        // No picture id: nothing to renumber.
        assert!(vp8_picture_numbers(&[0x10, 0x9d, 0x01, 0x2a]).is_none());
    }
}
