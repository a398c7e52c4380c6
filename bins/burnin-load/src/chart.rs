//! Small SVG line charts for the records: one panel per series, stacked,
//! sharing the x axis. No plotting library: the records only need lines,
//! axes and labels, and an SVG diff stays readable in review.

use std::fmt::Write as _;

/// One panel: its title (with its unit) and its points `(x, y)`, plus
/// more named lines drawn on the same axes (`others`), with a legend.
pub(crate) struct Series {
    pub(crate) title: String,
    pub(crate) points: Vec<(f64, f64)>,
    /// Further lines on this panel: name, points. The first line is then
    /// named by `name`.
    pub(crate) others: Vec<(String, Vec<(f64, f64)>)>,
    /// The first line's name in the legend (shown only with `others`).
    pub(crate) name: String,
}

impl Series {
    /// A panel with one line.
    pub(crate) fn one(title: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            title: title.into(),
            points,
            others: Vec::new(),
            name: String::new(),
        }
    }
}

const COLOURS: [&str; 4] = ["#1f5fa8", "#c0392b", "#27864a", "#8e44ad"];

const WIDTH: f64 = 720.0;
const PANEL: f64 = 150.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 64.0;
const GAP: f64 = 40.0;

/// `panels` stacked under `title`, `x_label` under the last one. Each
/// panel's y axis starts at 0, so a flat curve looks flat and growth is
/// not exaggerated.
pub(crate) fn svg(title: &str, x_label: &str, panels: &[Series]) -> String {
    let height = TOP + panels.len() as f64 * (PANEL + GAP) + 20.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let x_max = panels
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    for (k, s) in panels.iter().enumerate() {
        let top = TOP + k as f64 * (PANEL + GAP);
        let lines: Vec<(&str, &[(f64, f64)])> = std::iter::once((s.name.as_str(), &s.points[..]))
            .chain(s.others.iter().map(|(n, p)| (n.as_str(), &p[..])))
            .collect();
        let y_max = nice(
            lines
                .iter()
                .flat_map(|l| l.1.iter().map(|p| p.1))
                .fold(0.0_f64, f64::max),
        );
        let x = |v: f64| LEFT + v / x_max * plot_w;
        let y = |v: f64| top + PANEL - v / y_max * PANEL;
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{}" font-weight="bold">{}</text>"#,
            top - 6.0,
            escape(&s.title)
        );
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#999"/>"##
        );
        for t in 0..=4 {
            let v = y_max * f64::from(t) / 4.0;
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" x2="{}" y1="{yy}" y2="{yy}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                y(v) + 4.0,
                short(v),
                yy = y(v),
            );
        }
        for t in 0..=5 {
            let v = x_max * f64::from(t) / 5.0;
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                x(v),
                top + PANEL + 15.0,
                short(v)
            );
        }
        for (k, (name, points)) in lines.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            let path: Vec<String> = points
                .iter()
                .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            for &(px, py) in *points {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                    x(px),
                    y(py)
                );
            }
            if lines.len() > 1 {
                let _ = writeln!(
                    out,
                    r#"<text x="{}" y="{}" fill="{colour}">{}</text>"#,
                    LEFT + 10.0,
                    top + 16.0 + k as f64 * 15.0,
                    escape(name)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        height - 4.0,
        escape(x_label)
    );
    out.push_str("</svg>\n");
    out
}

/// A round upper bound for an axis (1, 2 or 5 times a power of ten).
fn nice(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * p)
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round_and_every_point_is_drawn() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(7.3), 10.0);
        assert_eq!(nice(120.0), 200.0);
        assert_eq!(nice(5000.0), 5000.0);
        let s = svg(
            "soak <1>",
            "operations",
            &[Series::one(
                "RSS (MiB)",
                vec![(0.0, 1.0), (500.0, 2.0), (1000.0, 2.0)],
            )],
        );
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<circle").count(), 3);
        assert!(!s.contains("fill=\"#c0392b\""), "one line, no legend");
        let two = svg(
            "cost",
            "devices",
            &[Series {
                title: "CPU".into(),
                name: "edge".into(),
                points: vec![(1.0, 1.0), (2.0, 2.0)],
                others: vec![("broker".into(), vec![(1.0, 3.0), (2.0, 9.0)])],
            }],
        );
        assert_eq!(two.matches("<circle").count(), 4);
        assert!(two.contains(">edge</text>") && two.contains(">broker</text>"));
        assert!(s.contains("soak &lt;1&gt;"), "titles are text, not markup");
    }
}
