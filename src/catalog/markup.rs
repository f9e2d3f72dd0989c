//! Prices: reading the upstream's price strings and marking them up, decimal only.
//!
//! `price × (1 + percent/100) + fixed`, then rounded half-up (away from zero) to a
//! multiple of `round_to`, written with the scale of `round_to` ("0.01" → two decimals,
//! "1" → none, "0.05" → two). Anything that cannot be read or computed exactly (garbage,
//! a negative price, an overflow) is `None`: the caller withholds that price rather than
//! showing the upstream's.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::store::model::Markup;

/// Longest price string accepted (a real price is far shorter).
const MAX_PRICE_LEN: usize = 64;

/// Read a price as the upstream writes it: `913.9286`, `9.00`, `1 234,56` (with a space,
/// NBSP or narrow NBSP between thousands), `1,234.56`, `1.234,56`, `9,5`.
///
/// When both `,` and `.` appear, the last one is the decimal separator and the other
/// groups thousands; a single separator kind appearing once is the decimal separator
/// (`9,50` = 9.5); appearing more than once it groups thousands (`1,234,567`).
/// Negative amounts, signs, exponents and anything else are refused.
pub fn parse_price(s: &str) -> Option<Decimal> {
    let s = s.trim_matches(|c: char| c.is_whitespace());
    if s.is_empty() || s.len() > MAX_PRICE_LEN {
        return None;
    }
    // The usual spelling (`913.9286`, `9`): digits with at most one dot inside them,
    // read as it is.
    let b = s.as_bytes();
    if b.iter().all(|c| c.is_ascii_digit() || *c == b'.')
        && b.iter().filter(|c| **c == b'.').count() <= 1
        && b[0].is_ascii_digit()
        && b[b.len() - 1].is_ascii_digit()
    {
        return plain_digits(b).or_else(|| s.parse::<Decimal>().ok());
    }
    let compact: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{00A0}' | '\u{202F}' | '\u{2009}' | '\''))
        .collect();
    if compact.is_empty()
        || !compact
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
    {
        return None;
    }
    let commas = compact.matches(',').count();
    let dots = compact.matches('.').count();
    let decimal_sep = match (commas, dots) {
        (0, 0) => None,
        (_, 0) if commas == 1 => Some(','),
        (0, _) if dots == 1 => Some('.'),
        (_, 0) | (0, _) => None, // several of one kind: thousands groups only
        _ => {
            let last_comma = compact.rfind(',').unwrap_or(0);
            let last_dot = compact.rfind('.').unwrap_or(0);
            Some(if last_comma > last_dot { ',' } else { '.' })
        }
    };
    let (int_part, frac_part) = match decimal_sep.and_then(|c| compact.rfind(c)) {
        Some(pos) => (&compact[..pos], Some(&compact[pos + 1..])),
        None => (&compact[..], None),
    };
    let mut normal = String::with_capacity(compact.len());
    // Thousands groups: 1-3 digits first, then exactly 3 after each separator.
    for (i, group) in int_part.split([',', '.']).enumerate() {
        let ok = !group.is_empty()
            && group.chars().all(|c| c.is_ascii_digit())
            && (i == 0 || group.len() == 3)
            && (i > 0 || group.len() <= 3 || !int_part.contains([',', '.']));
        if !ok {
            return None;
        }
        normal.push_str(group);
    }
    if let Some(frac) = frac_part {
        if frac.is_empty() || !frac.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        normal.push('.');
        normal.push_str(frac);
    }
    normal.parse::<Decimal>().ok()
}

/// Up to 19 digits with at most one `.` inside them (checked by the caller), read as
/// `str::parse` reads them — the same digits, the same scale — without its general
/// parser; `None` for a longer number.
fn plain_digits(b: &[u8]) -> Option<Decimal> {
    let mut digits = 0;
    let mut scale = None;
    let mut mantissa: u64 = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'.' {
            scale = Some((b.len() - i - 1) as u32);
            continue;
        }
        digits += 1;
        if digits > 19 {
            return None;
        }
        mantissa = mantissa * 10 + u64::from(c - b'0');
    }
    Some(Decimal::from_i128_with_scale(
        i128::from(mantissa),
        scale.unwrap_or(0),
    ))
}

