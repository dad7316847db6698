//! Which simulcast layer each subscriber receives.
//!
//! A publisher sends its camera three times (`q` 320x180, `h` 640x360, `f`
//! 1280x720, see `docs/adaptation.md`). For every subscriber the SFU forwards one
//! of them: the best that fits both the subscriber's bandwidth estimate and the
//! size at which the subscriber shows the tile. Nothing here touches packets;
//! [`allocate`] shares one subscriber's budget across its video subscriptions,
//! and [`LayerSelector`] adds the hysteresis that keeps a tile from flapping.

use std::time::{Duration, Instant};

/// How many simulcast layers a publication can have.
pub const LAYER_COUNT: usize = 3;

/// One simulcast layer of a published video track, lowest first. A publisher
/// that does not simulcast sends one stream, taken as the full layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Layer(u8);

impl Layer {
    /// 320x180: thumbnails and poor links.
    pub const QUARTER: Layer = Layer(0);
    /// 640x360.
    pub const HALF: Layer = Layer(1);
    /// 1280x720: the camera as captured.
    pub const FULL: Layer = Layer(2);
    /// All layers, lowest first.
    pub const ALL: [Layer; LAYER_COUNT] = [Layer::QUARTER, Layer::HALF, Layer::FULL];

    /// The layer a simulcast `rid` names (`q`, `h`, `f`, as the browser client
    /// sends them); no rid means no simulcast.
    pub fn from_rid(rid: Option<&str>) -> Option<Layer> {
        match rid {
            None | Some("f") => Some(Layer::FULL),
            Some("h") => Some(Layer::HALF),
            Some("q") => Some(Layer::QUARTER),
            Some(_) => None,
        }
    }

    /// The rid this layer is published under.
    pub fn rid(self) -> &'static str {
        ["q", "h", "f"][self.index()]
    }

    /// Position in per-layer arrays.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The picture height the layer is published at.
    pub fn nominal_height(self) -> u32 {
        [180, 360, 720][self.index()]
    }

    /// The smallest layer that looks sharp in a tile `height` device pixels
    /// tall: a layer up to a quarter smaller than the tile still looks fine.
    pub fn for_view_height(height: u32) -> Layer {
        Layer::ALL
            .into_iter()
            .find(|l| l.nominal_height() * 4 >= height * 3)
            .unwrap_or(Layer::FULL)
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.rid())
    }
}

/// What one video subscription could receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// The highest layer worth sending, from the rendered tile size.
    pub cap: Layer,
    /// Each layer's measured bitrate in bit/s; `None` when the publisher is not
    /// sending that layer now.
    pub rates: [Option<u64>; LAYER_COUNT],
    /// Who is served first when the budget is short: the tile's area.
    pub priority: u64,
}

impl Demand {
    /// The lowest layer being published.
    pub fn lowest(&self) -> Option<Layer> {
        self.choices().next().map(|(layer, _)| layer)
    }

    /// The layer the tile would take with bandwidth to spare, and its rate.
    pub fn best(&self) -> Option<(Layer, u64)> {
        self.choices().last()
    }

    /// The same tile as if the publisher sent every layer, those not being
    /// sent at `nominal` rates: what the viewer would take, which tells the
    /// publisher which layers are worth encoding.
    pub fn as_if_all_sent(&self, nominal: impl Fn(Layer) -> u64) -> Demand {
        let mut all = *self;
        for layer in Layer::ALL {
            all.rates[layer.index()].get_or_insert_with(|| nominal(layer));
        }
        all
    }

    /// The layers that can be chosen, lowest first: sent by the publisher and
    /// not above the cap, or the lowest layer sent when all are above it.
    fn choices(&self) -> impl Iterator<Item = (Layer, u64)> + '_ {
        let lowest_sent = Layer::ALL
            .into_iter()
            .find(|l| self.rates[l.index()].is_some());
        Layer::ALL.into_iter().filter_map(move |l| {
            let rate = self.rates[l.index()]?;
            (l <= self.cap || Some(l) == lowest_sent).then_some((l, rate))
        })
    }
}

