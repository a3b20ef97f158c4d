//! The report's plots, drawn as SVG with plotters (no font files needed).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::density::DensityReport;
use crate::w3::W3Report;

const COLORS: [RGBColor; 12] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x00, 0x00, 0x00),
    RGBColor(0x39, 0x3b, 0x79),
];

/// One named line: (x, y) points.
type Series = (String, Vec<(f64, f64)>);

/// Axis tick text.
type Format = fn(&f64) -> String;

fn log_log_chart(
    path: &Path,
    title: &str,
    (x_label, x_fmt): (&str, Format),
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    let pts = series.iter().flat_map(|s| s.1.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts.filter(|p| p.0 > 0.0 && p.1 > 0.0) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return Err(anyhow!("nothing to plot in {title}"));
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (x0 / 1.5..x1 * 1.5).log_scale(),
            // Head room above the data for the legend.
            (y0 / 2.0..y1 * 12.0).log_scale(),
        )
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&|v: &f64| format!("{v:.0}"))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|p| p.0 > 0.0 && p.1 > 0.0)
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| anyhow!("{e}"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// `bytes_vs_density.svg`: bytes per sync against the fraction of cells
/// changed, one line per system.
///
/// # Errors
/// Drawing or file errors.
pub fn bytes_vs_density(path: &Path, d: &DensityReport) -> Result<()> {
    let line = |f: &dyn Fn(&crate::density::DensityPoint) -> Option<u64>| -> Vec<(f64, f64)> {
        d.points
            .iter()
            .filter_map(|p| f(p).map(|b| (p.fraction, b as f64)))
            .collect()
    };
    let mut series = vec![
        ("atomik".to_string(), line(&|p| Some(p.atomik))),
        ("full state".to_string(), line(&|p| Some(p.full_state))),
        (
            "Automerge counters".to_string(),
            line(&|p| Some(p.automerge)),
        ),
    ];
    let session = line(&|p| p.session);
    if !session.is_empty() {
        series.push(("SQLite session patchset".to_string(), session));
    }
    log_log_chart(
        path,
        &format!("Bytes per sync vs change density ({} counters)", d.cells),
        ("cells changed", |f: &f64| format!("{}%", f * 100.0)),
        "bytes per sync",
        &series,
    )
}

/// `tps_vs_clients.svg`: W3 transactions per second against pgbench
/// clients, one line per (variant, synchronous_commit).
///
/// # Errors
/// Drawing or file errors.
pub fn tps_vs_clients(path: &Path, w3: &W3Report) -> Result<()> {
    let mut series: Vec<Series> = vec![];
    for p in &w3.points {
        let Some(tps) = p.tps else { continue };
        let name = format!("{} (sync commit {})", p.variant, p.synchronous_commit);
        match series.iter_mut().find(|s| s.0 == name) {
            Some(s) => s.1.push((p.clients as f64, tps)),
            None => series.push((name, vec![(p.clients as f64, tps)])),
        }
    }
    log_log_chart(
        path,
        "W3 hot counter: tps vs pgbench clients",
        ("pgbench clients", |c: &f64| format!("{c:.0}")),
        "transactions per second",
        &series,
    )
}