/// `price` marked up, rounded and rescaled to `round_to`'s scale; `None` on overflow, a
/// result below zero, or a markup that cannot be applied (a step of zero or less).
pub fn apply(markup: &Markup, price: Decimal) -> Option<Decimal> {
    apply_exact(markup, price).or_else(|| apply_decimal(markup, price))
}

/// [`apply`] in `rust_decimal`'s arithmetic: every case.
fn apply_decimal(markup: &Markup, price: Decimal) -> Option<Decimal> {
    if price.is_sign_negative() && !price.is_zero() {
        return None;
    }
    let step = markup.round_to;
    if step <= Decimal::ZERO {
        return None;
    }
    // percent / 100 is the same digits two places further right (exact, no division).
    let mut share = markup.percent;
    let share = match share.set_scale(share.scale() + 2) {
        Ok(()) => share,
        Err(_) => markup.percent.checked_div(Decimal::ONE_HUNDRED)?,
    };
    let factor = Decimal::ONE.checked_add(share)?;
    let raw = price.checked_mul(factor)?.checked_add(markup.fixed)?;
    if raw.is_sign_negative() && !raw.is_zero() {
        return None;
    }
    let scale = step.scale();
    let mut out = if step.mantissa() == 1 {
        // A step of 1, 0.1, 0.01…: rounding to a multiple of it is rounding to its
        // decimals (the same result without the division).
        raw.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero)
    } else {
        let steps = raw
            .checked_div(step)?
            .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
        steps.checked_mul(step)?
    };
    // Exact by construction: a multiple of `step` has at most `step`'s decimals.
    out = out.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    out.rescale(scale);
    if out.scale() != scale {
        return None; // too large to be written with that many decimals
    }
    // A zero is written `0.00`, never `-0.00` (a negative zero `fixed` gives one).
    out.set_sign_positive(true);
    Some(out)
}

/// The largest mantissa a [`Decimal`] holds (96 bits).
const MAX_MANTISSA: i128 = (1 << 96) - 1;

/// [`apply`] in integers for the usual markup — a step of 1, 0.1, 0.01… and every
/// intermediate value exact within a [`Decimal`]'s 96 bits and 28 decimals — where
/// `rust_decimal` computes the same digits exactly too: the same result, without its
/// general multiplication and rounding. `None` hands anything else (a step like 0.05, a
/// negative price or result, a value near the limits) to the general way.
fn apply_exact(markup: &Markup, price: Decimal) -> Option<Decimal> {
    let step = markup.round_to;
    if step.mantissa() != 1 || price.is_sign_negative() {
        return None;
    }
    let pow = |n: u32| 10i128.checked_pow(n);
    let (percent, fixed) = (markup.percent, markup.fixed);
    // factor = 1 + percent / 100, at percent's scale + 2.
    let factor_scale = percent.scale() + 2;
    let factor = pow(factor_scale)?.checked_add(percent.mantissa())?;
    let product_scale = price.scale() + factor_scale;
    let scale = product_scale.max(fixed.scale());
    if factor < 0 || scale > 28 {
        return None;
    }
    let within = |m: i128| (-MAX_MANTISSA..=MAX_MANTISSA).contains(&m).then_some(m);
    // Each term at the common scale, as `rust_decimal` adds them when they fit.
    let product = within(price.mantissa().checked_mul(factor)?)?;
    let product = within(product.checked_mul(pow(scale - product_scale)?)?)?;
    let fixed = within(fixed.mantissa().checked_mul(pow(scale - fixed.scale())?)?)?;
    let raw = product + fixed;
    if !(0..=MAX_MANTISSA).contains(&raw) {
        return None;
    }
    // Rounded half away from zero (raw is not negative) to the step's decimals.
    let out_scale = step.scale();
    let out = if scale > out_scale {
        let unit = pow(scale - out_scale)?;
        let (q, r) = (raw / unit, raw % unit);
        q + i128::from(r * 2 >= unit)
    } else {
        raw.checked_mul(pow(out_scale - scale)?)?
    };
    (out <= MAX_MANTISSA).then(|| Decimal::from_i128_with_scale(out, out_scale))
}

/// A decimal as `Display` writes it (every decimal of its scale; a negative zero, which
/// no price is, without its sign), appended to `out`: a mantissa that fits 64 bits is
/// written without `rust_decimal`'s general formatter.
pub fn push_decimal(d: Decimal, out: &mut String) {
    let Ok(m) = u64::try_from(d.mantissa()) else {
        use std::fmt::Write;
        let _ = write!(out, "{d}");
        return;
    };
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = m;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = &buf[i..];
    let scale = d.scale() as usize;
    let push =
        |out: &mut String, b: &[u8]| out.push_str(std::str::from_utf8(b).unwrap_or_default());
    if scale == 0 {
        push(out, digits);
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        push(out, int);
        out.push('.');
        push(out, frac);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        push(out, digits);
    }
}

