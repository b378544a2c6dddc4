//! Scroll detection: finds rows that moved vertically since the last frame, so the viewer can
//! copy them on its own picture (a copy-rows message, [`crate::wire::write_copy_rows`]) and only
//! the rows the move does not explain are encoded.
//!
//! Every row of the frame is hashed (XXH3-64 of its pixels, as change detection hashes
//! stripes; rows the source's damage report vouches for keep last frame's hash) and compared
//! with the previous frame's row hashes:
//!
//! 1. **Votes.** Each row that changed and whose new content appears exactly once in the
//!    previous frame votes for the offset between the two places. Rows that repeat (blank
//!    lines, uniform backgrounds) match anywhere and do not vote.
//! 2. **Runs.** The offsets with the most votes (at most [`MAX_OFFSETS`]) are tried in that
//!    order: the rows whose content sits exactly that far away in the previous frame, in
//!    runs of at least [`MIN_RUN_ROWS`] consecutive rows not claimed by a better offset. An
//!    offset is accepted when its runs explain at least [`MIN_EXPLAINED_ROWS`] rows that
//!    changed; otherwise it costs nothing and claims nothing.
//! 3. **Stripes.** A stripe whose changed rows are all explained by an accepted offset is
//!    *moved*: its rows are copied on the viewer's side and nothing is encoded for it. A
//!    stripe with any row not explained is encoded whole, as without scroll detection; one
//!    whose rows all hash as before is known unchanged (not hashed again). The copy runs are
//!    cut to the moved stripes, so the viewer never copies over a stripe that is sent anyway
//!    or that did not change.
//!
//! Only whole rows are matched: a scroll inside part of the width (a window beside a still
//! one, a moving scrollbar thumb) is not one. Cost per frame: one XXH3 pass over the rows that
//! may have changed (about 1.2 ms of CPU for a whole 1080p frame on the development machine),
//! plus hash-map work per changed row. It replaces the stripe hashing of change detection: with
//! scroll detection on, a stripe's hash is made from its rows' hashes, so no pixel is hashed
//! twice (docs/PERFORMANCE.md, "Scroll detection", has the figures).
//!
//! The rows copied carry the worth of what the viewer had there ([`Carried`]: quality sent,
//! whether painted over), so the paint-over logic refreshes them once the picture stops moving.

use std::collections::HashMap;

use xxhash_rust::xxh3::xxh3_64;

use crate::detect::{Carried, StripeLayout};
use crate::frame::FrameRef;
use crate::source::Damage;
use crate::wire::CopyRun;

/// Changed rows an offset must explain to be used: below this a move saves too little to be
/// worth a message, and a few matching rows are more likely coincidence (a repeated line of
/// text) than a scroll.
pub(crate) const MIN_EXPLAINED_ROWS: u32 = 16;
/// Shortest run of consecutive rows copied at one offset.
pub(crate) const MIN_RUN_ROWS: u32 = 4;
/// Offsets tried per frame (the most voted first): a scroll, plus e.g. a second area moving
/// by another amount.
pub(crate) const MAX_OFFSETS: usize = 3;

/// The row hashes of the last frame, kept between frames.
#[derive(Debug, Default)]
pub(crate) struct ScrollDetector {
    /// Row hashes of the frame before (what the viewer shows), when `valid`.
    prev: Vec<u64>,
    /// Row hashes of the current frame.
    cur: Vec<u64>,
    /// `prev` describes what the viewer shows (false at the start and after a failed frame).
    valid: bool,
}

/// What scroll detection says about one stripe this frame. With scroll detection on, a
/// stripe's hash is [`stripe_hash`] of its row hashes (one pass over the pixels for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Role {
    /// Scroll detection is off: decide as without it (hashing the pixels).
    #[default]
    Normal,
    /// Decide as usual with this hash; `unchanged`: every row hashes as in the last frame
    /// (known unchanged, as a damage report would say).
    Hashed { hash: u64, unchanged: bool },
    /// Every changed row is explained by the copy-rows of this frame: nothing to encode; the
    /// viewer's pixels now hash as `hash` and carry this worth.
    Moved { hash: u64, carried: Carried },
}

