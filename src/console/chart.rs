//! Small SVG charts drawn on the server: no charting script, no build step, and they work
//! with the strict Content-Security-Policy (colours come from the stylesheet classes).

use super::html::esc;
use std::fmt::Write;

/// One bar: stacked segments `(value, css class)` and a label for its tooltip.
pub struct Bar {
    pub label: String,
    pub segments: Vec<(f64, &'static str)>,
}

const W: f64 = 640.0;
const H: f64 = 160.0;
const PAD_LEFT: f64 = 56.0;
const PAD_BOTTOM: f64 = 18.0;

/// A stacked bar chart; `fmt` renders the axis maximum and the tooltips.
pub fn bars(id: &str, title: &str, bars: &[Bar], fmt: impl Fn(f64) -> String) -> String {
    let max = bars
        .iter()
        .map(|b| b.segments.iter().map(|(v, _)| v.max(0.0)).sum::<f64>())
        .fold(0.0_f64, f64::max);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg id=\"{id}\" class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-label=\"{title}\"><title>{title}</title>\
         <line class=\"axis\" x1=\"{PAD_LEFT}\" y1=\"{base}\" x2=\"{W}\" y2=\"{base}\"/>\
         <text class=\"tick\" x=\"{tx}\" y=\"12\" text-anchor=\"end\">{maxl}</text>\
         <text class=\"tick\" x=\"{tx}\" y=\"{base}\" text-anchor=\"end\">0</text>",
        id = esc(id),
        title = esc(title),
        base = H - PAD_BOTTOM,
        tx = PAD_LEFT - 6.0,
        maxl = esc(&fmt(max)),
    );
    if !bars.is_empty() {
        let slot = (W - PAD_LEFT) / bars.len() as f64;
        let width = (slot * 0.8).max(1.0);
        let plot = H - PAD_BOTTOM - 4.0;
        for (i, b) in bars.iter().enumerate() {
            let x = PAD_LEFT + slot * i as f64 + (slot - width) / 2.0;
            let mut y = H - PAD_BOTTOM;
            let total: f64 = b.segments.iter().map(|(v, _)| v.max(0.0)).sum();
            let _ = write!(
                s,
                "<g><title>{}: {}</title>",
                esc(&b.label),
                esc(&fmt(total))
            );
            for (v, class) in &b.segments {
                if *v <= 0.0 || max <= 0.0 {
                    continue;
                }
                let h = v / max * plot;
                y -= h;
                let _ = write!(
                    s,
                    "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" \
                     height=\"{h:.1}\"/>"
                );
            }
            s.push_str("</g>");
        }
        // First and last labels under the axis.
        let first = &bars[0].label;
        let last = &bars[bars.len() - 1].label;
        let _ = write!(
            s,
            "<text class=\"tick\" x=\"{PAD_LEFT}\" y=\"{H}\">{}</text>\
             <text class=\"tick\" x=\"{W}\" y=\"{H}\" text-anchor=\"end\">{}</text>",
            esc(first),
            esc(last)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallest_bar_fills_the_plot_and_labels_are_escaped() {
        let svg = bars(
            "c",
            "t<",
            &[
                Bar {
                    label: "a&b".into(),
                    segments: vec![(2.0, "ok"), (2.0, "bad")],
                },
                Bar {
                    label: "z".into(),
                    segments: vec![(0.0, "ok")],
                },
            ],
            |v| format!("{v}"),
        );
        assert!(svg.contains("aria-label=\"t&lt;\""));
        assert!(svg.contains("a&amp;b: 4"));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("height=\"69.0\""), "{svg}");
    }
}
