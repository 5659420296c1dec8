//! The latency chart: one percentile curve per HTTP scenario, HDR-plot style (x = percentile
//! on a log scale of 1/(1-q): 0%, 90%, 99%, 99.9%, ...; y = latency in ms, log scale), as SVG.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use crate::latency::quantile_of_x;
use crate::report::Row;

/// Writes the chart of every row that has a curve to `path`. Returns false (and writes
/// nothing) if no row has one.
pub(crate) fn write_svg(path: &Path, title: &str, rows: &[Row]) -> anyhow::Result<bool> {
    let series: Vec<(String, &[(f64, f64)])> = rows
        .iter()
        .filter_map(|r| r.curve.as_deref().filter(|c| !c.is_empty()).map(|c| (format!("{}: {}", r.group, r.name), c)))
        .collect();
    if series.is_empty() {
        return Ok(false);
    }
    let max_x = series.iter().flat_map(|(_, c)| c.iter().map(|p| p.0)).fold(1.0f64, f64::max).ceil();
    let ys = || series.iter().flat_map(|(_, c)| c.iter().map(|p| p.1));
    let min_y = ys().filter(|y| *y > 0.0).fold(f64::INFINITY, f64::min);
    let max_y = ys().fold(0.0f64, f64::max);
    let (lo, hi) = log_bounds(min_y, max_y);

    let root = SVGBackend::new(path, (1100, 680)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("chart: {e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_x, (lo..hi).log_scale())
        .map_err(|e| anyhow!("chart: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms, log scale)")
        .x_labels(max_x as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| anyhow!("chart: {e}"))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points.iter().map(|&(x, y)| (x, y.max(lo))), color.stroke_width(2)))
            .map_err(|e| anyhow!("chart: {e}"))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("chart: {e}"))?;
    root.present().map_err(|e| anyhow!("chart: {e}"))?;
    Ok(true)
}

/// Dark, distinct line colours (Tableau 10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Powers of ten around [min, max].
fn log_bounds(min: f64, max: f64) -> (f64, f64) {
    let min = if min.is_finite() && min > 0.0 { min } else { 0.01 };
    let lo = 10f64.powf(min.log10().floor());
    let hi = 10f64.powf(max.max(min * 1.5).log10().ceil());
    (lo, hi)
}

/// `0%`, `90%`, `99%`, `99.9%` at whole x, nothing elsewhere.
fn percentile_label(x: f64) -> String {
    if (x - x.round()).abs() > 1e-6 {
        return String::new();
    }
    let p = quantile_of_x(x.round()) * 100.0;
    let s = format!("{p:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_read_like_hdr_plots() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(0.5), "");
    }

    #[test]
    fn log_bounds_are_powers_of_ten() {
        assert_eq!(log_bounds(0.35, 47.0), (0.1, 100.0));
        assert_eq!(log_bounds(f64::INFINITY, 0.0), (0.01, 0.1));
    }
}
