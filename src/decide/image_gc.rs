//! Image garbage collection, with no I/O: which unused images go when the
//! engine's image file system is too full, as the kubelet's image manager
//! decides it.
//!
//! When the usage reaches `--image-gc-high-threshold` percent (100: never,
//! collection is off), images are
//! removed until it is back at `--image-gc-low-threshold` percent: least
//! recently used first (an image never seen in use before any other; ties
//! by first seen), counting each image's size as freed. An image is never
//! removed when a container of the engine (running or not) uses it, when it
//! is the infra image, when it was first seen less than
//! `--minimum-image-ttl-duration` ago, or (unless `--image-gc-all-images`)
//! when podvisor neither pulled it nor ran a container of it: the engine
//! may be shared with its users.

use std::collections::HashSet;
use std::time::Duration;

/// The thresholds and rules (from the settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageGcPolicy {
    /// Percent of the image file system that starts a collection.
    pub high_percent: u8,
    /// Percent it frees down to.
    pub low_percent: u8,
    /// Least time since an image was first seen before it may go.
    pub min_age: Duration,
    /// Collect images podvisor never pulled nor ran too.
    pub all_images: bool,
}

impl Default for ImageGcPolicy {
    /// The kubelet's defaults: 85 %, 80 %, 2 minutes, only its own images.
    fn default() -> Self {
        Self {
            high_percent: 85,
            low_percent: 80,
            min_age: Duration::from_secs(120),
            all_images: false,
        }
    }
}

/// How full the image file system is, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsUsage {
    pub used: u64,
    pub capacity: u64,
}

impl FsUsage {
    /// The usage in percent, rounded up (the kubelet's `100 - available %`).
    pub fn percent(&self) -> u64 {
        if self.capacity == 0 {
            return 0;
        }
        let used = u128::from(self.used.min(self.capacity)) * 100;
        used.div_ceil(u128::from(self.capacity)) as u64
    }
}

/// One local image as the collector knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// `sha256:…`.
    pub id: String,
    pub size: u64,
    /// When podvisor first saw it, seconds since the epoch.
    pub first_seen: i64,
    /// When a container of it was last seen, if ever.
    pub last_used: Option<i64>,
    /// podvisor pulled it or ran a container of it.
    pub ours: bool,
}

/// What one collection does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageGcPlan {
    /// Image IDs to remove, in order.
    pub remove: Vec<String>,
    /// Bytes to free to reach the low threshold (0: under the high one).
    pub to_free: u64,
    /// Bytes the removals free.
    pub freed: u64,
}

impl ImageGcPlan {
    /// Whether the removals fall short of what is to be freed.
    pub fn short(&self) -> bool {
        self.freed < self.to_free
    }
}

