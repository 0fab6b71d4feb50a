//! The performance page's two kinds of plot, as small hand-written SVG: horizontal bars (the
//! kernel rows) and log-log lines (compile time against policy size). A plotting crate would
//! bring a font stack and a dozen dependencies for what is a few rectangles and polylines.

use std::fmt::Write;

const W: f64 = 720.0;
const LEFT: f64 = 290.0;
const COLORS: [&str; 4] = ["#4269d0", "#efb118", "#ff725c", "#6cc5b0"];

/// Text safe inside an SVG element.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn header(out: &mut String, h: f64, title: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">
<rect width="{W}" height="{h}" fill="white"/>
<text x="{}" y="20" font-size="14" text-anchor="middle">{}</text>
"#,
        W / 2.0,
        escape(title)
    );
}

/// One bar per item, value labelled; `unit` follows each value.
pub fn bars(title: &str, unit: &str, items: &[(String, f64)]) -> String {
    let row = 24.0;
    let h = 40.0 + row * items.len() as f64 + 10.0;
    let mut out = String::new();
    header(&mut out, h, title);
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max).max(1e-9);
    let width = W - LEFT - 90.0;
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 36.0 + row * i as f64;
        let len = (v.max(0.0) / max * width).max(1.0);
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{LEFT}" y="{y}" width="{len:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}">{v:.1} {}</text>"#,
            LEFT - 8.0,
            y + 14.0,
            escape(label),
            row - 6.0,
            COLORS[0],
            LEFT + len + 6.0,
            y + 14.0,
            escape(unit)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Log-log lines: each series is (name, points); points with non-positive values are left out.
pub fn loglog(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let (h, left, right, top, bottom) = (420.0, 80.0, W - 170.0, 40.0, 360.0);
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .filter(|&(x, y)| x > 0.0 && y > 0.0 && x.is_finite() && y.is_finite())
    };
    if pts().next().is_none() {
        let mut out = String::new();
        header(&mut out, 60.0, &format!("{title}: no data"));
        out.push_str("</svg>\n");
        return out;
    }
    let decades = |lo: f64, hi: f64| {
        (
            lo.log10().floor(),
            hi.log10().ceil().max(lo.log10().floor() + 1.0),
        )
    };
    let (x0, x1) = decades(
        pts().map(|p| p.0).fold(f64::MAX, f64::min),
        pts().map(|p| p.0).fold(0.0, f64::max),
    );
    let (y0, y1) = decades(
        pts().map(|p| p.1).fold(f64::MAX, f64::min),
        pts().map(|p| p.1).fold(0.0, f64::max),
    );
    let px = |x: f64| left + (x.log10() - x0) / (x1 - x0) * (right - left);
    let py = |y: f64| bottom - (y.log10() - y0) / (y1 - y0) * (bottom - top);
    let mut out = String::new();
    header(&mut out, h, title);
    let _ = writeln!(
        out,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
        right - left,
        bottom - top
    );
    for d in (x0 as i32)..=(x1 as i32) {
        let x = px(10f64.powi(d));
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">1e{d}</text>"##,
            bottom + 16.0
        );
    }
    for d in (y0 as i32)..=(y1 as i32) {
        let y = py(10f64.powi(d));
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">1e{d}</text>"##,
            left - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
        (left + right) / 2.0,
        bottom + 36.0,
        escape(x_label),
        (top + bottom) / 2.0,
        (top + bottom) / 2.0,
        escape(y_label)
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let coords: Vec<String> = points
            .iter()
            .filter(|&&(x, y)| x > 0.0 && y > 0.0 && x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            coords.join(" ")
        );
        for c in &coords {
            let (x, y) = c.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(out, r#"<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>"#);
        }
        let ly = top + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            right + 10.0,
            right + 30.0,
            right + 36.0,
            ly + 4.0,
            escape(name)
        );
    }
    out.push_str("</svg>\n");
    out
}