/// Shares `budget` bit/s across one subscriber's video subscriptions: first the
/// lowest layer for each, in priority order, then one step up at a time for
/// the highest priority that still fits. A subscription that cannot get even
/// its lowest layer gets `None` (video paused). `out[i]` answers `demands[i]`.
pub fn allocate(budget: u64, demands: &[Demand]) -> Vec<Option<Layer>> {
    let mut out = vec![None; demands.len()];
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(demands[i].priority));
    let mut left = budget;
    let mut spent = vec![0u64; demands.len()];
    for &i in &order {
        if let Some((layer, rate)) = demands[i].choices().next() {
            if rate <= left {
                left -= rate;
                spent[i] = rate;
                out[i] = Some(layer);
            }
        }
    }
    loop {
        let mut stepped = false;
        for &i in &order {
            let Some(current) = out[i] else { continue };
            let Some((layer, rate)) = demands[i].choices().find(|(l, _)| *l > current) else {
                continue;
            };
            let extra = rate.saturating_sub(spent[i]);
            if extra <= left {
                left -= extra;
                spent[i] = rate;
                out[i] = Some(layer);
                stepped = true;
            }
        }
        if !stepped {
            return out;
        }
    }
}

/// Whether some tile is below the best layer it could show: its `targets`
/// entry (the layer its [`LayerSelector`] chose) is under [`Demand::best`].
/// Measured by the chosen layer, not by what the budget fits: a budget that
/// fits a layer but not with [`UP_HEADROOM`] to spare holds the tile below
/// it, and must be probed past, while a tile already at its best is not held
/// back however close the budget is.
pub fn held_back(demands: &[Demand], targets: &[Option<Layer>]) -> bool {
    demands
        .iter()
        .zip(targets)
        .any(|(d, t)| d.best().map(|(l, _)| l) > *t)
}

/// Headroom asked for before stepping up: the budget must exceed the higher
/// layer's rate by this factor, so a layer that only just fits is not taken
/// and dropped again at the next dip.
pub const UP_HEADROOM: f64 = 1.25;

/// How long a step up must stay possible before it is taken.
pub const UP_HOLD: Duration = Duration::from_secs(2);

/// How long the budget must stay below the lowest layer before video pauses.
/// Meanwhile the lowest layer is sent: a pause is what people notice most, so
/// it is not taken on one low estimate.
pub const PAUSE_HOLD: Duration = Duration::from_secs(1);

/// One subscription's layer decision over time. Steps down at once (a
/// congested link must be relieved now), pauses only after [`PAUSE_HOLD`]
/// short of the lowest layer, and steps up only after [`UP_HOLD`] of budget
/// with [`UP_HEADROOM`] to spare (so a brief estimate peak does not cause a
/// keyframe request and a switch back). A step up that comes from a newly
/// published layer or a bigger tile, not from the budget, is taken at once.
#[derive(Debug, Clone, Default)]
pub struct LayerSelector {
    target: Option<Layer>,
    started: bool,
    /// Since when a step up has been possible with headroom, without a break.
    up_since: Option<Instant>,
    /// Since when not even the lowest layer has fitted, without a break.
    short_since: Option<Instant>,
    /// The best layer the tile could take at the last decision.
    best: Option<Layer>,
}

impl LayerSelector {
    /// The layer wanted now; `None` pauses video.
    pub fn target(&self) -> Option<Layer> {
        self.target
    }

    /// Video was chosen before and is now paused (not merely undecided).
    pub fn is_paused(&self) -> bool {
        self.started && self.target.is_none()
    }