/// What may go and what goes: see the module's notes. `in_use` and
/// `pinned` (the infra image) are image IDs.
pub fn plan(
    images: &[ImageRecord],
    usage: FsUsage,
    policy: &ImageGcPolicy,
    now_secs: i64,
    in_use: &HashSet<String>,
    pinned: &HashSet<String>,
) -> ImageGcPlan {
    // A high threshold of 100 turns collection off, as in the kubelet.
    if policy.high_percent >= 100
        || usage.capacity == 0
        || usage.percent() < u64::from(policy.high_percent)
    {
        return ImageGcPlan::default();
    }
    let low = u128::from(usage.capacity) * u128::from(policy.low_percent) / 100;
    let to_free = u64::try_from(u128::from(usage.used).saturating_sub(low)).unwrap_or(u64::MAX);
    let min_age = i64::try_from(policy.min_age.as_secs()).unwrap_or(i64::MAX);
    let mut candidates: Vec<&ImageRecord> = images
        .iter()
        .filter(|i| !in_use.contains(&i.id) && !pinned.contains(&i.id))
        .filter(|i| policy.all_images || i.ours)
        .filter(|i| now_secs.saturating_sub(i.first_seen) >= min_age)
        .collect();
    candidates.sort_by(|a, b| {
        (a.last_used, a.first_seen, &a.id).cmp(&(b.last_used, b.first_seen, &b.id))
    });
    let mut out = ImageGcPlan {
        to_free,
        ..ImageGcPlan::default()
    };
    for i in candidates {
        if out.freed >= to_free {
            break;
        }
        out.remove.push(i.id.clone());
        out.freed = out.freed.saturating_add(i.size);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;
    const GB: u64 = 1 << 30;

    fn img(id: &str, gb: u64, first_seen: i64, last_used: Option<i64>) -> ImageRecord {
        ImageRecord {
            id: id.into(),
            size: gb * GB,
            first_seen,
            last_used,
            ours: true,
        }
    }

    fn usage(used_gb: u64) -> FsUsage {
        FsUsage {
            used: used_gb * GB,
            capacity: 100 * GB,
        }
    }

    fn none() -> HashSet<String> {
        HashSet::new()
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn old() -> Vec<ImageRecord> {
        vec![
            img("a", 2, 0, Some(500)),
            img("b", 2, 0, Some(100)),
            img("c", 2, 0, None),
            img("d", 2, 10, Some(900)),
        ]
    }

    #[test]
    fn under_the_high_threshold_nothing_goes() {
        let p = plan(
            &old(),
            usage(84),
            &ImageGcPolicy::default(),
            NOW,
            &none(),
            &none(),
        );
        assert_eq!(p, ImageGcPlan::default());
        // A high threshold of 100 is off, even on a full disk.
        let off = ImageGcPolicy {
            high_percent: 100,
            ..ImageGcPolicy::default()
        };
        let p = plan(&old(), usage(100), &off, NOW, &none(), &none());
        assert!(p.remove.is_empty());
        // No capacity known: nothing either.
        let p = plan(
            &old(),
            FsUsage::default(),
            &ImageGcPolicy::default(),
            NOW,
            &none(),
            &none(),
        );
        assert!(p.remove.is_empty());
    }

    #[test]
    fn least_recently_used_go_first_down_to_the_low_threshold() {
        // 85 %: reach 80 %, 5 GB, three images of 2 GB; never used first.
        let p = plan(
            &old(),
            usage(85),
            &ImageGcPolicy::default(),
            NOW,
            &none(),
            &none(),
        );
        assert_eq!(p.remove, ["c", "b", "a"]);
        assert_eq!(p.to_free, 5 * GB);
        assert_eq!(p.freed, 6 * GB);
        assert!(!p.short());
        // 84.5 % rounds up to 85: collected; 4 GB to free is two images.
        let u = FsUsage {
            used: 84 * GB + GB / 2,
            capacity: 100 * GB,
        };
        let p = plan(&old(), u, &ImageGcPolicy::default(), NOW, &none(), &none());
        assert_eq!(p.remove, ["c", "b", "a"]);
        let p = plan(
            &old(),
            usage(90),
            &ImageGcPolicy::default(),
            NOW,
            &none(),
            &none(),
        );
        assert_eq!(p.remove, ["c", "b", "a", "d"]);
        assert!(p.short(), "10 GB to free, 8 GB found");
    }

    #[test]
    fn in_use_infra_young_and_foreign_images_are_kept() {
        let mut images = old();
        images.push(img("young", 50, NOW - 60, None));
        let mut foreign = img("foreign", 50, 0, None);
        foreign.ours = false;
        images.push(foreign);
        let policy = ImageGcPolicy::default();
        let p = plan(&images, usage(95), &policy, NOW, &set(&["c"]), &set(&["b"]));
        assert_eq!(p.remove, ["a", "d"]);
        assert!(p.short());
        // Past the minimum age the young one may go.
        let p = plan(
            &images,
            usage(95),
            &policy,
            NOW + 60,
            &set(&["c"]),
            &set(&["b"]),
        );
        assert_eq!(p.remove, ["young"]);
        // With all images, the foreign one is a candidate (never used, seen first).
        let all = ImageGcPolicy {
            all_images: true,
            ..policy
        };
        let p = plan(&images, usage(95), &all, NOW, &set(&["c"]), &set(&["b"]));
        assert_eq!(p.remove, ["foreign"]);
    }

    #[test]
    fn ties_in_last_use_go_by_first_seen() {
        let images = vec![img("late", 1, 50, None), img("early", 1, 5, None)];
        let p = plan(
            &images,
            usage(81),
            &ImageGcPolicy {
                high_percent: 81,
                ..Default::default()
            },
            NOW,
            &none(),
            &none(),
        );
        assert_eq!(p.remove, ["early"]);
    }

    proptest::proptest! {
        /// Whatever the images, a plan removes only candidates, least
        /// recently used first, and stops as soon as enough is freed.
        #[test]
        fn plans_free_in_lru_order_and_stop_at_the_low_threshold(
            sizes in proptest::collection::vec((1u64..20, proptest::option::of(0i64..1000), proptest::bool::ANY), 0..12),
            used in 0u64..=100,
        ) {
            let images: Vec<ImageRecord> = sizes.iter().enumerate().map(|(n, (gb, last, ours))| ImageRecord {
                id: format!("i{n}"), size: gb * GB, first_seen: 0, last_used: *last, ours: *ours,
            }).collect();
            let in_use = set(&["i0"]);
            let p = plan(&images, usage(used), &ImageGcPolicy::default(), NOW, &in_use, &none());
            let picked: Vec<&ImageRecord> = p.remove.iter().map(|id| images.iter().find(|i| &i.id == id).unwrap()).collect();
            proptest::prop_assert!(picked.iter().all(|i| i.ours && i.id != "i0"));
            proptest::prop_assert!(picked.windows(2).all(|w| w[0].last_used <= w[1].last_used));
            let before_last: u64 = picked.iter().rev().skip(1).map(|i| i.size).sum();
            proptest::prop_assert!(picked.is_empty() || before_last < p.to_free);
            if used < 85 { proptest::prop_assert!(p.remove.is_empty()); }
            if p.short() {
                let candidates = images.iter().filter(|i| i.ours && i.id != "i0").count();
                proptest::prop_assert_eq!(p.remove.len(), candidates);
            }
        }
    }
}
