//! SVG charts: a comparison's makespan per mode (median bar, min-max whisker) against the
//! ideal bound, a sweep's measure per mode against latency or k, and `serve-bench`'s
//! latency percentiles.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

use super::stats::Summary;

const SIZE: (u32, u32) = (720, 420);
const NS_PER_MS: f64 = 1e6;

#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {message}")]
pub struct Error {
    path: String,
    message: String,
}

impl Error {
    fn new(path: &Path, error: Box<dyn std::error::Error>) -> Self {
        Error {
            path: path.display().to_string(),
            message: error.to_string(),
        }
    }
}

/// The legend, top left, and the file written.
fn finish<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    root: &DrawingArea<SVGBackend<'a>, Shift>,
) -> Result<(), Box<dyn std::error::Error>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Draws one bar per mode, with the ideal bound as a dashed line when known.
pub fn makespans(
    path: &Path,
    title: &str,
    modes: &[(String, Summary)],
    ideal_ns: Option<u64>,
) -> Result<(), Error> {
    draw(path, title, modes, ideal_ns).map_err(|e| Error::new(path, e))
}

fn draw(
    path: &Path,
    title: &str,
    modes: &[(String, Summary)],
    ideal_ns: Option<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let top = modes
        .iter()
        .map(|(_, s)| s.max)
        .chain(ideal_ns)
        .max()
        .unwrap_or(1) as f64
        / NS_PER_MS
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        // Bars sit on whole numbers, where the mode labels go.
        .build_cartesian_2d(-0.5f64..modes.len() as f64 - 0.5, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(modes.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            let name = modes
                .get(i as usize)
                .filter(|_| (x - i).abs() < 1e-6 && i >= 0.0);
            name.map(|(name, _)| name.clone()).unwrap_or_default()
        })
        .y_desc("makespan (ms)")
        .draw()?;
    for (i, (_, s)) in modes.iter().enumerate() {
        let x = i as f64;
        let (min, median, max) = (
            s.min as f64 / NS_PER_MS,
            s.median as f64 / NS_PER_MS,
            s.max as f64 / NS_PER_MS,
        );
        chart.draw_series([Rectangle::new(
            [(x - 0.3, 0.0), (x + 0.3, median)],
            BLUE.mix(0.6).filled(),
        )])?;
        chart.draw_series([PathElement::new(
            vec![(x, min), (x, max)],
            BLACK.stroke_width(2),
        )])?;
    }
    if let Some(ideal) = ideal_ns {
        let y = ideal as f64 / NS_PER_MS;
        chart
            .draw_series(DashedLineSeries::new(
                [(-0.5, y), (modes.len() as f64 - 0.5, y)],
                6,
                4,
                RED.stroke_width(2),
            ))?
            .label("ideal max(C, F)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE)
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// A line chart with a logarithmic x axis: one line with points per series.
pub struct Lines<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    /// A dashed horizontal reference line (1 for speedups).
    pub baseline: Option<f64>,
    pub series: &'a [(String, Vec<(f64, f64)>)],
}

/// Draws `chart` (x must be positive: the axis is logarithmic).
pub fn lines(path: &Path, chart: &Lines) -> Result<(), Error> {
    draw_lines(path, chart).map_err(|e| Error::new(path, e))
}

/// `serve-bench --svg`: latency against percentile, both axes logarithmic, so a tail of
/// rare slow answers (the cold requests' fetches, or hot ones stuck behind them) stands
/// out. One line per series of (1/(1-q), latency in ms) points.
pub fn percentiles(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), Error> {
    draw_percentiles(path, title, series).map_err(|e| Error::new(path, e))
}

fn draw_lines(path: &Path, spec: &Lines) -> Result<(), Box<dyn std::error::Error>> {
    let points = || spec.series.iter().flat_map(|(_, p)| p.iter().copied());
    let (lo, hi) = points().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| {
        (lo.min(x), hi.max(x))
    });
    let (lo, hi) = if lo <= hi {
        (lo / 2.0, hi * 2.0)
    } else {
        (0.01, 100.0)
    };
    let top = points()
        .map(|(_, y)| y)
        .chain(spec.baseline)
        .fold(f64::MIN_POSITIVE, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(spec.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc(spec.x_desc)
        .y_desc(spec.y_desc)
        .draw()?;
    if let Some(y) = spec.baseline {
        chart.draw_series(DashedLineSeries::new(
            [(lo, y), (hi, y)],
            4,
            4,
            BLACK.mix(0.5).stroke_width(1),
        ))?;
    }
    for (i, (name, line)) in spec.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    finish(&mut chart, &root)
}

fn draw_percentiles(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), Box<dyn std::error::Error>> {
    let ys = || series.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
    let low = ys().fold(f64::MAX, f64::min).clamp(1e-3, 1e3) / 2.0;
    let high = ys().fold(1e-3, f64::max) * 2.0;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((1f64..1000f64).log_scale(), (low..high).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| format!("{}", (1000.0 * (1.0 - 1.0 / x)).round() / 10.0))
        .draw()?;
    for (i, (name, line)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    finish(&mut chart, &root)
}
