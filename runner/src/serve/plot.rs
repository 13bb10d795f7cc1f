//! `--svg`: latency against percentile, both axes logarithmic, so a tail of rare slow
//! answers (the cold requests' fetches, or hot ones stuck behind them) stands out.

use std::path::Path;

use plotters::prelude::*;

const SIZE: (u32, u32) = (720, 420);

#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {message}")]
pub struct Error {
    path: String,
    message: String,
}

/// One line per series of (1/(1-q), latency in ms) points.
pub fn percentiles(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), Error> {
    draw(path, title, series).map_err(|e| Error {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn draw(
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
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
