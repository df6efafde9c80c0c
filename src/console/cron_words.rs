//! Cron expressions in words, for people who do not read cron: "every day at 02:30".
//! Covers the shapes schedules use; anything else is shown as "cron `expr`".

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn day_name(s: &str) -> Option<String> {
    let names = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let one = |d: &str| -> Option<&str> {
        let i = d
            .parse::<usize>()
            .ok()
            .map(|n| n % 7)
            .or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(d)))?;
        Some(DAYS[i])
    };
    if let Some((a, b)) = s.split_once('-') {
        return Some(format!("{} to {}", one(a)?, one(b)?));
    }
    let parts: Option<Vec<&str>> = s.split(',').map(one).collect();
    Some(parts?.join(", "))
}

fn num(s: &str) -> Option<u32> {
    s.parse().ok()
}

/// `expr` in words, in the schedule's own zone.
pub fn describe(expr: &str) -> String {
    let e = expr.trim();
    let fallback = || format!("cron {e}");
    match e {
        "@hourly" => return "every hour, on the hour".into(),
        "@daily" | "@midnight" => return "every day at 00:00".into(),
        "@weekly" => return "every Sunday at 00:00".into(),
        "@monthly" => return "on day 1 of every month at 00:00".into(),
        "@yearly" | "@annually" => return "every 1 January at 00:00".into(),
        _ => {}
    }
    let f: Vec<&str> = e.split_whitespace().collect();
    // 6/7 fields lead with seconds; only whole minutes are put in words.
    let f: &[&str] = match f.len() {
        5 => &f,
        6 | 7 if f[0] == "0" => &f[1..6],
        _ => return fallback(),
    };
    let (min, hour, dom, mon, dow) = (f[0], f[1], f[2], f[3], f[4]);
    if mon != "*" {
        return fallback();
    }
    let at = match (num(min), num(hour)) {
        (Some(m), Some(h)) if m < 60 && h < 24 => format!("at {h:02}:{m:02}"),
        _ => {
            if dom != "*" || dow != "*" {
                return fallback();
            }
            return match (min, hour) {
                ("*", "*") => "every minute".into(),
                (m, "*") if m.starts_with("*/") => format!("every {} minutes", &m[2..]),
                (m, "*") if num(m).is_some_and(|m| m < 60) => {
                    format!("every hour at minute {m}")
                }
                (m, h) if h.starts_with("*/") && num(m).is_some_and(|m| m < 60) => {
                    format!("every {} hours at minute {m}", &h[2..])
                }
                _ => fallback(),
            };
        }
    };
    match (dom, dow) {
        ("*", "*") => format!("every day {at}"),
        ("*", d) => match day_name(d) {
            Some(days) => format!("every {days} {at}"),
            None => fallback(),
        },
        (d, "*") if num(d).is_some_and(|d| (1..=31).contains(&d)) => {
            format!("on day {d} of every month {at}")
        }
        _ => fallback(),
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_shapes_in_words() {
        assert_eq!(describe("30 2 * * *"), "every day at 02:30");
        assert_eq!(describe("0 30 2 * * *"), "every day at 02:30");
        assert_eq!(describe("0 3 * * 1-5"), "every Monday to Friday at 03:00");
        assert_eq!(describe("0 3 * * SUN"), "every Sunday at 03:00");
        assert_eq!(describe("15 4 1 * *"), "on day 1 of every month at 04:15");
        assert_eq!(describe("*/15 * * * *"), "every 15 minutes");
        assert_eq!(describe("5 * * * *"), "every hour at minute 5");
        assert_eq!(describe("0 */6 * * *"), "every 6 hours at minute 0");
        assert_eq!(describe("@daily"), "every day at 00:00");
        assert_eq!(describe("0 0 1 1 *"), "cron 0 0 1 1 *");
        assert_eq!(describe("15 30 2 * * *"), "cron 15 30 2 * * *");
    }
}