    /// Takes the two allocations for this subscription: `fits` from the whole
    /// budget, `fits_with_headroom` from the budget divided by [`UP_HEADROOM`];
    /// `demand` says which layers are published and the tile's cap. Returns
    /// the new target when it changed.
    pub fn decide(
        &mut self,
        now: Instant,
        demand: &Demand,
        fits: Option<Layer>,
        fits_with_headroom: Option<Layer>,
    ) -> Option<Option<Layer>> {
        let lowest = demand.lowest();
        let available = self
            .target
            .is_none_or(|l| demand.rates[l.index()].is_some());
        // A layer newly published or a tile made bigger: not a budget blip,
        // so a step up it allows needs no hold.
        let best = demand.best().map(|(l, _)| l);
        let best_rose = best > std::mem::replace(&mut self.best, best);
        let current = self.target;
        let first = !std::mem::replace(&mut self.started, true);
        let fits = match fits {
            Some(layer) => {
                self.short_since = None;
                Some(layer)
            }
            None => {
                let since = *self.short_since.get_or_insert(now);
                let paused = current.is_none() && !first;
                if paused || now.duration_since(since) >= PAUSE_HOLD {
                    None
                } else {
                    lowest
                }
            }
        };
        let next = if first || !available || fits < current {
            // The very first layer, a layer gone, or a link to relieve: now.
            self.up_since = None;
            fits
        } else if fits_with_headroom > current && best_rose {
            self.up_since = None;
            fits_with_headroom
        } else if fits_with_headroom > current {
            let since = *self.up_since.get_or_insert(now);
            if now.duration_since(since) >= UP_HOLD {
                self.up_since = None;
                fits_with_headroom
            } else {
                current
            }
        } else {
            self.up_since = None;
            current
        };
        if next == current {
            return None;
        }
        self.target = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOWEST: Option<Layer> = Some(Layer::QUARTER);

    /// All three layers published, shown full size.
    const ALL: Demand = Demand {
        cap: Layer::FULL,
        rates: RATES,
        priority: 1,
    };

    const RATES: [Option<u64>; 3] = [Some(150_000), Some(500_000), Some(1_500_000)];

    fn demand(cap: Layer, priority: u64) -> Demand {
        Demand {
            cap,
            rates: RATES,
            priority,
        }
    }

    #[test]
    fn rids_map_to_layers_and_back() {
        for l in Layer::ALL {
            assert_eq!(Layer::from_rid(Some(l.rid())), Some(l));
        }
        assert_eq!(Layer::from_rid(None), Some(Layer::FULL));
        assert_eq!(Layer::from_rid(Some("x")), None);
    }

    #[test]
    fn a_thumbnail_never_pulls_720p() {
        assert_eq!(Layer::for_view_height(120), Layer::QUARTER);
        assert_eq!(Layer::for_view_height(240), Layer::QUARTER);
        assert_eq!(Layer::for_view_height(300), Layer::HALF);
        assert_eq!(Layer::for_view_height(480), Layer::HALF);
        assert_eq!(Layer::for_view_height(540), Layer::FULL);
        assert_eq!(Layer::for_view_height(2160), Layer::FULL);
        let out = allocate(100_000_000, &[demand(Layer::QUARTER, 1)]);
        assert_eq!(out, [Some(Layer::QUARTER)]);
    }

    #[test]
    fn plenty_of_bandwidth_gives_every_tile_its_cap() {
        let out = allocate(
            10_000_000,
            &[demand(Layer::FULL, 10), demand(Layer::HALF, 5)],
        );
        assert_eq!(out, [Some(Layer::FULL), Some(Layer::HALF)]);
    }

    #[test]
    fn a_short_budget_serves_the_biggest_tile_first_but_keeps_everyone_on_video() {
        // 150k + 150k for both, then 350k more lifts the big tile to 500k.
        let out = allocate(700_000, &[demand(Layer::FULL, 1), demand(Layer::FULL, 10)]);
        assert_eq!(out, [Some(Layer::QUARTER), Some(Layer::HALF)]);
    }

    #[test]
    fn a_tile_below_its_best_layer_is_held_back_one_at_it_is_not() {
        let tiles = [demand(Layer::FULL, 1), demand(Layer::FULL, 2)];
        let t0 = Instant::now();
        // Both 720p layers fit, but not with the headroom a step up asks:
        // the tile on 360p stays there, and is held back.
        let budget = 3_200_000;
        let fits = allocate(budget, &tiles);
        let fits_up = allocate((budget as f64 / UP_HEADROOM) as u64, &tiles);
        let mut low = LayerSelector::default();
        low.decide(t0, &tiles[0], Some(Layer::HALF), Some(Layer::HALF));
        low.decide(t0 + UP_HOLD * 2, &tiles[0], fits[0], fits_up[0]);
        assert_eq!(low.target(), Some(Layer::HALF));
        assert!(held_back(&tiles, &[low.target(), Some(Layer::FULL)]));
        // Both already on 720p with the same budget: nothing to probe for.
        assert!(!held_back(&tiles, &[Some(Layer::FULL); 2]));
    }

    #[test]
    fn below_the_lowest_layer_video_is_paused() {
        let out = allocate(200_000, &[demand(Layer::FULL, 10), demand(Layer::FULL, 1)]);
        assert_eq!(out, [Some(Layer::QUARTER), None]);
        assert_eq!(allocate(100_000, &[demand(Layer::FULL, 1)]), [None]);
    }

    #[test]
    fn layers_the_publisher_stopped_are_skipped() {
        let mut d = demand(Layer::FULL, 1);
        d.rates[Layer::FULL.index()] = None;
        assert_eq!(allocate(10_000_000, &[d]), [Some(Layer::HALF)]);
        // Only the full layer is sent (no simulcast): it is taken even for a
        // thumbnail, since there is nothing smaller.
        let single = Demand {
            cap: Layer::QUARTER,
            rates: [None, None, Some(900_000)],
            priority: 1,
        };
        assert_eq!(allocate(10_000_000, &[single]), [Some(Layer::FULL)]);
        assert_eq!(allocate(500_000, &[single]), [None]);
    }

    #[test]
    fn selector_steps_down_at_once_and_up_only_after_the_hold() {
        let t0 = Instant::now();
        let mut s = LayerSelector::default();
        let full = Some(Layer::FULL);
        let half = Some(Layer::HALF);
        assert_eq!(s.decide(t0, &ALL, full, full), Some(full));
        // The estimate drops: down at once.
        assert_eq!(s.decide(t0, &ALL, half, half), Some(half));
        // It recovers: nothing until the hold has passed with headroom throughout.
        assert_eq!(
            s.decide(t0 + Duration::from_millis(100), &ALL, full, full),
            None
        );
        assert_eq!(
            s.decide(t0 + Duration::from_secs(1), &ALL, full, full),
            None
        );
        assert_eq!(
            s.decide(t0 + Duration::from_millis(2200), &ALL, full, full),
            Some(full)
        );
        assert_eq!(s.target(), full);
    }

    #[test]
    fn selector_does_not_flap_on_a_budget_that_only_just_fits() {
        let t0 = Instant::now();
        let mut s = LayerSelector::default();
        let half = Some(Layer::HALF);
        let full = Some(Layer::FULL);
        s.decide(t0, &ALL, half, half);
        // Fits without headroom: stays on the half layer however long it lasts.
        for ms in (0..10_000).step_by(500) {
            assert_eq!(
                s.decide(t0 + Duration::from_millis(ms), &ALL, full, half),
                None
            );
        }
        // A dip during the hold restarts it.
        assert_eq!(
            s.decide(t0 + Duration::from_secs(11), &ALL, full, full),
            None
        );
        assert_eq!(
            s.decide(t0 + Duration::from_secs(12), &ALL, half, half),
            None
        );
        assert_eq!(
            s.decide(t0 + Duration::from_secs(13), &ALL, full, full),
            None
        );
        assert_eq!(
            s.decide(t0 + Duration::from_millis(14_500), &ALL, full, full),
            None
        );
        assert_eq!(
            s.decide(t0 + Duration::from_secs(15), &ALL, full, full),
            Some(full)
        );
    }

    #[test]
    fn selector_pauses_only_after_the_hold_and_resumes_by_itself() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut s = LayerSelector::default();
        let half = Some(Layer::HALF);
        s.decide(t0, &ALL, half, half);
        // Not even the lowest layer fits: down to it at once, paused after the hold.
        assert_eq!(s.decide(ms(0), &ALL, None, None), Some(LOWEST));
        assert_eq!(s.decide(ms(500), &ALL, None, None), None);
        assert_eq!(s.decide(ms(1000), &ALL, None, None), Some(None));
        assert_eq!(s.decide(ms(1500), &ALL, None, None), None);
        // Back: the lowest layer with headroom for the up hold, then video again.
        assert_eq!(s.decide(ms(2000), &ALL, LOWEST, None), None);
        assert_eq!(s.decide(ms(2500), &ALL, LOWEST, LOWEST), None);
        assert_eq!(s.decide(ms(4500), &ALL, LOWEST, LOWEST), Some(LOWEST));
    }

