//! Properties of `parse_duration`: it reads specs, annotations and flags written by people, so it
//! must answer every string without panicking, and read what it documents exactly.

use std::time::Duration;

use proptest::prelude::*;

use super::parse_duration;

/// Strings that look like durations more often than arbitrary text would.
fn duration_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t]{0,2}[0-9]{0,22}[a-zµ ]{0,3}[ \t\n]{0,2}",
        "-?[0-9]{1,5}(\\.[0-9])?(ms|s|m|h|d|w|y|M|us)?",
        (any::<u64>(), "(|s|ms|m|h|d)").prop_map(|(n, u)| format!("{n}{u}")),
    ]
}

proptest! {
    #[test]
    fn never_panics_and_accepts_only_digits_and_a_known_unit(s in duration_like()) {
        if parse_duration(&s).is_some() {
            let t = s.trim();
            let digits = t.bytes().take_while(u8::is_ascii_digit).count();
            prop_assert!(digits > 0, "{s:?} parsed without a number");
            prop_assert!(["", "s", "ms", "m", "h", "d"].contains(&&t[digits..]), "{s:?}: unit {:?}", &t[digits..]);
        }
    }

    #[test]
    fn round_trips_every_unit_and_refuses_overflow(n in any::<u64>(), pad in "[ \t]{0,2}") {
        let secs = |mul: u64| n.checked_mul(mul).map(Duration::from_secs);
        let cases = [
            ("", secs(1)),
            ("s", secs(1)),
            ("ms", Some(Duration::from_millis(n))),
            ("m", secs(60)),
            ("h", secs(3600)),
            ("d", secs(86400)),
        ];
        for (unit, want) in cases {
            let text = format!("{pad}{n}{unit}{pad}");
            prop_assert_eq!(parse_duration(&text), want, "{:?}", text);
        }
    }

    #[test]
    fn signs_fractions_and_unknown_units_are_refused(
        n in 0u32..100_000,
        bad in prop_oneof![Just("-"), Just("+"), Just("0x"), Just(".5"), Just("ns"), Just("w"), Just("S"), Just(" s"), Just("h5")],
    ) {
        prop_assert_eq!(parse_duration(&format!("{n}{bad}")), None);
        if bad == "-" || bad == "+" {
            prop_assert_eq!(parse_duration(&format!("{bad}{n}s")), None);
        }
    }
}
