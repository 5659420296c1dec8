//! Reading values out of a `/metrics` text.

/// The value of `series` (its name with any labels, as written) in a `/metrics` text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::metric_value;

    const TEXT: &str = "# TYPE seckill_buys counter\n\
                        seckill_buys_total{outcome=\"queued\"} 12\n\
                        seckill_buys_total{outcome=\"sold_out\"} 3\n\
                        seckill_up 1\n\
                        seckill_up_since 1700000000.5\n";

    #[test]
    fn reads_a_series_with_its_labels_as_written() {
        assert_eq!(metric_value(TEXT, r#"seckill_buys_total{outcome="queued"}"#), Some(12.0));
        assert_eq!(metric_value(TEXT, r#"seckill_buys_total{outcome="sold_out"}"#), Some(3.0));
    }

    #[test]
    fn a_name_does_not_match_a_longer_one() {
        assert_eq!(metric_value(TEXT, "seckill_up"), Some(1.0));
        assert_eq!(metric_value(TEXT, "seckill_up_since"), Some(1_700_000_000.5));
        assert_eq!(metric_value(TEXT, "seckill_buys_total"), None);
        assert_eq!(metric_value(TEXT, "seckill_down"), None);
    }
}
