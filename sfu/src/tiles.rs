//! The height at which one browser shows each other participant's video.

use crate::id::ParticipantId;

/// Tile heights in device pixels, by whose video. Bounded: a browser could
/// name any number of participants, so past [`TileSizes::MAX`] the oldest
/// entry gives way. Kept by the media plane per participant, and by
/// signalling for a browser that reports sizes before its offer.
#[derive(Debug, Clone, Default)]
pub struct TileSizes(Vec<(ParticipantId, u32)>);

impl TileSizes {
    /// The most tiles remembered.
    pub const MAX: usize = 64;

    /// Records (or updates) the height of `origin`'s tile.
    pub fn set(&mut self, origin: ParticipantId, height: u32) {
        match self.0.iter_mut().find(|(o, _)| *o == origin) {
            Some(entry) => entry.1 = height,
            None => {
                if self.0.len() >= Self::MAX {
                    self.0.remove(0);
                }
                self.0.push((origin, height));
            }
        }
    }

    /// The height of `origin`'s tile, if reported.
    pub fn get(&self, origin: ParticipantId) -> Option<u32> {
        self.0.iter().find(|(o, _)| *o == origin).map(|e| e.1)
    }

    /// Forgets `origin`'s tile (they left).
    pub fn remove(&mut self, origin: ParticipantId) {
        self.0.retain(|(o, _)| *o != origin);
    }

    /// Takes every entry, oldest first, leaving the store empty.
    pub fn take(&mut self) -> impl Iterator<Item = (ParticipantId, u32)> {
        std::mem::take(&mut self.0).into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_update_in_place_and_the_oldest_gives_way_past_the_bound() {
        let mut tiles = TileSizes::default();
        for i in 0..TileSizes::MAX as u64 {
            tiles.set(ParticipantId(i), 100);
        }
        tiles.set(ParticipantId(0), 360);
        assert_eq!(tiles.get(ParticipantId(0)), Some(360));
        tiles.set(ParticipantId(999), 720);
        assert_eq!(tiles.get(ParticipantId(0)), None, "the oldest went");
        assert_eq!(tiles.get(ParticipantId(999)), Some(720));
        tiles.remove(ParticipantId(999));
        assert_eq!(tiles.get(ParticipantId(999)), None);
        assert_eq!(tiles.take().count(), TileSizes::MAX - 1);
        assert_eq!(tiles.take().count(), 0);
    }
}