/// A stripe's hash from its rows' hashes.
fn stripe_hash(rows: &[u64]) -> u64 {
    let bytes: Vec<u8> = rows.iter().flat_map(|h| h.to_le_bytes()).collect();
    xxh3_64(&bytes)
}

/// The outcome for one frame: the copy runs (cut to the moved stripes, in `dst_y` order) and
/// each stripe's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub runs: Vec<CopyRun>,
    pub roles: Vec<Role>,
}

impl ScrollDetector {
    /// Forgets the last frame: the next one has nothing to move rows from (after a frame that
    /// did not reach the viewer).
    pub(crate) fn forget(&mut self) {
        self.valid = false;
    }

    /// Hashes this frame's rows, plans the moves against the last frame's (no moves on a
    /// `refresh`, which sends every stripe), and keeps this frame's hashes for the next.
    /// `carried` is each stripe's worth on the viewer's side before this frame.
    pub(crate) fn frame(
        &mut self,
        view: FrameRef<'_>,
        damage: &Damage,
        layout: StripeLayout,
        carried: &[Carried],
        refresh: bool,
    ) -> Plan {
        let height = view.height as usize;
        if self.prev.len() != height {
            self.valid = false;
        }
        let hashed_as = |rows: &[u64], unchanged: bool| Plan {
            runs: Vec::new(),
            roles: (0..layout.count())
                .map(|i| {
                    let (y, h) = layout.stripe(i);
                    Role::Hashed {
                        hash: stripe_hash(&rows[y as usize..(y + h) as usize]),
                        unchanged,
                    }
                })
                .collect(),
        };
        if self.valid && *damage == Damage::Rows(Vec::new()) {
            // Nothing changed: nothing to hash, nothing moved.
            return hashed_as(&self.prev, true);
        }
        self.cur.clear();
        match damage {
            Damage::Rows(rows) if self.valid => {
                self.cur.extend_from_slice(&self.prev);
                for r in rows {
                    for y in r.start.min(view.height)..r.end.min(view.height) {
                        self.cur[y as usize] = xxh3_64(view.row(y));
                    }
                }
            }
            _ => self
                .cur
                .extend((0..view.height).map(|y| xxh3_64(view.row(y)))),
        }
        let plan = if self.valid {
            let sources = if refresh {
                vec![None; height]
            } else {
                find_moves(&self.prev, &self.cur)
            };
            plan_stripes(&self.prev, &self.cur, &sources, layout, carried)
        } else {
            hashed_as(&self.cur, false)
        };
        std::mem::swap(&mut self.prev, &mut self.cur);
        self.valid = true;
        plan
    }
}