/// [`push_decimal`] into a new string.
pub fn decimal_text(d: Decimal) -> String {
    let mut s = String::with_capacity(24);
    push_decimal(d, &mut s);
    s
}

/// Read, mark up and write back one price string; `None` when it cannot be read or
/// marked up.
pub fn mark_up_str(markup: &Markup, s: &str) -> Option<String> {
    apply(markup, parse_price(s)?).map(decimal_text)
}

/// Whether `text` may hold an amount [`replace_amounts`] changes: an amount has a
/// decimal part, so a digit, a `.` or `,`, and a digit in a row. A label (`1 year`,
/// `12 месяцев`) has none, and [`replace_amounts`] would give it back as it is.
pub fn may_hold_amounts(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|w| w[0].is_ascii_digit() && matches!(w[1], b'.' | b',') && w[2].is_ascii_digit())
}

/// Amounts written inside a free text (`1 year — 913.93 EUR`, `1 234,50 руб.`): runs of
/// digits with `.`/`,` separators (and spaces between thousands groups) that have a
/// decimal part. A label without one (`1 year`, `12 месяцев`) has none. Each amount is
/// given to `f` with its text; `Some` replaces it, `None` makes the whole call `None`.
pub fn replace_amounts(
    text: &str,
    mut f: impl FnMut(Decimal, &str) -> Option<String>,
) -> Option<String> {
    if !may_hold_amounts(text) {
        return Some(text.to_string());
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_alphanumeric());
        if !starts {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() {
            let c = chars[j];
            let group_space = matches!(c, ' ' | '\u{00A0}' | '\u{202F}' | '\u{2009}')
                && chars
                    .get(j + 1..j + 4)
                    .is_some_and(|g| g.iter().all(char::is_ascii_digit))
                && !chars.get(j + 4).is_some_and(char::is_ascii_digit);
            if c.is_ascii_digit()
                || group_space
                || ((c == '.' || c == ',') && chars.get(j + 1).is_some_and(char::is_ascii_digit))
            {
                j += 1;
            } else {
                break;
            }
        }
        let run: String = chars[i..j].iter().collect();
        let decimal = run
            .rfind(['.', ','])
            .is_some_and(|p| (1..=4).contains(&(run.len() - p - 1)));
        match parse_price(&run).filter(|_| decimal) {
            Some(amount) => out.push_str(&f(amount, &run)?),
            None => out.push_str(&run),
        }
        i = j;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn m(percent: &str, fixed: &str, round_to: &str) -> Markup {
        Markup {
            percent: d(percent),
            fixed: d(fixed),
            round_to: d(round_to),
        }
    }

    fn up(markup: &Markup, price: &str) -> Option<String> {
        mark_up_str(markup, price)
    }

    #[test]
    fn amounts_inside_texts() {
        let mk = m("20", "0", "0.01");
        let mark = |t: &str| replace_amounts(t, |a, _| apply(&mk, a).map(|d| d.to_string()));
        for (t, want) in [
            ("1 year", "1 year"),
            ("1 год", "1 год"),
            ("12 месяцев", "12 месяцев"),
            ("10.00", "12.00"),
            ("1 year - 10.00 EUR", "1 year - 12.00 EUR"),
            ("1 234,50 руб.", "1481.40 руб."),
            (
                "PositiveSSL (10,5 EUR), 2 years: 20.00",
                "PositiveSSL (12.60 EUR), 2 years: 24.00",
            ),
            ("SSL3 v2", "SSL3 v2"),
        ] {
            assert_eq!(mark(t).as_deref(), Some(want), "{t:?}");
        }
        assert_eq!(replace_amounts("a 1.50", |_, _| None), None);
    }

    #[test]
    fn parses_plain_and_localised_prices() {
        for (s, want) in [
            ("913.9286", "913.9286"),
            ("9.00", "9.00"),
            ("0", "0"),
            ("  12 ", "12"),
            ("1 234,56", "1234.56"),
            ("1\u{00A0}234,56", "1234.56"),
            ("1\u{202F}234,56", "1234.56"),
            ("1,234.56", "1234.56"),
            ("1.234,56", "1234.56"),
            ("1,234,567", "1234567"),
            ("1.234.567,5", "1234567.5"),
            ("9,5", "9.5"),
            ("0.0001", "0.0001"),
            ("1,234", "1.234"),
            ("1234,5", "1234.5"),
        ] {
            assert_eq!(parse_price(s), Some(d(want)), "{s:?}");
        }
    }

    #[test]
    fn refuses_garbage() {
        for s in [
            "",
            "   ",
            "abc",
            "9.00 EUR",
            "€9",
            "-9.00",
            "+9",
            "1e5",
            "NaN",
            ".5",
            "5.",
            ",",
            "1,2,3.4,5",
            "1.2.3,4.5",
            "1..2",
            "1,23,456.7",
            "12,34.5",
            "1234,567.8",
            ",5",
            "12.34,",
            "0x10",
            "١٢٣",
            &"9".repeat(100),
            "99999999999999999999999999999999", // 32 digits: beyond Decimal
        ] {
            assert_eq!(parse_price(s), None, "{s:?}");
        }
    }

    #[test]
    fn worked_examples() {
        // 9.00 × 1.20 + 0.50 = 11.30
        assert_eq!(
            up(&m("20", "0.50", "0.01"), "9.00").as_deref(),
            Some("11.30")
        );
        // … rounded to whole units: 11.30 → 11
        assert_eq!(up(&m("20", "0.50", "1"), "9.00").as_deref(), Some("11"));
        // 913.9286 × 1.15 = 1051.01789 → 1051.02
        assert_eq!(
            up(&m("15", "0", "0.01"), "913.9286").as_deref(),
            Some("1051.02")
        );
        // 9 × 1.2 = 10.80, written with two decimals
        assert_eq!(up(&m("20", "0", "0.01"), "9").as_deref(), Some("10.80"));
        // 10.83 to a multiple of 0.05 → 10.85
        assert_eq!(up(&m("0", "0", "0.05"), "10.83").as_deref(), Some("10.85"));
        assert_eq!(up(&m("0", "0", "0.05"), "10.82").as_deref(), Some("10.80"));
        // globex: 9.00 + 10 % = 9.90
        assert_eq!(up(&m("10", "0", "0.01"), "9.0000").as_deref(), Some("9.90"));
    }

    #[test]
    fn rounds_half_up() {
        assert_eq!(up(&m("0", "0", "0.01"), "0.005").as_deref(), Some("0.01"));
        assert_eq!(up(&m("0", "0", "0.01"), "0.0049").as_deref(), Some("0.00"));
        assert_eq!(up(&m("0", "0", "1"), "10.5").as_deref(), Some("11"));
        assert_eq!(up(&m("0", "0", "1"), "10.4999").as_deref(), Some("10"));
        assert_eq!(up(&m("0", "0", "0.05"), "10.825").as_deref(), Some("10.85"));
        assert_eq!(
            up(&m("0", "0", "0.05"), "10.8249").as_deref(),
            Some("10.80")
        );
        assert_eq!(up(&m("0", "0", "10"), "15").as_deref(), Some("20"));
    }

    #[test]
    fn zero_and_tiny_amounts() {
        assert_eq!(up(&m("20", "0", "0.01"), "0").as_deref(), Some("0.00"));
        assert_eq!(
            up(&m("20", "0.50", "0.01"), "0.00").as_deref(),
            Some("0.50")
        );
        assert_eq!(up(&m("20", "0", "0.01"), "0.0001").as_deref(), Some("0.00"));
        assert_eq!(
            up(&m("20", "0", "0.0001"), "0.0001").as_deref(),
            Some("0.0001")
        );
        assert_eq!(up(&m("0", "0", "1"), "0.4").as_deref(), Some("0"));
        // A negative zero in the markup never shows as `-0.00`, either way.
        let minus_zero = m("20", "-0.00", "0.01");
        assert_eq!(up(&minus_zero, "0").as_deref(), Some("0.00"));
        assert_eq!(
            apply_decimal(&minus_zero, d("0"))
                .map(decimal_text)
                .as_deref(),
            Some("0.00")
        );
    }

    #[test]
    fn negative_percent_down_to_minus_100() {
        assert_eq!(up(&m("-10", "0", "0.01"), "100").as_deref(), Some("90.00"));
        assert_eq!(up(&m("-100", "0", "0.01"), "100").as_deref(), Some("0.00"));
        assert_eq!(
            up(&m("-100", "1.50", "0.01"), "100").as_deref(),
            Some("1.50")
        );
        // Below zero is never shown.
        assert_eq!(up(&m("-100", "-1", "0.01"), "100"), None);
        assert_eq!(up(&m("-150", "0", "0.01"), "100"), None);
    }

    #[test]
    fn localised_input_is_marked_up() {
        assert_eq!(
            up(&m("10", "0", "0.01"), "1 234,56").as_deref(),
            Some("1358.02")
        );
        assert_eq!(
            up(&m("10", "0", "0.01"), "1\u{00A0}234,56").as_deref(),
            Some("1358.02")
        );
        assert_eq!(
            up(&m("10", "0", "0.01"), "1,234.56").as_deref(),
            Some("1358.02")
        );
    }

    #[test]
    fn very_large_amounts_do_not_panic() {
        let huge = "79228162514264337593543950335"; // Decimal::MAX
        assert_eq!(parse_price(huge), Some(Decimal::MAX));
        assert_eq!(up(&m("20", "0", "0.01"), huge), None);
        assert_eq!(up(&m("0", "1", "0.01"), huge), None);
        assert_eq!(
            up(&m("0", "0", "0.01"), "7922816251426433759354395033"),
            None
        );
        assert_eq!(
            up(&m("0", "0", "1"), "1000000000000000").as_deref(),
            Some("1000000000000000")
        );
        assert_eq!(
            apply(&m("1000000", "0", "0.01"), d("10000000000000000000000000")),
            None
        );
    }

    /// The integer ways ([`plain_digits`], [`apply_exact`], [`push_decimal`]) give what
    /// `rust_decimal`'s general ones give, digit for digit, over random prices and
    /// markups from the usual to the limits.
    #[test]
    fn integer_ways_match_rust_decimal() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(13);
        let number = |rng: &mut StdRng, max_digits: u32, max_scale: u32| {
            let digits = rng.gen_range(1..=max_digits);
            let m = rng.gen_range(0..10i128.pow(digits));
            Decimal::from_i128_with_scale(m, rng.gen_range(0..=max_scale))
        };
        let (mut exact, mut general) = (0, 0);
        for i in 0..200_000 {
            let wide = i % 4 == 0;
            let (digits, scale) = if wide { (28, 28) } else { (8, 6) };
            let price = number(&mut rng, digits, scale);
            let mut percent = number(&mut rng, if wide { 20 } else { 4 }, 3);
            if rng.gen_bool(0.2) {
                percent.set_sign_negative(true);
            }
            let mut fixed = number(&mut rng, if wide { 20 } else { 3 }, 4);
            if rng.gen_bool(0.1) {
                fixed.set_sign_negative(true);
            }
            let round_to = match rng.gen_range(0..5) {
                0 => Decimal::ONE,
                1 => Decimal::new(1, rng.gen_range(0..=10)),
                2 => Decimal::new(5, 2),
                3 => Decimal::new(1, 2),
                _ => Decimal::new(rng.gen_range(1..30), rng.gen_range(0..4)),
            };
            let mk = Markup {
                percent,
                fixed,
                round_to,
            };
            let want = apply_decimal(&mk, price);
            match apply_exact(&mk, price) {
                Some(got) => {
                    exact += 1;
                    assert_eq!(
                        Some((got.to_string(), got.scale())),
                        want.map(|w| (w.to_string(), w.scale())),
                        "{mk:?} {price}"
                    );
                }
                None => general += 1,
            }
            let text = price.to_string();
            assert_eq!(
                parse_price(&text).map(|p| (p, p.scale())),
                Some((price, price.scale()))
            );
            let digits = text.bytes().filter(u8::is_ascii_digit).count();
            assert_eq!(plain_digits(text.as_bytes()).is_some(), digits <= 19);
            for d in [Some(price), want].into_iter().flatten() {
                assert_eq!(decimal_text(d), d.to_string());
            }
        }
        // Both ways were taken.
        assert!(exact > 50_000 && general > 10_000, "{exact} {general}");
    }

    #[test]
    fn bad_step_is_refused() {
        assert_eq!(up(&m("0", "0", "0"), "1"), None);
        assert_eq!(up(&m("0", "0", "-1"), "1"), None);
    }
}