    #[test]
    fn a_short_dip_below_the_lowest_layer_does_not_pause() {
        let t0 = Instant::now();
        let mut s = LayerSelector::default();
        s.decide(t0, &ALL, LOWEST, LOWEST);
        for n in 0..5 {
            let at = t0 + Duration::from_millis(900 * n);
            assert_eq!(s.decide(at, &ALL, None, None), None);
            assert_eq!(
                s.decide(at + Duration::from_millis(450), &ALL, LOWEST, None),
                None
            );
        }
    }

    #[test]
    fn the_first_choice_never_pauses_on_a_starting_guess() {
        let mut s = LayerSelector::default();
        let only_full = Demand {
            rates: [None, None, Some(1_500_000)],
            ..ALL
        };
        assert_eq!(
            s.decide(Instant::now(), &only_full, None, None),
            Some(Some(Layer::FULL))
        );
    }

    #[test]
    fn selector_leaves_a_layer_the_publisher_stopped_at_once() {
        let t0 = Instant::now();
        let mut s = LayerSelector::default();
        s.decide(t0, &ALL, Some(Layer::FULL), Some(Layer::FULL));
        let full_stopped = Demand {
            rates: [Some(150_000), Some(500_000), None],
            ..ALL
        };
        assert_eq!(
            s.decide(t0, &full_stopped, Some(Layer::HALF), Some(Layer::HALF)),
            Some(Some(Layer::HALF))
        );
    }

    #[test]
    fn a_layer_newly_published_or_a_bigger_tile_is_taken_without_the_hold() {
        let t0 = Instant::now();
        let mut s = LayerSelector::default();
        let only_quarter = Demand {
            rates: [Some(150_000), None, None],
            ..ALL
        };
        assert_eq!(s.decide(t0, &only_quarter, LOWEST, LOWEST), Some(LOWEST));
        let full = Some(Layer::FULL);
        assert_eq!(s.decide(t0, &ALL, full, full), Some(full));
        // The tile shrinks to a thumbnail, then grows back.
        let thumbnail = Demand {
            cap: Layer::QUARTER,
            ..ALL
        };
        assert_eq!(s.decide(t0, &thumbnail, LOWEST, LOWEST), Some(LOWEST));
        assert_eq!(s.decide(t0, &ALL, full, full), Some(full));
        // Without headroom the new layer still waits.
        let mut s = LayerSelector::default();
        s.decide(t0, &only_quarter, LOWEST, LOWEST);
        assert_eq!(s.decide(t0, &ALL, full, LOWEST), None);
    }
}