/// For each row of `cur`, the offset `d` of an accepted move explaining it (`cur[y] ==
/// prev[y - d]`), or `None`. See the [module docs](self) for the rules.
pub(crate) fn find_moves(prev: &[u64], cur: &[u64]) -> Vec<Option<i32>> {
    let height = cur.len();
    let mut sources = vec![None; height];
    let changed = |y: usize| cur[y] != prev[y];
    if (0..height).filter(|&y| changed(y)).count() < MIN_EXPLAINED_ROWS as usize {
        return sources;
    }
    // Where each of the previous frame's rows was, and how often it occurs.
    let mut index: HashMap<u64, (usize, u32)> = HashMap::with_capacity(height);
    for (y, &h) in prev.iter().enumerate() {
        index.entry(h).and_modify(|e| e.1 += 1).or_insert((y, 1));
    }
    let mut votes: HashMap<i32, u32> = HashMap::new();
    for y in (0..height).filter(|&y| changed(y)) {
        if let Some(&(p, 1)) = index.get(&cur[y]) {
            *votes.entry(y as i32 - p as i32).or_default() += 1;
        }
    }
    let mut offsets: Vec<(i32, u32)> = votes.into_iter().collect();
    // Most votes first; among equals the smaller move, then the upward one (a stable order).
    offsets.sort_by_key(|&(d, n)| (std::cmp::Reverse(n), d.unsigned_abs(), d));
    for &(d, _) in offsets.iter().take(MAX_OFFSETS) {
        let matches = |y: usize| {
            let src = y as i64 - d as i64;
            sources[y].is_none()
                && (0..height as i64).contains(&src)
                && cur[y] == prev[src as usize]
        };
        // Runs of matching rows, and how many changed rows they explain.
        let mut runs = Vec::new();
        let mut explained = 0;
        let mut y = 0;
        while y < height {
            if !matches(y) {
                y += 1;
                continue;
            }
            let start = y;
            while y < height && matches(y) {
                y += 1;
            }
            if (y - start) as u32 >= MIN_RUN_ROWS {
                explained += (start..y).filter(|&r| changed(r)).count() as u32;
                runs.push(start..y);
            }
        }
        if explained >= MIN_EXPLAINED_ROWS {
            for run in runs {
                for row in run {
                    sources[row] = Some(d);
                }
            }
        }
    }
    sources
}

