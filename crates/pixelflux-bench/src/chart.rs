//! `pixelflux-bench chart`: the ours-vs-upstream SVG chart from `bench/compare.py`'s JSON.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use plotters::prelude::*;
use serde::Deserialize;

#[derive(Debug, Args)]
pub struct ChartArgs {
    /// The JSON `bench/compare.py` wrote.
    #[arg(long)]
    pub input: PathBuf,
    /// The SVG to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// The part of the comparison JSON the chart reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Comparison {
    pub results: Vec<CompareRow>,
}

/// One scene and codec, run through both libraries.
#[derive(Debug, Clone, Deserialize)]
pub struct CompareRow {
    pub scene: String,
    pub codec: String,
    pub ratios: Ratios,
}

/// Ours divided by upstream (`None` where upstream's figure was zero or missing).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Ratios {
    pub cpu: Option<f64>,
    pub bytes: Option<f64>,
    pub fps: Option<f64>,
}

/// Picks one ratio out of a row.
type Pick = fn(&Ratios) -> Option<f64>;

/// The three series: name, colour, and which ratio.
const SERIES: [(&str, RGBColor, Pick); 3] = [
    ("CPU", RGBColor(0x1f, 0x77, 0xb4), |r| r.cpu),
    ("bytes", RGBColor(0xff, 0x7f, 0x0e), |r| r.bytes),
    ("delivered fps", RGBColor(0x2c, 0xa0, 0x2c), |r| r.fps),
];

/// Ratios are drawn on a log axis between these bounds (values outside are clamped).
const LOW: f64 = 0.01;
const HIGH: f64 = 10.0;

/// Draws the grouped-bar chart of the ratios (log scale, 1.0 = same as upstream) into `out`.
pub fn draw(cmp: &Comparison, out: &std::path::Path) -> anyhow::Result<()> {
    let rows = &cmp.results;
    let n = rows.len().max(1);
    let root = SVGBackend::new(out, (160 + 110 * n as u32, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let caption = "ours / upstream pixelflux 2.2.1 on the same screens (below 1: ours uses less)";
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, (LOW..HIGH).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        // Groups sit on the integers, which the axis picks as its label points.
        .x_labels(n + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            rows.get(i as usize)
                .filter(|_| i >= 0.0 && (x - i).abs() < 0.01)
                .map(|r| format!("{} {}", r.scene, r.codec))
                .unwrap_or_default()
        })
        .y_desc("ours / upstream (log scale)")
        .y_label_formatter(&|v| format!("{v}"))
        .draw()?;
    let bar = 0.8 / SERIES.len() as f64;
    for (s, (name, colour, pick)) in SERIES.iter().enumerate() {
        let bars = rows.iter().enumerate().filter_map(|(i, r)| {
            let v = pick(&r.ratios)?.clamp(LOW, HIGH);
            let x0 = i as f64 - 0.4 + s as f64 * bar;
            Some(Rectangle::new(
                [(x0, LOW), (x0 + bar * 0.9, v)],
                colour.filled(),
            ))
        });
        chart
            .draw_series(bars)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(-0.5, 1.0), (n as f64 - 0.5, 1.0)],
        BLACK.stroke_width(1),
    )))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// `pixelflux-bench chart`.
pub fn run(args: ChartArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("read {}", args.input.display()))?;
    let cmp: Comparison = serde_json::from_str(&text).context("comparison JSON")?;
    draw(&cmp, &args.out)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_a_bar_per_ratio() {
        let cmp: Comparison = serde_json::from_str(
            r#"{"results": [
                {"scene": "typing", "codec": "jpeg", "ratios": {"cpu": 0.3, "bytes": 0.05, "fps": 1.0}},
                {"scene": "full", "codec": "h264", "ratios": {"cpu": 0.5, "bytes": null, "fps": 1.2}}
            ]}"#,
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("pixelflux-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.svg");
        draw(&cmp, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("typing jpeg") && svg.contains("full h264"));
        assert!(svg.contains("delivered fps"));
        // Five bars (one ratio missing) plus three legend swatches, in the series colours.
        let bars = svg.matches("fill=\"#1F77B4\"").count()
            + svg.matches("fill=\"#FF7F0E\"").count()
            + svg.matches("fill=\"#2CA02C\"").count();
        assert_eq!(bars, 5 + 3, "{svg}");
    }
}
