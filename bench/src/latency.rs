//! Latency bookkeeping: HDR histograms in microseconds, the percentiles the report shows,
//! and the percentile curve the chart draws.

use std::time::Duration;

use hdrhistogram::Histogram;

/// A histogram of latencies in microseconds, 1 µs to 10 min, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Records `d` (clamped into the histogram's range).
pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// The latencies a report row shows, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// `None` for an empty histogram.
    pub(crate) fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Self {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        })
    }
}

/// The quantile at chart coordinate `x`. The chart's x is log10(1 / (1 - q)), so 0 is p0,
/// 1 is p90, 2 is p99, 3 is p99.9 (the usual HDR percentile plot).
pub(crate) fn quantile_of_x(x: f64) -> f64 {
    1.0 - 10f64.powf(-x)
}

/// Points (x, latency ms) of `h`'s percentile curve, from p0 up to the deepest percentile the
/// sample size supports (one in `count`), at most p99.99.
pub(crate) fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let deepest = (h.len() as f64).log10().clamp(0.5, 4.0);
    let steps = 80;
    (0..=steps)
        .map(|i| {
            let x = deepest * f64::from(i) / f64::from(steps);
            (x, h.value_at_quantile(quantile_of_x(x)) as f64 / 1000.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram_in_ms() {
        let mut h = histogram();
        for ms in 1..=100u64 {
            record(&mut h, Duration::from_millis(ms));
        }
        let p = Percentiles::of(&h).unwrap();
        assert!((p.p50 - 50.0).abs() < 0.1, "{p:?}");
        assert!((p.p90 - 90.0).abs() < 0.1, "{p:?}");
        assert!((p.p99 - 99.0).abs() < 0.1, "{p:?}");
        assert!((p.max - 100.0).abs() < 0.1, "{p:?}");
        assert!(Percentiles::of(&histogram()).is_none());
    }

    #[test]
    fn chart_axis_maps_nines_to_integers() {
        assert!((quantile_of_x(1.0) - 0.9).abs() < 1e-12);
        assert!((quantile_of_x(3.0) - 0.999).abs() < 1e-12);
        assert!((quantile_of_x(2.0) - 0.99).abs() < 1e-12);
    }
}