/// Each stripe's role and the copy runs, cut to the moved stripes.
fn plan_stripes(
    prev: &[u64],
    cur: &[u64],
    sources: &[Option<i32>],
    layout: StripeLayout,
    carried: &[Carried],
) -> Plan {
    let mut roles = Vec::with_capacity(layout.count());
    let mut runs: Vec<CopyRun> = Vec::new();
    for i in 0..layout.count() {
        let (y0, h) = layout.stripe(i);
        let rows = y0 as usize..(y0 + h) as usize;
        let hash = stripe_hash(&cur[rows.clone()]);
        let changed = |y: usize| cur[y] != prev[y];
        if !rows.clone().any(changed) {
            roles.push(Role::Hashed {
                hash,
                unchanged: true,
            });
            continue;
        }
        if rows.clone().any(|y| changed(y) && sources[y].is_none()) {
            roles.push(Role::Hashed {
                hash,
                unchanged: false,
            });
            continue;
        }
        // Moved: the stripe's runs, and the worth of every stripe its pixels come from.
        let mut mine: Vec<CopyRun> = Vec::new();
        let mut worth = None::<Carried>;
        let mut add = |c: Carried| worth = Some(worth.map_or(c, |w| w.merge(c)));
        let mut y = rows.start;
        while y < rows.end {
            let Some(d) = sources[y] else {
                // An unchanged row the viewer keeps: this stripe's own pixels stay.
                add(carried[i]);
                y += 1;
                continue;
            };
            let start = y;
            while y < rows.end && sources[y] == Some(d) {
                y += 1;
            }
            let run = CopyRun {
                src_y: (start as i64 - d as i64) as u32,
                dst_y: start as u32,
                height: (y - start) as u32,
            };
            for j in layout.covering(run.src_y, run.src_y + run.height) {
                add(carried[j]);
            }
            mine.push(run);
        }
        match worth {
            Some(w) if w.is_sent() => {
                roles.push(Role::Moved { hash, carried: w });
                for run in mine {
                    match runs.last_mut() {
                        // Continues the run before it (the stripe above moved the same way).
                        Some(last)
                            if last.dst_y + last.height == run.dst_y
                                && last.src_y + last.height == run.src_y =>
                        {
                            last.height += run.height;
                        }
                        _ => runs.push(run),
                    }
                }
            }
            // Copied from a stripe the viewer has nothing of: send it instead.
            _ => roles.push(Role::Hashed {
                hash,
                unchanged: false,
            }),
        }
    }
    Plan { runs, roles }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::StripeState;

    /// Row hashes standing for distinct rows: `n` rows starting at content `from`.
    fn rows(from: u64, n: usize) -> Vec<u64> {
        (from..from + n as u64).collect()
    }

    fn sent() -> Vec<Carried> {
        let mut s = StripeState::default();
        // A stripe that was sent once (any content).
        let cfg = crate::detect::DetectConfig::new(&Default::default());
        let f = crate::frame::OwnedFrame::new(4, 4);
        s.decide(&cfg, f.view(), false, false);
        vec![s.carried(); 16]
    }

    #[test]
    fn a_scroll_up_is_found_and_the_exposed_rows_are_left_out() {
        // 256 rows scrolled up by 20: rows 0..236 are the old 20..256, 236..256 new.
        let prev = rows(1000, 256);
        let mut cur = rows(1020, 236);
        cur.extend(rows(5000, 20));
        let sources = find_moves(&prev, &cur);
        assert!(sources[..236].iter().all(|&s| s == Some(-20)));
        assert!(sources[236..].iter().all(|&s| s.is_none()));
        let layout = StripeLayout {
            height: 256,
            stripe_height: 64,
        };
        let plan = plan_stripes(&prev, &cur, &sources, layout, &sent());
        assert!(matches!(plan.roles[0], Role::Moved { .. }));
        assert!(matches!(plan.roles[1], Role::Moved { .. }));
        assert!(matches!(plan.roles[2], Role::Moved { .. }));
        assert!(
            matches!(
                plan.roles[3],
                Role::Hashed {
                    unchanged: false,
                    ..
                }
            ),
            "the stripe with the new rows"
        );
        // One run over the moved stripes only.
        assert_eq!(
            plan.runs,
            [CopyRun {
                src_y: 20,
                dst_y: 0,
                height: 192
            }]
        );
    }

    #[test]
    fn blank_rows_do_not_vote_and_a_still_picture_moves_nothing() {
        let prev: Vec<u64> = vec![7; 256];
        let mut cur = prev.clone();
        assert!(find_moves(&prev, &cur).iter().all(Option::is_none));
        // New content everywhere (a video): nothing in the old picture, no move.
        cur = rows(9000, 256);
        assert!(find_moves(&prev, &cur).iter().all(Option::is_none));
        // A few rows found elsewhere (a repeated line) explain too little.
        let prev = rows(0, 256);
        let mut cur = rows(10_000, 256);
        cur[100..110].copy_from_slice(&prev[30..40]);
        assert!(find_moves(&prev, &cur).iter().all(Option::is_none));
    }

    #[test]
    fn two_areas_moving_by_different_amounts_are_both_found() {
        // Top half scrolls down by 8, bottom half up by 30.
        let prev = rows(0, 512);
        let mut cur = vec![0; 512];
        cur[..8].copy_from_slice(&rows(50_000, 8));
        cur[8..256].copy_from_slice(&prev[0..248]);
        cur[256..482].copy_from_slice(&prev[286..512]);
        cur[482..].copy_from_slice(&rows(60_000, 30));
        let sources = find_moves(&prev, &cur);
        assert!(sources[8..256].iter().all(|&s| s == Some(8)));
        assert!(sources[256..482].iter().all(|&s| s == Some(-30)));
    }

    #[test]
    fn a_stripe_copied_from_one_never_sent_is_encoded_instead() {
        let prev = rows(1000, 128);
        let mut cur = rows(1020, 108);
        cur.extend(rows(5000, 20));
        let sources = find_moves(&prev, &cur);
        let layout = StripeLayout {
            height: 128,
            stripe_height: 64,
        };
        let mut carried = sent();
        carried[1] = StripeState::default().carried();
        let plan = plan_stripes(&prev, &cur, &sources, layout, &carried);
        // Stripe 0 takes rows 20..84 (from stripes 0 and 1; 1 has nothing): encoded.
        let encoded = |r: &Role| {
            matches!(
                r,
                Role::Hashed {
                    unchanged: false,
                    ..
                }
            )
        };
        assert!(plan.roles.iter().all(encoded), "{:?}", plan.roles);
        assert!(plan.runs.is_empty());
    }
}
